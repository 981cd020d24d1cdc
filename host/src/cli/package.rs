//! `synchost package ...`: vendors make, pack and sign packages; admins
//! install, upgrade, roll back, remove and check them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::Version;
use sha2::{Digest, Sha256};

use super::output::say;
use super::CommandError;
use crate::config::LoadedConfig;
use crate::packages::archive::{self, EXTENSION};
use crate::packages::manifest::{self, MANIFEST_FILE};
use crate::packages::signature::{self, SIGNATURE_FILE};
use crate::packages::{check, PackageError, Store, Stored, Trust};
use crate::runtime::metadata;
use crate::state::lease;

fn refused(error: PackageError) -> CommandError {
    CommandError::Reported(format!("{}\n  = fix: {}", error.message, error.fix))
}

fn read(path: &Path) -> Result<Vec<u8>, CommandError> {
    // "(error)" rather than ": error": a path such as `acme.secret-key: ...` reads as a secret's pair.
    std::fs::read(path).map_err(|e| CommandError::Reported(format!("cannot read {} ({e})", path.display())))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CommandError> {
    std::fs::write(path, bytes).map_err(|e| CommandError::Reported(format!("cannot write {} ({e})", path.display())))
}

/// The store and trust list of a config (read even if the rest of the config has errors).
fn store_of(config: &Path) -> Result<(Store, BTreeMap<String, String>, PathBuf), CommandError> {
    let crate::config::HostFacts { data_dir, trusted_publishers: trusted, .. } = LoadedConfig::host_settings_despite_errors(config).map_err(CommandError::Config)?;
    Ok((Store::new(&data_dir), trusted, data_dir))
}

/// `NAME@VERSION` as a name and an exact version.
fn name_and_version(text: &str) -> Result<(&str, Option<Version>), CommandError> {
    match text.split_once('@') {
        None => Ok((text, None)),
        Some((name, version)) => Version::parse(version)
            .map(|v| (name, Some(v)))
            .map_err(|e| CommandError::Reported(format!("`{text}`: `{version}` is not a version ({e}); write NAME@1.2.3"))),
    }
}

/// Says what a running host will do about a change of the store.
fn tell_running_host(data_dir: &Path) {
    if lease::holder(data_dir).is_some_and(|holder| holder.command == "run") {
        say!("the running host reloads the endpoints that use it; `synchost reloads` shows the outcome");
    }
}

/// `synchost package keygen --publisher NAME [--out PREFIX]`
pub fn keygen(publisher: &str, out: Option<&Path>) -> Result<(), CommandError> {
    let prefix = out.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(publisher));
    let secret_path = prefix.with_extension("secret-key");
    let public_path = prefix.with_extension("public-key");
    if secret_path.exists() {
        return Err(CommandError::Reported(format!("{} exists; a new key would replace it\n  = fix: choose another --out, or move the old key away first", secret_path.display())));
    }
    let (secret, public) = signature::keygen(publisher);
    if let Some(folder) = secret_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|e| CommandError::Reported(format!("cannot create {} ({e})", folder.display())))?;
    }
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&secret_path)
            .map_err(|e| CommandError::Reported(format!("cannot write {} ({e})", secret_path.display())))?;
        file.write_all(secret.as_bytes()).map_err(|e| CommandError::Reported(format!("cannot write {} ({e})", secret_path.display())))?;
    }
    write(&public_path, format!("{public}\n").as_bytes())?;
    // Worded without `key: VALUE`, which output masks as a secret's pair.
    say!("wrote the secret key to {} (keep it to yourself; sign with `synchost package sign FILE --key {}`)", secret_path.display(), secret_path.display());
    say!("wrote the public key {public} to {}", public_path.display());
    say!("admins who trust you add to their config:\n\n[host.trusted_publishers]\n{publisher} = \"{public}\"");
    Ok(())
}

