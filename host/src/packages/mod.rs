//! Plugin packages (H4): how vendors ship connectors and mappers, and how
//! admins install, upgrade and roll them back.
//!
//! A package is one file: a manifest (`synchost-package.toml`: name, semver
//! version, kind, the plugin API range it needs, publisher, the capabilities
//! it asks for, the SHA-256 of each file), the component, and an Ed25519
//! signature over the manifest. An endpoint names a package by name (the
//! active version) or pinned (`acme-tickets@1.2`); its grants must lie within
//! what the package asks for.
//!
//! - `manifest`: the manifest, capabilities and how grants are checked against them.
//! - `archive`: packing and (guarded) unpacking of a package file.
//! - `signature`: keys, signing, and checking against the trusted publishers.
//! - `store`: installed versions under the data folder, the active version, install/upgrade/rollback.

pub mod archive;
pub mod manifest;
pub mod signature;
pub mod store;

pub use manifest::{Capabilities, Manifest, MANIFEST_FILE};
pub use store::{check, PackageError, Resolved, Store, Stored, Trust};

/// An endpoint's `plugin` as a package: its name and the version pin, if any.
pub fn split_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once('@') {
        Some((name, pin)) => (name, Some(pin)),
        None => (id, None),
    }
}
