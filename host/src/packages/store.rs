//! The package store under the data folder: every installed version of
//! every package, unpacked and checked, and which version is active.
//!
//! ```text
//! <data_dir>/packages/<name>/<version>/synchost-package.toml, the component, synchost-package.sig
//! <data_dir>/packages/<name>/active.toml   the active version, earlier active ones, a pending upgrade
//! ```
//!
//! Installed versions are kept, so a rollback is a change of `active.toml`
//! only. `active.toml` is replaced whole (written beside, then renamed), and
//! a running host watches it: an upgrade or a rollback is a hot reload.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::archive;
use super::manifest::{self, Manifest, MANIFEST_FILE};
use super::signature::{self, SIGNATURE_FILE};
use crate::runtime::metadata::{self, EARLIER_API_VERSIONS, HOST_API_VERSION};

/// A refusal or a failure, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PackageError {
    pub message: String,
    pub fix: String,
}

fn refuse(message: impl Into<String>, fix: impl Into<String>) -> PackageError {
    PackageError { message: message.into(), fix: fix.into() }
}

fn io(what: &str, path: &Path, error: std::io::Error) -> PackageError {
    refuse(format!("cannot {what} {}: {error}", path.display()), "check that the data folder is writable and the disk not full")
}

/// A package file that passed every check, ready to be stored.
#[derive(Debug)]
pub struct Checked {
    pub manifest: Manifest,
    pub files: BTreeMap<String, Vec<u8>>,
    /// The key that signed it, if signed.
    pub signed_by: Option<String>,
}

impl Checked {
    pub fn name(&self) -> &str {
        self.manifest.package.name.as_str()
    }

    pub fn version(&self) -> &Version {
        &self.manifest.package.version
    }
}

/// What the admin allows: trusted publishers, and whether unsigned packages may go in.
pub struct Trust<'a> {
    pub publishers: &'a BTreeMap<String, String>,
    pub allow_unsigned: bool,
}

/// `active.toml`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Active {
    pub version: Version,
    /// Versions active before, the latest last: what `rollback` goes back to.
    #[serde(default)]
    pub history: Vec<Version>,
    /// An installed upgrade that asks for more capabilities than the active
    /// version, waiting for the admin to accept them.
    pub pending: Option<Version>,
}

/// The package versions an endpoint may name: the host's API range.
fn served_api_versions() -> Vec<Version> {
    std::iter::once(HOST_API_VERSION).chain(EARLIER_API_VERSIONS.iter().copied()).filter_map(|v| Version::parse(v).ok()).collect()
}

/// Checks a package file: its shape, manifest, digests, signature, API range,
/// and that the component is what the manifest says.
pub fn check(bytes: &[u8], trust: &Trust<'_>) -> Result<Checked, PackageError> {
    let files = archive::unpack(bytes).map_err(|e| refuse(e.to_string(), "do not install it: get the package again from its publisher"))?;
    let manifest_bytes = &files[MANIFEST_FILE];
    let text = std::str::from_utf8(manifest_bytes).map_err(|_| refuse(format!("its {MANIFEST_FILE} is not UTF-8 text"), "get the package again from its publisher"))?;
    let manifest = manifest::parse(Path::new(MANIFEST_FILE), text).map_err(|e| refuse(format!("its manifest is invalid:\n{e}"), "ask the publisher for a fixed package"))?;
    let component = &manifest.package.component;
    if !manifest.files.contains_key(component) {
        return Err(refuse(format!("its manifest lists no digest for its component `{component}`"), "pack it with `synchost package pack`, which writes every digest"));
    }
    for (name, expected) in &manifest.files {
        let content = files.get(name).ok_or_else(|| refuse(format!("its manifest lists `{name}`, which is not in the package"), "get the package again from its publisher"))?;
        let actual = hex::encode(Sha256::digest(content));
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(refuse(
                format!("digest mismatch: `{name}` has SHA-256 {actual}, but the manifest says {expected}"),
                "do not install it: the file was changed after the package was made; get it again from its publisher",
            ));
        }
    }
    if let Some(extra) = files.keys().find(|name| !archive::is_package_file(name) && !manifest.files.contains_key(*name)) {
        return Err(refuse(format!("it holds `{extra}`, which its manifest does not list"), "get the package again from its publisher"));
    }
    let signed_by = match signature::verify(files.get(SIGNATURE_FILE).map(Vec::as_slice), manifest_bytes, &manifest.package.publisher, trust.publishers) {
        Ok(key) => Some(key),
        Err(signature::SignatureError::Unsigned) if trust.allow_unsigned => None,
        Err(error) => return Err(refuse(format!("signature: {error}"), error.fix())),
    };
    let api = &manifest.package.api;
    if !served_api_versions().iter().any(|v| api.matches(v)) {
        return Err(refuse(
            format!("it needs plugin API {api}, but this host runs plugin API {}", metadata::supported_text()),
            "install a version of the package made for this host's API, or upgrade synchost",
        ));
    }
    let plugin = metadata::read(&files[component]).map_err(|e| refuse(format!("its component `{component}`: {e}"), "ask the publisher for a fixed package"))?;
    if plugin.kind != manifest.package.kind.plugin_kind() {
        return Err(refuse(
            format!("its manifest says it is a {}, but its component is a {}", manifest.package.kind.plugin_kind(), plugin.kind),
            "ask the publisher for a fixed package",
        ));
    }
    if !api.matches(&plugin.api_version) {
        return Err(refuse(
            format!("its manifest says plugin API {api}, but its component was built for {}", plugin.api_version),
            "ask the publisher for a fixed package",
        ));
    }
    Ok(Checked { manifest, files, signed_by })
}