/// Builds the crate in `dir` for wasm32-wasip2 and returns the component's path.
fn build_component(dir: &Path) -> Result<PathBuf, CommandError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    say!("building {} for wasm32-wasip2 (release)", dir.display());
    let output = std::process::Command::new(cargo)
        .current_dir(dir)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--message-format=json-render-diagnostics"])
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| CommandError::Reported(format!("cannot run cargo: {e}\n  = fix: install Rust, or pass the built component with --wasm FILE")))?;
    if !output.status.success() {
        return Err(CommandError::Reported("the build failed (see above)\n  = fix: `rustup target add wasm32-wasip2` if the target is missing; or pass a built component with --wasm FILE".into()));
    }
    let mut built = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if message["reason"] == "compiler-artifact" && message["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib")) {
            for file in message["filenames"].as_array().into_iter().flatten().filter_map(|f| f.as_str()) {
                if file.ends_with(".wasm") {
                    built = Some(PathBuf::from(file));
                }
            }
        }
    }
    built.ok_or_else(|| CommandError::Reported(format!("the build of {} made no .wasm component\n  = fix: set `crate-type = [\"cdylib\"]` in [lib] of its Cargo.toml", dir.display())))
}

/// `synchost package pack [DIR] [--wasm FILE] [--out FILE]`
pub fn pack(dir: &Path, wasm: Option<&Path>, out: Option<&Path>) -> Result<(), CommandError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = String::from_utf8(read(&manifest_path)?).map_err(|_| CommandError::Reported(format!("{} is not UTF-8 text", manifest_path.display())))?;
    let mut manifest = manifest::parse(&manifest_path, &text).map_err(CommandError::Config)?;
    let component_path = match wasm {
        Some(path) => path.to_owned(),
        None => build_component(dir)?,
    };
    let component = read(&component_path)?;
    let plugin = metadata::read(&component).map_err(|e| CommandError::Reported(format!("{} cannot be packed: {e}", component_path.display())))?;
    if plugin.kind != manifest.package.kind.plugin_kind() {
        return Err(CommandError::Reported(format!(
            "{} is a {}, but {MANIFEST_FILE} says kind = \"{}\"\n  = fix: correct `kind` in {}",
            component_path.display(),
            plugin.kind,
            manifest.package.kind.plugin_kind(),
            manifest_path.display()
        )));
    }
    if !manifest.package.api.matches(&plugin.api_version) {
        return Err(CommandError::Reported(format!(
            "{} was built for plugin API {}, outside the manifest's api = \"{}\"\n  = fix: set api = \"^{}\" in {}",
            component_path.display(),
            plugin.api_version,
            manifest.package.api,
            plugin.api_version,
            manifest_path.display()
        )));
    }
    let name = manifest.package.component.clone();
    manifest.files = BTreeMap::from([(name.clone(), hex::encode(Sha256::digest(&component)))]);
    let files = BTreeMap::from([(MANIFEST_FILE.to_owned(), manifest::render(&manifest).into_bytes()), (name, component)]);
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| dir.join(format!("{}-{}.{EXTENSION}", manifest.package.name, manifest.package.version)));
    write(&out, &archive::pack(&files).map_err(|e| CommandError::Reported(format!("cannot pack: {e}")))?)?;
    say!("packed {} {} ({}, plugin API {}) into {}", manifest.package.name, manifest.package.version, manifest.package.kind.plugin_kind(), plugin.api_version, out.display());
    say!("unsigned: sign it with `synchost package sign {} --key PUBLISHER.secret-key`", out.display());
    Ok(())
}

/// `synchost package sign FILE --key KEYFILE`
pub fn sign(file: &Path, key: &Path) -> Result<(), CommandError> {
    let mut files = archive::unpack(&read(file)?).map_err(|e| CommandError::Reported(format!("{}: {e}", file.display())))?;
    let manifest_bytes = files[MANIFEST_FILE].clone();
    let text = String::from_utf8_lossy(&manifest_bytes).into_owned();
    let manifest = manifest::parse(Path::new(MANIFEST_FILE), &text).map_err(CommandError::Config)?;
    let key_text = String::from_utf8(read(key)?).map_err(|_| CommandError::Reported(format!("{} is not a key file", key.display())))?;
    let signed = signature::sign(&key_text, &manifest_bytes).map_err(|e| CommandError::Reported(format!("{}: {e}", key.display())))?;
    if signed.publisher != manifest.package.publisher {
        return Err(CommandError::Reported(format!(
            "{} is the key of publisher `{}`, but the package's publisher is `{}`\n  = fix: sign with `{}`'s key, or correct `publisher` in the manifest and pack again",
            key.display(),
            signed.publisher,
            manifest.package.publisher,
            manifest.package.publisher
        )));
    }
    files.insert(SIGNATURE_FILE.to_owned(), signature::render(&signed).into_bytes());
    write(file, &archive::pack(&files).map_err(|e| CommandError::Reported(format!("cannot pack: {e}")))?)?;
    say!("signed {} as `{}` with {}", file.display(), signed.publisher, signed.key);
    Ok(())
}

