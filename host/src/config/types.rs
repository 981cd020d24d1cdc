//! The config file's types: what an admin writes in `synchost.toml`.
//!
//! Every struct denies unknown fields; names and values that have a shape are
//! newtypes checked when the file is read, so a mistake is reported at its line.
//! The JSON Schema in `schemas/synchost.schema.json` is generated from these types.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::pipeline::PipelineConfig;
use super::values::{ByteSize, ConnectionName, Dsn, HttpOrigin, InstanceName, PipelineName, PluginId, PublisherKey, Timeout};

/// A synchost config file.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Settings of the host process itself.
    #[serde(default)]
    pub host: HostSettings,
    /// Plugins loaded from `.wasm` files. Bundled plugins (`sql-table`,
    /// `crm-mapper`, `redmine`, `desktop-timesheet`, `project-plan`) and
    /// installed packages need no entry: they are known by name.
    #[serde(default)]
    pub plugins: BTreeMap<PluginId, PluginSource>,
    /// Connector instances: a connector plugin, its settings and what it may access.
    #[serde(default)]
    pub endpoints: BTreeMap<InstanceName, InstanceConfig>,
    /// Mapper instances: a mapper plugin and its rules.
    #[serde(default)]
    pub mappers: BTreeMap<InstanceName, InstanceConfig>,
    /// Pipelines: one entity of one endpoint kept in sync with one of another.
    #[serde(default)]
    pub pipelines: BTreeMap<PipelineName, PipelineConfig>,
    /// Replicas: another synchost host met only through messages (files on
    /// a disk, FTP, HTTP). A pipeline names a replica as one of its sides'
    /// endpoint, as it names an endpoint.
    #[serde(default)]
    pub replicas: BTreeMap<InstanceName, ReplicaConfig>,
    /// Scopes one person can lock while re-planning them (L2-L4).
    #[serde(default)]
    pub scopes: BTreeMap<InstanceName, super::scopes::ScopeConfig>,
}

/// `[replicas.NAME]`: the other host of a replica and how messages reach it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// `two-way` (changes both ways, in turns; acknowledgements; role swaps),
    /// `one-way` (the parent always sends, the child acknowledges) or
    /// `check-out` (the child always sends; no acknowledgements). Default two-way.
    #[serde(default)]
    pub kind: crate::replicas::ReplicaKind,
    /// This host's side: `parent` (it sends first) or `child`. Both hosts
    /// name the same kind and opposite sides.
    pub side: crate::replicas::ReplicaSide,
    /// The other host's name (its `[host] name`, or its machine's name).
    pub peer: String,
    /// The secret both hosts share: every message carries a MAC made with
    /// it, so a changed or foreign file is refused. `${VAR}` reads it from
    /// the environment.
    pub secret: String,
    /// A local folder pair, crossed between the two hosts: this host's
    /// `upload` is the other's `download`.
    pub folders: Option<FolderPair>,
    /// HTTP between the two hosts instead of folders (C3).
    pub http: Option<HttpLink>,
    /// Folders on an FTP server instead of local ones (C4).
    pub ftp: Option<FtpFolders>,
    /// How often `synchost run` exchanges through the folders unattended:
    /// imports what waits, then sends a data message when this host sends
    /// and has new changes, or an acknowledgement of what it imported.
    /// Without it, only the `synchost replicas` commands exchange.
    pub schedule: Option<super::values::Schedule>,
}

/// `[replicas.NAME.http]`: the passive host (the one the other can reach)
/// serves the exchange on its admin API; the active host connects to it on
/// its schedule, pushes its messages and pulls the other's.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpLink {
    /// `passive` (configure it first) or `active`.
    pub role: crate::replicas::LinkRole,
    /// Active only: the passive host's admin API, e.g. `https://hq.example.com:7878`.
    pub url: Option<String>,
    /// The password of this link, the same on both hosts; `${VAR}` reads it from the environment.
    pub password: String,
}

/// `[replicas.NAME.ftp]`: two folders on an FTP server both hosts reach,
/// crossed between them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FtpFolders {
    pub host: String,
    /// Default 21.
    #[serde(default = "ftp_port")]
    pub port: u16,
    pub user: String,
    /// `${VAR}` reads it from the environment.
    pub password: String,
    /// The folder this host stores its messages in (the other's `download`).
    pub upload: String,
    /// The folder the other host stores its messages in.
    pub download: String,
}

fn ftp_port() -> u16 {
    21
}

/// Where messages go to and come from (relative to the config file).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderPair {
    pub upload: PathBuf,
    pub download: PathBuf,
}

/// `[host]`: where the host keeps its files, and default limits.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSettings {
    /// This host's name, recorded with the state: a state that another host
    /// runs stops syncing until confirmed (`synchost endpoints rebind
    /// --host`). Default: the machine's name. Set it where that changes on
    /// every start (a container).
    pub name: Option<String>,
    /// Folder for state and caches, relative to the config file.
    /// Default: `synchost-data` beside the config file.
    pub data_dir: Option<PathBuf>,
    /// Folder for compiled plugins. Default: `<data_dir>/cache`.
    pub cache_dir: Option<PathBuf>,
    /// Limits for every plugin instance that does not set its own.
    #[serde(default)]
    pub limits: Limits,
    /// Publishers whose signed packages may be installed, by the name in
    /// their packages' manifests: `acme = "ed25519:..."` (as `synchost
    /// package keygen` prints it). A package is installed only if signed by
    /// its publisher's key here, unless `--allow-unsigned` is given.
    #[serde(default)]
    pub trusted_publishers: BTreeMap<String, PublisherKey>,
    /// The admin HTTP API and dashboard that `synchost run` serves.
    #[serde(default)]
    pub admin: AdminSettings,
}

