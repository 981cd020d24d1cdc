//! `synchost-package.toml`: what a package is, what it needs from the host,
//! what it asks to be allowed, and the digest of each of its files.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, ConfigErrors, HttpOrigin, SqlGrant};
use crate::runtime::PluginKind;

/// The manifest's file name inside a package and in a vendor's crate.
pub const MANIFEST_FILE: &str = "synchost-package.toml";

/// A package manifest.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub package: PackageInfo,
    #[serde(default)]
    pub capabilities: Capabilities,
    /// The SHA-256 (hex) of each file of the package, by file name. Filled in by `synchost package pack`.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// `[package]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PackageInfo {
    /// Lower-case letters, digits and `-`, starting with a letter: how endpoints name it.
    pub name: PackageName,
    pub version: Version,
    pub kind: Kind,
    /// The plugin API versions it runs on, e.g. `^0.5`.
    pub api: VersionReq,
    pub description: String,
    /// Who signs it: the name under which admins trust the publisher's key.
    pub publisher: String,
    /// The component's file name.
    #[serde(default = "default_component")]
    pub component: String,
}

fn default_component() -> String {
    "plugin.wasm".into()
}

/// A connector or a mapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Connector,
    Mapper,
}

impl Kind {
    pub fn plugin_kind(self) -> PluginKind {
        match self {
            Kind::Connector => PluginKind::Connector,
            Kind::Mapper => PluginKind::Mapper,
        }
    }
}

/// A package's name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct PackageName(String);

impl PackageName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PackageName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let valid = (1..=64).contains(&value.len())
            && value.starts_with(|c: char| c.is_ascii_lowercase())
            && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(PackageName(value))
        } else {
            Err(format!("`{value}` is not a package name: use up to 64 lower-case letters, digits and `-`, starting with a letter"))
        }
    }
}

impl From<PackageName> for String {
    fn from(name: PackageName) -> String {
        name.0
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[capabilities]`: the most any endpoint may grant an instance of the package.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// SQL dialects it may be given connections to: `sqlite`.
    #[serde(default)]
    pub sql: Vec<SqlDialect>,
    /// HTTP origins it may be allowed to reach: `https://api.example.com`,
    /// `api.example.com:8443`, or a pattern for every subdomain, `https://*.example.com`.
    #[serde(default)]
    pub http: Vec<OriginPattern>,
    /// Folders it may be given: `none`, `read` or `read-write`.
    #[serde(default)]
    pub folders: FolderAccess,
}

/// A SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlDialect {
    Sqlite,
}

/// What a package may do with folders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FolderAccess {
    #[default]
    None,
    Read,
    ReadWrite,
}

/// An HTTP origin a package asks for; its host may start with `*.` for every subdomain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct OriginPattern {
    text: String,
    scheme: Option<String>,
    /// `api.example.com`, or `.example.com` for `*.example.com`.
    host: String,
    port: Option<u16>,
}

impl TryFrom<String> for OriginPattern {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        // The wildcard is not a host name character: parse with a placeholder label.
        let wildcard = value.contains("*.");
        let parsed = HttpOrigin::try_from(value.replacen("*.", "wildcard.", 1))?;
        if value.matches('*').count() > usize::from(wildcard) || (wildcard && !parsed.host.starts_with("wildcard.")) {
            return Err(format!("`{value}`: a pattern may only start its host with `*.`, as in `https://*.example.com`"));
        }
        let host = if wildcard { parsed.host.trim_start_matches("wildcard").to_owned() } else { parsed.host };
        Ok(OriginPattern { text: value, scheme: parsed.scheme, host, port: parsed.port })
    }
}