/// `synchost package install|upgrade FILE [--allow-unsigned]`
/// How `install` puts a package in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installing {
    /// A package not installed yet.
    New,
    /// Another version, active at once unless it asks for more.
    Upgrade,
    /// Another version, held back until `accept` (to shadow it first).
    UpgradeHeld,
}

/// `synchost package install FILE` and `synchost package upgrade FILE [--inactive]`
pub fn install(config: &Path, file: &Path, allow_unsigned: bool, how: Installing) -> Result<(), CommandError> {
    let (store, publishers, data_dir) = store_of(config)?;
    let bytes = read(file)?;
    let checked = check(&bytes, &Trust { publishers: &publishers, allow_unsigned }).map_err(|e| {
        refused(PackageError { message: format!("{} refused: {}", file.display(), e.message), fix: e.fix })
    })?;
    let stored = match how {
        Installing::New => store.install(&checked),
        Installing::Upgrade => store.upgrade(&checked, false),
        Installing::UpgradeHeld => store.upgrade(&checked, true),
    }
    .map_err(refused)?;
    let (name, version) = (checked.name(), checked.version());
    let signed = match &checked.signed_by {
        Some(key) => format!("signed by `{}` ({key})", checked.manifest.package.publisher),
        None => "UNSIGNED (installed with --allow-unsigned)".to_owned(),
    };
    match stored {
        Stored::Active { previous: None } => say!("installed {name} {version}, {signed}; endpoints use it as plugin = \"{name}\""),
        Stored::Active { previous: Some(previous) } => {
            say!("upgraded {name} from {previous} to {version}, {signed}; `synchost package rollback {name}` goes back");
            tell_running_host(&data_dir);
        }
        Stored::Pending { asks_more } if asks_more.is_empty() => {
            say!("installed {name} {version}, {signed}, NOT active (--inactive)");
            say!("compare it with the active version: `synchost package shadow ENDPOINT-OR-MAPPER {name}@{version}`");
            say!("make it active: `synchost package accept {name}@{version}`");
        }
        Stored::Pending { asks_more } => {
            say!("installed {name} {version}, {signed}, but NOT active: it asks for more than the active version:");
            for more in &asks_more {
                say!("  - {more}");
            }
            say!("if that is acceptable: `synchost package accept {name}@{version}`");
        }
        Stored::AlreadyThere => say!("{name} {version} is already installed with this content; nothing changed"),
    }
    Ok(())
}

/// `synchost package accept NAME@VERSION`
pub fn accept(config: &Path, package: &str) -> Result<(), CommandError> {
    let (store, _, data_dir) = store_of(config)?;
    let (name, Some(version)) = name_and_version(package)? else {
        return Err(CommandError::Reported(format!("name the version to accept: `synchost package accept {package}@VERSION`")));
    };
    let previous = store.accept(name, &version).map_err(refused)?;
    say!("{name} {version} is active (was {previous}); its capabilities are accepted");
    tell_running_host(&data_dir);
    Ok(())
}

/// `synchost package rollback NAME`
pub fn rollback(config: &Path, name: &str) -> Result<(), CommandError> {
    let (store, _, data_dir) = store_of(config)?;
    let (from, to) = store.rollback(name).map_err(refused)?;
    say!("{name}: {to} is active again (was {from}, which stays installed)");
    tell_running_host(&data_dir);
    Ok(())
}

