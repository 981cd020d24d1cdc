//! Builds the bundled plugins and embeds them in the host binary.

use std::fmt::Write;

const BUNDLED: &[&str] = &["sql-table", "crm-mapper", "redmine", "desktop-timesheet", "project-plan", "replica"];

fn main() {
    let built = synchost_plugin_build::build(BUNDLED);
    let mut code = String::new();
    writeln!(code, "/// The names of the bundled plugins.").unwrap();
    writeln!(code, "pub const NAMES: &[&str] = &{BUNDLED:?};").unwrap();
    writeln!(code, "/// A bundled plugin's component bytes.").unwrap();
    writeln!(code, "pub fn bytes(name: &str) -> Option<&'static [u8]> {{").unwrap();
    writeln!(code, "    match name {{").unwrap();
    for plugin in &built {
        writeln!(code, "        {:?} => Some(include_bytes!({:?})),", plugin.package, plugin.wasm).unwrap();
    }
    writeln!(code, "        _ => None,\n    }}\n}}").unwrap();
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("bundled.rs");
    std::fs::write(out, code).unwrap();
    println!("cargo:rerun-if-changed=build.rs");
}
