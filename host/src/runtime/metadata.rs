//! What a plugin says about itself, read from the component's bytes before
//! anything is compiled or instantiated: its plugin API version and its kind.

use std::fmt;

use semver::{Version, VersionReq};

/// The plugin API version this host implements (`schemas/wit/plugin.wit`).
pub const HOST_API_VERSION: &str = "0.5.0";

/// The earlier plugin API versions this host still runs, each frozen in
/// `schemas/wit/since_vX.Y.Z`.
pub const EARLIER_API_VERSIONS: &[&str] = &["0.4.0", "0.3.0"];

/// Which bindings run a plugin of a supported API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    V0_3,
    V0_4,
    V0_5,
}

/// The bindings for a plugin API version, if this host runs it.
pub fn binding(version: &Version) -> Option<Binding> {
    let matches = |v: &str| VersionReq::parse(&format!("^{v}")).is_ok_and(|req| req.matches(version));
    if matches(HOST_API_VERSION) {
        Some(Binding::V0_5)
    } else if matches("0.4.0") {
        Some(Binding::V0_4)
    } else if matches("0.3.0") {
        Some(Binding::V0_3)
    } else {
        None
    }
}

/// The plugin API versions this host runs, as a person reads them:
/// `0.5.x or 0.4.x or 0.3.x` (compatible releases: same minor for 0.x, same major from 1.0).
pub fn supported_text() -> String {
    std::iter::once(HOST_API_VERSION)
        .chain(EARLIER_API_VERSIONS.iter().copied())
        .map(|v| format!("{}.x", v.rsplit_once('.').map_or(v, |(minor, _)| minor)))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// A connector or a mapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Connector,
    Mapper,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginKind::Connector => "connector",
            PluginKind::Mapper => "mapper",
        })
    }
}

/// The metadata the SDK embeds in custom sections.
#[derive(Debug, Clone)]
pub struct PluginMetadata {
    pub api_version: Version,
    pub kind: PluginKind,
    /// The bindings that run it.
    pub binding: Binding,
}

/// Why a plugin file cannot be used, before it is ever run.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{0}")]
    NotWasm(String),
    #[error("it is a core WebAssembly module, not a component; build it with `cargo build --target wasm32-wasip2`")]
    CoreModule,
    #[error("it has no `synchost:api-version` section, so it was not built with synchost-plugin-sdk; build it with the SDK's export_connector!/export_mapper! macro")]
    NoVersion,
    #[error("its `synchost:api-version` section `{0}` is not a semver version; rebuild it with synchost-plugin-sdk")]
    BadVersion(String),
    #[error("its `synchost:plugin-kind` section `{0}` is neither `connector` nor `mapper`; rebuild it with synchost-plugin-sdk")]
    BadKind(String),
    #[error(
        "it was built for plugin API {found}, but this host runs plugin API {accepts} (current: synchost:plugin@{host}); \
         rebuild it against synchost-plugin-sdk {host}, or run it on a host that supports API {found}",
        host = HOST_API_VERSION
    )]
    Incompatible { found: Version, accepts: String },
}

/// Reads the API version and kind from a component's custom sections (the
/// nested core module's sections included) and checks the version.
pub fn read(bytes: &[u8]) -> Result<PluginMetadata, MetadataError> {
    let mut version = None;
    let mut kind = None;
    let mut first = true;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| MetadataError::NotWasm(format!("it is not a valid WebAssembly file: {e}")))?;
        match payload {
            wasmparser::Payload::Version { encoding, .. } if first => {
                first = false;
                if encoding == wasmparser::Encoding::Module {
                    return Err(MetadataError::CoreModule);
                }
            }
            wasmparser::Payload::CustomSection(section) => match section.name() {
                "synchost:api-version" => version = Some(String::from_utf8_lossy(section.data()).into_owned()),
                "synchost:plugin-kind" => kind = Some(String::from_utf8_lossy(section.data()).into_owned()),
                _ => {}
            },
            _ => {}
        }
    }
    let version = version.ok_or(MetadataError::NoVersion)?;
    let api_version = Version::parse(version.trim()).map_err(|_| MetadataError::BadVersion(version.clone()))?;
    let kind = match kind.as_deref() {
        Some("connector") => PluginKind::Connector,
        Some("mapper") => PluginKind::Mapper,
        other => return Err(MetadataError::BadKind(other.unwrap_or("").to_owned())),
    };
    let Some(binding) = binding(&api_version) else {
        return Err(MetadataError::Incompatible { found: api_version, accepts: supported_text() });
    };
    Ok(PluginMetadata { api_version, kind, binding })
}