/// `synchost package remove NAME[@VERSION]`
pub fn remove(config: &Path, package: &str) -> Result<(), CommandError> {
    let (store, _, _) = store_of(config)?;
    let (name, version) = name_and_version(package)?;
    if version.is_none() {
        // Only what the file says: a config with errors still names its users.
        let raw: toml::Table = std::fs::read_to_string(config).ok().and_then(|t| t.parse().ok()).unwrap_or_default();
        let users: Vec<String> = ["endpoints", "mappers"]
            .iter()
            .flat_map(|section| raw.get(*section).and_then(|s| s.as_table()).into_iter().flatten().map(move |(n, i)| (section, n, i)))
            .filter(|(_, _, instance)| instance.get("plugin").and_then(|p| p.as_str()).is_some_and(|p| crate::packages::split_id(p).0 == name))
            .map(|(section, n, _)| format!("[{section}.{n}]"))
            .collect();
        if !users.is_empty() {
            return Err(CommandError::Reported(format!(
                "{name} is in use by {}\n  = fix: change those to another plugin first, or remove only one version with `synchost package remove {name}@VERSION`",
                users.join(", ")
            )));
        }
    }
    store.remove(name, version.as_ref()).map_err(refused)?;
    match version {
        Some(version) => say!("removed {name} {version}"),
        None => say!("removed {name} and every installed version of it"),
    }
    Ok(())
}

/// `synchost package list [--json]`
pub fn list(config: &Path, json: bool) -> Result<(), CommandError> {
    let (store, _, _) = store_of(config)?;
    let listed = store.list().map_err(refused)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&listed).unwrap_or_default());
        return Ok(());
    }
    if listed.is_empty() {
        say!("no packages installed; `synchost package install FILE` installs one");
    }
    for package in listed {
        let installed: Vec<String> = package.installed.iter().map(ToString::to_string).collect();
        let pending = package.pending.map(|v| format!(", {v} waiting for `package accept`")).unwrap_or_default();
        let signed = if package.signed { "signed" } else { "UNSIGNED" };
        say!(
            "{:<24} {:<10} {:<9} by {:<12} {signed}; installed: {}{pending}",
            package.name,
            package.active.to_string(),
            format!("{:?}", package.kind).to_lowercase(),
            package.publisher,
            installed.join(", ")
        );
    }
    Ok(())
}

/// `synchost package info NAME`
pub fn info(config: &Path, name: &str) -> Result<(), CommandError> {
    let (store, _, _) = store_of(config)?;
    let active = store.active(name).map_err(refused)?.ok_or_else(|| CommandError::Reported(format!("no package named `{name}` is installed\n  = fix: see `synchost package list`")))?;
    for version in store.versions(name).map_err(refused)? {
        let (manifest, _) = store.manifest(name, &version).map_err(refused)?;
        let role = if version == active.version {
            " (active)"
        } else if active.pending.as_ref() == Some(&version) {
            " (waiting for `package accept`)"
        } else if active.history.contains(&version) {
            " (earlier active; `package rollback` goes back)"
        } else {
            ""
        };
        let p = &manifest.package;
        say!("{} {}{role}", p.name, p.version);
        say!("  {}", p.description);
        say!("  kind: {}, plugin API {}, publisher {}", p.kind.plugin_kind(), p.api, p.publisher);
        let caps = &manifest.capabilities;
        let sql: Vec<String> = caps.sql.iter().map(|d| format!("{d:?}").to_lowercase()).collect();
        let http: Vec<String> = caps.http.iter().map(ToString::to_string).collect();
        say!(
            "  asks for: SQL [{}], HTTP [{}], folders {}",
            sql.join(", "),
            http.join(", "),
            format!("{:?}", caps.folders).to_lowercase()
        );
        for (file, digest) in &manifest.files {
            say!("  {file}: sha256 {digest}");
        }
    }
    Ok(())
}

/// `synchost package verify`: every installed version checked again.
pub fn verify(config: &Path) -> Result<(), CommandError> {
    let (store, publishers, _) = store_of(config)?;
    let mut failed = 0;
    for (name, version, outcome) in store.verify(&publishers).map_err(refused)? {
        match outcome {
            Ok(true) => say!("{name} {version}: ok, signed by a trusted publisher"),
            Ok(false) => say!("{name} {version}: ok, UNSIGNED"),
            Err(error) => {
                failed += 1;
                say!("{name} {version}: FAILED: {}\n  = fix: {}", error.message, error.fix);
            }
        }
    }
    if failed > 0 {
        return Err(CommandError::Reported(format!("{failed} installed version(s) failed the check")));
    }
    Ok(())
}