impl From<OriginPattern> for String {
    fn from(pattern: OriginPattern) -> String {
        pattern.text
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl OriginPattern {
    /// Whether a granted origin lies within this pattern: the same or a
    /// narrower scheme, a matching host, the same port.
    pub fn covers(&self, granted: &HttpOrigin) -> bool {
        let scheme = match (&self.scheme, &granted.scheme) {
            (None, _) => true,
            (Some(wanted), Some(granted)) => wanted == granted,
            (Some(_), None) => false,
        };
        let host = if self.host.starts_with('.') {
            granted.host.ends_with(&self.host) && granted.host.len() > self.host.len()
        } else {
            granted.host == self.host
        };
        scheme && host && self.port == granted.port
    }

    /// Whether every origin `other` covers, this covers too.
    pub fn includes(&self, other: &OriginPattern) -> bool {
        let scheme = self.scheme.is_none() || self.scheme == other.scheme;
        let host = if self.host.starts_with('.') { other.host.ends_with(&self.host) } else { self.host == other.host };
        scheme && host && self.port == other.port
    }
}

impl Capabilities {
    /// What `self` asks for beyond `allowed`, as a person reads it; empty if nothing.
    pub fn beyond(&self, allowed: &Capabilities) -> Vec<String> {
        let mut more = Vec::new();
        for dialect in self.sql.iter().filter(|d| !allowed.sql.contains(d)) {
            more.push(format!("SQL connections ({dialect:?})").to_lowercase());
        }
        for pattern in self.http.iter().filter(|p| !allowed.http.iter().any(|a| a.includes(p))) {
            more.push(format!("HTTP {pattern}"));
        }
        if self.folders > allowed.folders {
            more.push(format!("folders ({})", match self.folders {
                FolderAccess::None => "none",
                FolderAccess::Read => "read",
                FolderAccess::ReadWrite => "read-write",
            }));
        }
        more
    }

    /// What an endpoint grants beyond these capabilities, one line per grant.
    pub fn exceeded_by(&self, sql: &BTreeMap<crate::config::ConnectionName, SqlGrant>, http: &[HttpOrigin], folders: &[(String, bool)]) -> Vec<String> {
        let mut over = Vec::new();
        if !sql.is_empty() && !self.sql.contains(&SqlDialect::Sqlite) {
            for name in sql.keys() {
                over.push(format!("SQL connection `{name}` (sqlite), but the package asks for no SQL connections"));
            }
        }
        for origin in http.iter().filter(|origin| !self.http.iter().any(|p| p.covers(origin))) {
            let asked = if self.http.is_empty() { "none".to_owned() } else { self.http.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ") };
            over.push(format!("HTTP origin `{origin}`, but the package asks only for: {asked}"));
        }
        for (name, read_only) in folders {
            let allowed = match self.folders {
                FolderAccess::None => false,
                FolderAccess::Read => *read_only,
                FolderAccess::ReadWrite => true,
            };
            if !allowed {
                let how = if *read_only { "read" } else { "read-write" };
                over.push(format!("folder `{name}` ({how}), but the package asks for folders: {:?}", self.folders).to_lowercase());
            }
        }
        over
    }
}

/// Parses a manifest, each error with its line and column and the fix.
pub fn parse(file: &Path, source: &str) -> Result<Manifest, ConfigErrors> {
    toml::from_str(source).map_err(|error| {
        ConfigErrors(vec![ConfigError::at(file, source, error.span(), error.message().to_owned()).fix(format!(
            "see the manifest's fields in docs/packages.md; `synchost package new` writes a complete {MANIFEST_FILE}"
        ))])
    })
}

/// The manifest as TOML text.
pub fn render(manifest: &Manifest) -> String {
    toml::to_string(manifest).expect("a manifest serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> OriginPattern {
        OriginPattern::try_from(text.to_owned()).unwrap()
    }

    fn origin(text: &str) -> HttpOrigin {
        HttpOrigin::try_from(text.to_owned()).unwrap()
    }

    #[test]
    fn a_subdomain_pattern_covers_subdomains_only_on_its_scheme_and_port() {
        let p = pattern("https://*.acme.example");
        assert!(p.covers(&origin("https://api.acme.example")));
        assert!(p.covers(&origin("https://eu.api.acme.example")));
        assert!(!p.covers(&origin("https://acme.example")), "the bare domain is not a subdomain");
        assert!(!p.covers(&origin("https://evilacme.example")));
        assert!(!p.covers(&origin("http://api.acme.example")), "another scheme");
        assert!(!p.covers(&origin("api.acme.example")), "any scheme is wider than https");
        assert!(!p.covers(&origin("https://api.acme.example:8443")), "another port");
        assert!(pattern("api.acme.example").covers(&origin("https://api.acme.example")));
    }

    #[test]
    fn malformed_patterns_are_refused_with_the_right_shape() {
        for bad in ["https://api.*.example", "https://**.example", "ftp://x.example", "https://x.example/path"] {
            assert!(OriginPattern::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_upgrade_asking_for_more_is_told_what_more() {
        let old = Capabilities { http: vec![pattern("https://*.acme.example")], ..Default::default() };
        let same = Capabilities { http: vec![pattern("https://api.acme.example")], ..Default::default() };
        assert!(same.beyond(&old).is_empty());
        let more = Capabilities { http: vec![pattern("https://tracker.example")], sql: vec![SqlDialect::Sqlite], folders: FolderAccess::Read };
        assert_eq!(more.beyond(&old), ["sql connections (sqlite)", "HTTP https://tracker.example", "folders (read)"]);
    }

    #[test]
    fn a_manifest_error_names_its_line() {
        let text = "[package]\nname = \"Acme\"\nversion = \"1.0.0\"\nkind = \"connector\"\napi = \"^0.4\"\ndescription = \"\"\npublisher = \"acme\"\n";
        let error = parse(Path::new("synchost-package.toml"), text).unwrap_err().to_string();
        assert!(error.contains("synchost-package.toml:2:8") && error.contains("not a package name"), "{error}");
    }
}