/// `[host.admin]`: the admin HTTP API. Read at start: a change takes
/// effect when `synchost run` starts again.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Serve it. Default `true`.
    #[serde(default = "serve_admin")]
    pub enabled: bool,
    /// The address to listen on. Default `127.0.0.1:7878`: this machine
    /// only. Every request but `/healthz` and `/readyz` needs a token.
    #[serde(default = "default_admin_listen")]
    #[schemars(with = "String")]
    pub listen: std::net::SocketAddr,
    /// Serve it over HTTPS with this certificate and key (PEM files,
    /// relative to the config file): needed when `listen` is reachable
    /// from other machines, since tokens travel with every request.
    pub tls: Option<AdminTls>,
}

/// `[host.admin.tls]`: the admin API's certificate.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminTls {
    /// The certificate chain, PEM, the server's own certificate first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn serve_admin() -> bool {
    true
}

fn default_admin_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 7878))
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings { enabled: serve_admin(), listen: default_admin_listen(), tls: None }
    }
}

/// `[plugins.NAME]`: a plugin loaded from a file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginSource {
    /// The plugin component (`.wasm`), relative to the config file.
    #[schemars(with = "PathBuf")]
    pub path: Spanned<PathBuf>,
    /// Expected SHA-256 of the file (hex); the plugin is refused if it differs.
    #[schemars(with = "Option<String>")]
    pub sha256: Option<Spanned<String>>,
}

/// `[endpoints.NAME]` or `[mappers.NAME]`: one configured instance of a plugin.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    /// The plugin: a bundled plugin's name or a key of `[plugins]`.
    #[schemars(with = "PluginId")]
    pub plugin: Spanned<PluginId>,
    /// Plugin-specific settings, passed to the plugin as JSON.
    #[serde(default)]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub settings: toml::Table,
    /// What the instance may access. Everything else is denied.
    #[serde(default)]
    pub grants: Grants,
    /// Resource limits of one call into the plugin.
    #[serde(default)]
    pub limits: Limits,
}

/// Capabilities granted to one plugin instance.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Named SQL connections the plugin may use, by the name it uses.
    #[serde(default)]
    pub sql: BTreeMap<ConnectionName, SqlGrant>,
    /// HTTP access.
    #[serde(default)]
    pub http: HttpGrant,
    /// Folders the plugin may work with files in, by the name it uses (the
    /// plugin sees each at `/NAME`).
    #[serde(default)]
    pub files: BTreeMap<ConnectionName, FolderGrant>,
}

/// One folder on the host's disk.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderGrant {
    /// The folder (relative to the config file); it must exist.
    #[schemars(with = "String")]
    pub path: Spanned<PathBuf>,
    /// Allow reading only. Default false.
    #[serde(default)]
    pub read_only: bool,
    /// The most the folder may hold, e.g. `1GiB`: a write that would take it
    /// past this fails with "disk quota exceeded". Default 1 GiB.
    pub quota: Option<ByteSize>,
}

/// One named SQL connection.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlGrant {
    /// `sqlite:PATH` (relative to the config file).
    #[schemars(with = "Dsn")]
    pub dsn: Spanned<Dsn>,
    /// Allow only queries, no writes. Default false.
    #[serde(default)]
    pub read_only: bool,
}

/// HTTP hosts a plugin may send requests to.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpGrant {
    /// Allowed origins: `host`, `host:port`, or `scheme://host[:port]`.
    #[serde(default)]
    pub allow: Vec<HttpOrigin>,
    /// Only `GET`, `HEAD` and `OPTIONS`: the instance may look, not change.
    #[serde(default)]
    pub read_only: bool,
}

/// Limits of one call into a plugin. Unset values fall back to `[host.limits]`,
/// then to the built-in defaults.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock limit of one call, e.g. `30s`. Default 30 s.
    pub timeout: Option<Timeout>,
    /// Linear memory the plugin may grow to, e.g. `128MiB`. Default 128 MiB, at most 1 GiB.
    #[schemars(with = "Option<ByteSize>")]
    pub memory: Option<Spanned<ByteSize>>,
    /// Largest result a call may return, e.g. `32MiB`. Default 32 MiB. Also the
    /// largest HTTP response body and the largest result of one SQL statement
    /// batch the host hands the plugin.
    pub max_output: Option<ByteSize>,
    /// Log lines the instance may write per minute; more are dropped and
    /// counted. Default 1000.
    pub log_lines: Option<u32>,
    /// Log bytes the instance may write per minute; more are dropped and
    /// counted. Default `1MiB`.
    pub log_bytes: Option<ByteSize>,
    /// HTTP requests one call may send. Default 1000.
    pub http_requests: Option<u32>,
    /// Largest HTTP request body a plugin may send, e.g. `16MiB`. Default 16 MiB.
    pub http_body: Option<ByteSize>,
    /// SQL rows one call may read (results of `query` and `execute ... RETURNING`
    /// together). Default 1,000,000.
    pub sql_rows: Option<u64>,
    /// Longest single SQL value (string or blob) a statement may read or
    /// build, e.g. `4MiB`; at most `max_output` shared among the result's
    /// columns. Default 1 MiB.
    pub sql_value: Option<ByteSize>,
}