/// One installed package, for `list`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub name: String,
    pub active: Version,
    pub installed: Vec<Version>,
    pub pending: Option<Version>,
    pub kind: manifest::Kind,
    pub publisher: String,
    pub signed: bool,
}

/// A package version an endpoint resolved to.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub manifest: Manifest,
    pub component: Vec<u8>,
}

/// What an install or upgrade did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Now the active version.
    Active { previous: Option<Version> },
    /// Installed, not active: held back by the admin, or it asks for these
    /// capabilities beyond the active version's.
    Pending { asks_more: Vec<String> },
    /// The same content was already installed; nothing changed.
    AlreadyThere,
}

/// The store in a data folder.
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(data_dir: &Path) -> Store {
        Store { root: data_dir.join("packages") }
    }

    fn folder(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn version_folder(&self, name: &str, version: &Version) -> PathBuf {
        self.folder(name).join(version.to_string())
    }

    /// The file a running host watches for a package's active version.
    pub fn active_file(&self, name: &str) -> PathBuf {
        self.folder(name).join("active.toml")
    }

    pub fn active(&self, name: &str) -> Result<Option<Active>, PackageError> {
        let path = self.active_file(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &path, e)),
        };
        toml::from_str(&text).map(Some).map_err(|e| refuse(format!("{} is damaged: {}", path.display(), e.message()), format!("reinstall the package, or remove {}", path.display())))
    }

    fn write_active(&self, name: &str, active: &Active) -> Result<(), PackageError> {
        let path = self.active_file(name);
        let temporary = path.with_extension("toml.tmp");
        std::fs::write(&temporary, toml::to_string(active).expect("active serializes")).map_err(|e| io("write", &temporary, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| io("write", &path, e))
    }

    /// The installed versions of a package, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<Version>, PackageError> {
        let folder = self.folder(name);
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("read", &folder, e)),
        };
        let mut versions: Vec<Version> = entries.filter_map(|e| Version::parse(&e.ok()?.file_name().to_string_lossy()).ok()).collect();
        versions.sort();
        Ok(versions)
    }

    /// The manifest of an installed version.
    pub fn manifest(&self, name: &str, version: &Version) -> Result<(Manifest, Vec<u8>), PackageError> {
        let path = self.version_folder(name, version).join(MANIFEST_FILE);
        let bytes = std::fs::read(&path).map_err(|e| io("read", &path, e))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let manifest = manifest::parse(&path, &text).map_err(|e| refuse(format!("the installed manifest is damaged:\n{e}"), format!("reinstall {name} {version}")))?;
        Ok((manifest, bytes))
    }

    /// Writes a checked package's files as an installed version (all or nothing).
    fn put(&self, checked: &Checked) -> Result<bool, PackageError> {
        let target = self.version_folder(checked.name(), checked.version());
        if target.exists() {
            let (_, installed) = self.manifest(checked.name(), checked.version())?;
            if installed == checked.files[MANIFEST_FILE] {
                return Ok(false);
            }
            return Err(refuse(
                format!("{} {} is already installed with other content", checked.name(), checked.version()),
                format!(
                    "a new release needs a new version number; if this one is meant to replace it, `synchost package remove {}@{}` first",
                    checked.name(),
                    checked.version()
                ),
            ));
        }
        let temporary = self.folder(checked.name()).join(format!(".{}.partial", checked.version()));
        let _ = std::fs::remove_dir_all(&temporary);
        std::fs::create_dir_all(&temporary).map_err(|e| io("create", &temporary, e))?;
        for (file, bytes) in &checked.files {
            let path = temporary.join(file);
            std::fs::write(&path, bytes).map_err(|e| io("write", &path, e))?;
        }
        std::fs::rename(&temporary, &target).map_err(|e| io("write", &target, e))?;
        Ok(true)
    }

    /// Installs a package that is not installed yet; it becomes active.
    pub fn install(&self, checked: &Checked) -> Result<Stored, PackageError> {
        if let Some(active) = self.active(checked.name())? {
            if active.version == *checked.version() {
                self.put(checked)?;
                return Ok(Stored::AlreadyThere);
            }
            return Err(refuse(
                format!("{} is already installed (active: {})", checked.name(), active.version),
                "to install another version, use `synchost package upgrade FILE`",
            ));
        }
        self.put(checked)?;
        self.write_active(checked.name(), &Active { version: checked.version().clone(), history: Vec::new(), pending: None })?;
        Ok(Stored::Active { previous: None })
    }

    /// Installs another version of an installed package. It becomes active,
    /// unless it asks for more capabilities than the active version or the
    /// admin holds it back (`hold`, to try it with a shadow run first): then
    /// it waits for [`Store::accept`].
    pub fn upgrade(&self, checked: &Checked, hold: bool) -> Result<Stored, PackageError> {
        let name = checked.name();
        let Some(mut active) = self.active(name)? else {
            return Err(refuse(format!("{name} is not installed"), "install it with `synchost package install FILE`"));
        };
        if active.version == *checked.version() {
            self.put(checked)?;
            return Ok(Stored::AlreadyThere);
        }
        let (current, _) = self.manifest(name, &active.version)?;
        self.put(checked)?;
        let asks_more = checked.manifest.capabilities.beyond(&current.capabilities);
        if hold || !asks_more.is_empty() {
            active.pending = Some(checked.version().clone());
            self.write_active(name, &active)?;
            return Ok(Stored::Pending { asks_more });
        }
        let previous = active.version.clone();
        active.history.push(std::mem::replace(&mut active.version, checked.version().clone()));
        active.pending = None;
        self.write_active(name, &active)?;
        Ok(Stored::Active { previous: Some(previous) })
    }

    /// Makes a pending upgrade active: the admin accepts what it asks for.
    pub fn accept(&self, name: &str, version: &Version) -> Result<Version, PackageError> {
        let mut active = self.active(name)?.ok_or_else(|| refuse(format!("{name} is not installed"), "see `synchost package list`"))?;
        if active.pending.as_ref() != Some(version) {
            return Err(refuse(format!("{name} {version} is not waiting for acceptance"), "see `synchost package info NAME`"));
        }
        let previous = std::mem::replace(&mut active.version, version.clone());
        active.history.push(previous.clone());
        active.pending = None;
        self.write_active(name, &active)?;
        Ok(previous)
    }

    /// Makes the version active before the current one active again.
    pub fn rollback(&self, name: &str) -> Result<(Version, Version), PackageError> {
        let mut active = self.active(name)?.ok_or_else(|| refuse(format!("{name} is not installed"), "see `synchost package list`"))?;
        let Some(earlier) = active.history.pop() else {
            return Err(refuse(format!("{name} has no earlier active version to go back to"), "install the version you want with `synchost package upgrade FILE`"));
        };
        let from = std::mem::replace(&mut active.version, earlier.clone());
        active.pending = None;
        self.write_active(name, &active)?;
        Ok((from, earlier))
    }

    /// Removes one installed version that is not active, or the whole package.
    pub fn remove(&self, name: &str, version: Option<&Version>) -> Result<(), PackageError> {
        let active = self.active(name)?.ok_or_else(|| refuse(format!("{name} is not installed"), "see `synchost package list`"))?;
        match version {
            None => {
                let folder = self.folder(name);
                std::fs::remove_dir_all(&folder).map_err(|e| io("remove", &folder, e))
            }
            Some(version) if *version == active.version => Err(refuse(
                format!("{name} {version} is the active version"),
                format!("roll back or upgrade first, or remove the whole package with `synchost package remove {name}`"),
            )),
            Some(version) => {
                let folder = self.version_folder(name, version);
                if !folder.exists() {
                    return Err(refuse(format!("{name} {version} is not installed"), format!("see `synchost package info {name}`")));
                }
                let mut active = active;
                active.history.retain(|v| v != version);
                if active.pending.as_ref() == Some(version) {
                    active.pending = None;
                }
                self.write_active(name, &active)?;
                std::fs::remove_dir_all(&folder).map_err(|e| io("remove", &folder, e))
            }
        }
    }

    /// Every installed package.
    pub fn list(&self) -> Result<Vec<Listed>, PackageError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("read", &self.root, e)),
        };
        let mut names: Vec<String> = entries.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect();
        names.sort();
        let mut listed = Vec::new();
        for name in names {
            let Some(active) = self.active(&name)? else { continue };
            let (manifest, _) = self.manifest(&name, &active.version)?;
            listed.push(Listed {
                signed: self.version_folder(&name, &active.version).join(SIGNATURE_FILE).exists(),
                installed: self.versions(&name)?,
                active: active.version,
                pending: active.pending,
                kind: manifest.package.kind,
                publisher: manifest.package.publisher,
                name,
            });
        }
        Ok(listed)
    }

    /// The version an endpoint's `plugin = "NAME"` or `"NAME@PIN"` runs:
    /// the active one, or the newest installed one the pin allows (`@1.2`:
    /// any 1.2.x; `@1.2.3`: exactly that). Its component is checked against
    /// the digest in its manifest.
    pub fn resolve(&self, name: &str, pin: Option<&str>) -> Result<Resolved, PackageError> {
        let active = self.active(name)?.ok_or_else(|| {
            refuse(format!("no package named `{name}` is installed"), format!("install it with `synchost package install FILE`; `synchost package list` shows what is installed"))
        })?;
        let version = match pin {
            None => active.version,
            Some(pin) => {
                let requirement = VersionReq::parse(&format!("={pin}"))
                    .map_err(|e| refuse(format!("`{name}@{pin}`: `{pin}` is not a version ({e})"), "pin a version as NAME@1.2 or NAME@1.2.3"))?;
                self.versions(name)?.into_iter().rev().find(|v| requirement.matches(v)).ok_or_else(|| {
                    refuse(format!("no installed version of `{name}` is {pin}"), format!("install it with `synchost package upgrade FILE`; `synchost package info {name}` lists the installed versions"))
                })?
            }
        };
        let (manifest, _) = self.manifest(name, &version)?;
        let path = self.version_folder(name, &version).join(&manifest.package.component);
        let component = std::fs::read(&path).map_err(|e| io("read", &path, e))?;
        let expected = &manifest.files[&manifest.package.component];
        let actual = hex::encode(Sha256::digest(&component));
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(refuse(
                format!("the installed component of {name} {version} has changed since it was installed (SHA-256 {actual}, the manifest says {expected})"),
                format!("reinstall it from the package file; `synchost package verify` checks every installed package"),
            ));
        }
        Ok(Resolved { manifest, component })
    }

    /// Checks every installed version again: digests, and signatures
    /// against today's trust list. One result per version.
    pub fn verify(&self, publishers: &BTreeMap<String, String>) -> Result<Vec<(String, Version, Result<bool, PackageError>)>, PackageError> {
        let mut results = Vec::new();
        for listed in self.list()? {
            for version in &listed.installed {
                let folder = self.version_folder(&listed.name, version);
                let outcome = (|| {
                    let (manifest, manifest_bytes) = self.manifest(&listed.name, version)?;
                    for (file, expected) in &manifest.files {
                        let path = folder.join(file);
                        let bytes = std::fs::read(&path).map_err(|e| io("read", &path, e))?;
                        let actual = hex::encode(Sha256::digest(&bytes));
                        if !actual.eq_ignore_ascii_case(expected) {
                            return Err(refuse(format!("`{file}` has SHA-256 {actual}, the manifest says {expected}"), "reinstall it from the package file"));
                        }
                    }
                    let signature = std::fs::read(folder.join(SIGNATURE_FILE)).ok();
                    match signature::verify(signature.as_deref(), &manifest_bytes, &manifest.package.publisher, publishers) {
                        Ok(_) => Ok(true),
                        Err(signature::SignatureError::Unsigned) => Ok(false),
                        Err(error) => Err(refuse(format!("signature: {error}"), error.fix())),
                    }
                })();
                results.push((listed.name.clone(), version.clone(), outcome));
            }
        }
        Ok(results)
    }
}
