//! Builds the misbehaving test guests and exports their paths to the tests.

use std::fmt::Write;

const GUESTS: &[&str] = &["guest-misbehaving", "guest-future-api", "guest-fragile-mapper", "guest-api-0-3-connector", "guest-api-0-3-mapper", "guest-api-0-4-connector", "guest-api-0-4-mapper"];

fn main() {
    let mut code = String::new();
    for guest in synchost_plugin_build::build(GUESTS) {
        let constant = guest.package.trim_start_matches("guest-").replace('-', "_").to_uppercase();
        writeln!(code, "/// The `{}` test guest component.", guest.package).unwrap();
        writeln!(code, "pub const {constant}: &str = {:?};", guest.wasm).unwrap();
    }
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("guests.rs");
    std::fs::write(out, code).unwrap();
    println!("cargo:rerun-if-changed=build.rs");
}
