//! Build-script helper: compiles workspace plugin crates to `wasm32-wasip2`
//! components, so `cargo build`, `cargo test` and `cargo run` build plugins
//! as part of the normal build.
//!
//! The plugins are built by a nested `cargo build` into their own target
//! folder (`target/plugins`), in release mode, without the host's RUSTFLAGS
//! (flags meant for the host target break or bloat the guests). Cargo is told
//! to rerun the build script when any source file of a plugin changes, from the
//! dep-info files of the nested build, so guests never go stale.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// One built plugin.
#[derive(Debug, Clone)]
pub struct Built {
    /// The crate's package name.
    pub package: String,
    /// The component file.
    pub wasm: PathBuf,
}

/// Builds these workspace packages as components and returns their files.
/// Panics with instructions when the target is missing or a plugin fails to build.
pub fn build(packages: &[&str]) -> Vec<Built> {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("run from a build script"));
    let workspace = workspace_root(&manifest_dir);
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("plugins");
    check_target_installed();

    // One cargo invocation per plugin: features are unified across the packages
    // of one invocation, and a plugin that uses another as a library (without
    // its export) must not get that plugin's exports linked in twice.
    for package in packages {
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .current_dir(&workspace)
            .args(["build", "--release", "--target", TARGET, "-p", package, "--target-dir"])
            .arg(&target_dir);
        for var in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET"] {
            command.env_remove(var);
        }
        let status = command.status().expect("failed to run cargo for the plugins");
        if !status.success() {
            panic!("building the plugin {package} for {TARGET} failed; see the errors above");
        }
        // Keep this build's component: building a plugin that uses this one as a
        // library writes this one's artifact again, without its exports.
        let stem = package.replace('-', "_");
        let built = target_dir.join(TARGET).join("release").join(format!("{stem}.wasm"));
        std::fs::create_dir_all(target_dir.join("components")).expect("create target/plugins/components");
        std::fs::copy(&built, target_dir.join("components").join(format!("{stem}.wasm")))
            .unwrap_or_else(|e| panic!("{} was not produced: {e}", built.display()));
    }

    let out = target_dir.join(TARGET).join("release");
    println!("cargo:rerun-if-changed={}", workspace.join("schemas/wit").display());
    packages
        .iter()
        .map(|package| {
            let stem = package.replace('-', "_");
            let wasm = target_dir.join("components").join(format!("{stem}.wasm"));
            rerun_if_sources_change(&out.join(format!("{stem}.d")));
            Built { package: package.to_string(), wasm }
        })
        .collect()
}

fn workspace_root(start: &Path) -> PathBuf {
    start
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|text| text.contains("[workspace]"))
        })
        .expect("no workspace Cargo.toml above the crate")
        .to_path_buf()
}

fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot.is_some_and(|root| root.join("lib/rustlib").join(TARGET).exists());
    if !installed {
        panic!(
            "\n\nsynchost builds its plugins for the `{TARGET}` target, which is not installed.\n\
             Install it with:\n\n    rustup target add {TARGET}\n\nthen build again.\n"
        );
    }
}

/// Emits `rerun-if-changed` for every source file listed in a dep-info file.
fn rerun_if_sources_change(dep_info: &Path) {
    let Ok(text) = std::fs::read_to_string(dep_info) else { return };
    let Some((_, deps)) = text.lines().next().and_then(|line| line.split_once(": ")) else { return };
    // Paths are separated by spaces; a space inside a path is escaped as `\ `.
    let mut path = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' if chars.peek() == Some(&' ') => path.push(chars.next().unwrap_or(' ')),
            ' ' => emit(&mut path),
            _ => path.push(ch),
        }
    }
    emit(&mut path);

    fn emit(path: &mut String) {
        if !path.is_empty() && !path.contains("/.cargo/registry/") {
            println!("cargo:rerun-if-changed={path}");
        }
        path.clear();
    }
}
