//! The host config: `synchost.toml`.
//!
//! - `types`: the structs an admin writes (and the JSON Schema is generated from).
//! - `values`: newtypes for names, connection strings, origins, durations and sizes.
//! - `load`: reading a file, reporting every error at once with its location and fix.
//! - `error`: the error type and its rustc-style rendering.
//! - `pipeline`: `[pipelines.NAME]`, with policies and kinds of data.
//! - `scopes`: `[scopes.NAME]`, the lockable scopes.
//! - `diff`: what a reload adds, changes and removes.
//! - `watcher`: the files a running host watches for a reload.

mod diff;
mod error;
mod load;
mod pipeline;
mod scopes;
mod types;
mod values;
pub mod watcher;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use diff::{diff, ConfigDiff, ConfigView, PieceChange};
pub use error::{ConfigError, ConfigErrors};
pub use types::{Config, FolderPair, Grants, HostSettings, HttpGrant, InstanceConfig, Limits, PluginSource, ReplicaConfig, SqlGrant};
pub use scopes::{Editor, ScopeConfig};
pub use pipeline::{ApprovalConfig, ConflictPolicy, DataCategory, NoteFields, DeletePolicy, FieldCheck, FieldRule, Flow, MirrorFields, PipelineConfig, RetryConfig, ScopeValue, Side, SideConfig};
pub use values::{ByteSize, ConnectionName, Dsn, HttpOrigin, InstanceName, PipelineName, PluginId, PublisherKey, Schedule, Timeout};

/// The config file a command uses when none is given.
pub const DEFAULT_CONFIG_FILE: &str = "synchost.toml";

/// A config file that parsed and passed validation, with its paths resolved.
#[derive(Debug)]
pub struct LoadedConfig {
    /// The file it was read from.
    pub path: PathBuf,
    /// Relative paths in the file are relative to this folder.
    pub base_dir: PathBuf,
    pub config: Config,
    /// The file's tables as written, to tell what a reload changes.
    pub raw: toml::Table,
}

/// Limits and budgets of one plugin instance, after defaults are applied.
/// `docs/sandbox.md` lists each with its default and what it guards against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EffectiveLimits {
    pub timeout: Duration,
    pub memory: u64,
    pub max_output: u64,
    pub log_lines: u32,
    pub log_bytes: u64,
    pub http_requests: u32,
    pub http_body: u64,
    pub sql_rows: u64,
    pub sql_value: u64,
}

impl Default for EffectiveLimits {
    fn default() -> Self {
        EffectiveLimits {
            timeout: Duration::from_secs(30),
            memory: 128 << 20,
            max_output: 32 << 20,
            log_lines: 1000,
            log_bytes: 1 << 20,
            http_requests: 1000,
            http_body: 16 << 20,
            sql_rows: 1_000_000,
            sql_value: 1 << 20,
        }
    }
}

/// The default quota of a read-write folder grant.
pub const DEFAULT_FOLDER_QUOTA: u64 = 1 << 30;

impl EffectiveLimits {
    /// These limits with the values `limits` sets replaced.
    pub fn overridden_by(self, limits: &Limits) -> Self {
        EffectiveLimits {
            timeout: limits.timeout.map_or(self.timeout, |t| t.0),
            memory: limits.memory.as_ref().map_or(self.memory, |m| m.get_ref().0),
            max_output: limits.max_output.map_or(self.max_output, |m| m.0),
            log_lines: limits.log_lines.unwrap_or(self.log_lines),
            log_bytes: limits.log_bytes.map_or(self.log_bytes, |m| m.0),
            http_requests: limits.http_requests.unwrap_or(self.http_requests),
            http_body: limits.http_body.map_or(self.http_body, |m| m.0),
            sql_rows: limits.sql_rows.unwrap_or(self.sql_rows),
            sql_value: limits.sql_value.map_or(self.sql_value, |m| m.0),
        }
    }
}

/// What commands that work despite config errors need of `[host]`.
pub struct HostFacts {
    pub data_dir: PathBuf,
    pub trusted_publishers: std::collections::BTreeMap<String, String>,
    /// The admin API's certificate, when it is served over TLS.
    pub admin_certificate: Option<PathBuf>,
}

impl LoadedConfig {
    /// `FILE:LINE:COLUMN` of a key in the `settings` of `[SECTION.INSTANCE]`
    /// (see `load::settings_span`), for a plugin's complaint about them.
    pub fn settings_place(&self, section: &str, instance: &str, key: Option<&str>) -> Option<String> {
        let source = std::fs::read_to_string(&self.path).ok()?;
        let span = load::settings_span(&source, section, instance, key)?;
        let (line, column) = ConfigError::at(&self.path, &source, Some(span), "").location?;
        Some(format!("{}:{line}:{column}", self.path.display()))
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let source = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError::at(path, "", None, format!("cannot read the config file: {e}"))
                .fix("check the path, or pass another file with --config")])
        })?;
        Self::parse(path, &source)
    }

    /// Validates config text as if read from `path`.
    pub fn parse(path: &Path, source: &str) -> Result<Self, ConfigErrors> {
        let config = load::parse(path, source)?;
        // Known as secrets from the start, for every command, not only those
        // that load plugins.
        for instance in config.endpoints.values().chain(config.mappers.values()) {
            settings_json(&instance.settings);
        }
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base_dir = if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir };
        // It parsed as a config, so it parses as TOML.
        let raw = source.parse().unwrap_or_default();
        Ok(LoadedConfig { path: path.to_owned(), base_dir, config, raw })
    }

    /// The `[host]` settings of a config that may have errors elsewhere
    /// (what the package and remote commands need), with its paths resolved.
    pub fn host_settings_despite_errors(path: &Path) -> Result<HostFacts, ConfigErrors> {
        let source = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError::at(path, "", None, format!("cannot read the config file: {e}")).fix("check the path, or pass another file with --config")])
        })?;
        let raw: toml::Table = source.parse().map_err(|e: toml::de::Error| {
            ConfigErrors(vec![ConfigError::at(path, &source, e.span(), e.message().to_owned()).fix("fix the TOML syntax at this place")])
        })?;
        let host: HostSettings = match raw.get("host").cloned() {
            None => HostSettings::default(),
            Some(value) => value.try_into().map_err(|e: toml::de::Error| {
                ConfigErrors(vec![ConfigError::at(path, &source, None, format!("[host]: {}", e.message())).fix("correct [host]; see schemas/synchost.schema.json")])
            })?,
        };
        let base_dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let resolve = |p: &Path| if p.is_absolute() { p.to_owned() } else { base_dir.join(p) };
        Ok(HostFacts {
            data_dir: resolve(host.data_dir.as_deref().unwrap_or(Path::new("synchost-data"))),
            trusted_publishers: host.trusted_publishers.into_iter().map(|(name, key)| (name, key.0)).collect(),
            admin_certificate: host.admin.tls.map(|tls| resolve(&tls.cert)),
        })
    }

    /// The state database a config file names even when the file has
    /// errors, as long as it is TOML: what commands that only read state
    /// need while an admin puts a bad edit right.
    pub fn state_path_despite_errors(path: &Path) -> Option<PathBuf> {
        let raw: toml::Table = std::fs::read_to_string(path).ok()?.parse().ok()?;
        let data_dir = match raw.get("host").and_then(|host| host.get("data_dir")) {
            Some(value) => PathBuf::from(value.as_str()?),
            None => PathBuf::from("synchost-data"),
        };
        let base_dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let data_dir = if data_dir.is_absolute() { data_dir } else { base_dir.join(data_dir) };
        Some(data_dir.join("state.sqlite"))
    }

    /// A path from the config, resolved against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_owned() } else { self.base_dir.join(path) }
    }

    /// Trusted publishers' keys by publisher name.
    pub fn trusted_publishers(&self) -> std::collections::BTreeMap<String, String> {
        self.config.host.trusted_publishers.iter().map(|(name, key)| (name.clone(), key.0.clone())).collect()
    }

    /// The installed packages.
    pub fn packages(&self) -> crate::packages::Store {
        crate::packages::Store::new(&self.data_dir())
    }

    /// The folder for state and caches.
    pub fn data_dir(&self) -> PathBuf {
        self.resolve(self.config.host.data_dir.as_deref().unwrap_or(Path::new("synchost-data")))
    }

    /// The state database.
    pub fn state_path(&self) -> PathBuf {
        self.data_dir().join("state.sqlite")
    }

    /// The folder for compiled plugins.
    pub fn cache_dir(&self) -> PathBuf {
        match &self.config.host.cache_dir {
            Some(dir) => self.resolve(dir),
            None => self.data_dir().join("cache"),
        }
    }

    /// The limits of one instance: its own, else `[host.limits]`, else the defaults.
    pub fn limits(&self, instance: &InstanceConfig) -> EffectiveLimits {
        EffectiveLimits::default().overridden_by(&self.config.host.limits).overridden_by(&instance.limits)
    }

    /// Settings taken from environment variables that are not set. Only what
    /// starts plugins needs them: a command that reads the state store works
    /// without the secrets.
    pub fn missing_variables(&self) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        for (section, instances) in [("endpoints", &self.config.endpoints), ("mappers", &self.config.mappers)] {
            for (name, instance) in instances {
                for (key, variable) in env_references(&instance.settings) {
                    if std::env::var_os(&variable).is_none() {
                        errors.push(
                            ConfigError::at(&self.path, "", None, format!("[{section}.{name}.settings] {key} takes its value from the environment variable {variable}, which is not set"))
                                .fix(format!("set {variable} in the environment synchost starts in, or write the value into the config")),
                        );
                    }
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(ConfigErrors(errors)) }
    }

    /// An endpoint or mapper by name.
    pub fn instance(&self, name: &str) -> Option<(&InstanceName, &InstanceConfig)> {
        self.config.endpoints.iter().chain(&self.config.mappers).find(|(n, _)| n.as_str() == name)
    }
}

/// Converts plugin settings to the JSON a plugin receives.
/// The name of the environment variable a setting names as its whole value
/// (`"${REDMINE_API_KEY}"`): how secrets stay out of config files.
fn env_reference(value: &str) -> Option<&str> {
    let name = value.strip_prefix("${")?.strip_suffix('}')?;
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(name)
}

/// Every setting (dotted key) whose value is `"${VARIABLE}"`, with the variable.
pub fn env_references(settings: &toml::Table) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
        match value {
            toml::Value::String(s) => out.extend(env_reference(s).map(|v| (prefix.to_owned(), v.to_owned()))),
            toml::Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| walk(&format!("{prefix}[{i}]"), v, out)),
            toml::Value::Table(table) => table.iter().for_each(|(k, v)| walk(&format!("{prefix}.{k}"), v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (key, value) in settings {
        walk(key, value, &mut out);
    }
    out
}

/// An instance's settings as the JSON its plugin receives; `"${VARIABLE}"`
/// values are replaced by the variable's value from the environment. Every
/// substituted value, and every value under a key that looks secret, is
/// registered with [`crate::secrets`] so that it is masked wherever it shows.
/// A secret set in the config: `${VAR}` reads it from the environment.
/// Either way it is kept out of logs and messages from now on.
pub fn resolve_secret(value: &str) -> String {
    let value = match env_reference(value) {
        Some(variable) => std::env::var(variable).unwrap_or_default(),
        None => value.to_owned(),
    };
    crate::secrets::register(&value);
    value
}

pub fn settings_json(settings: &toml::Table) -> serde_json::Value {
    fn convert(key: &str, value: &toml::Value) -> serde_json::Value {
        match value {
            toml::Value::String(s) => match env_reference(s) {
                Some(variable) => {
                    let value = std::env::var(variable).unwrap_or_default();
                    crate::secrets::register(&value);
                    value.into()
                }
                None => {
                    if crate::secrets::is_secret_key(key) {
                        crate::secrets::register(s);
                    }
                    s.clone().into()
                }
            },
            toml::Value::Integer(i) => {
                if crate::secrets::is_secret_key(key) {
                    crate::secrets::register(&i.to_string());
                }
                (*i).into()
            }
            toml::Value::Float(f) => (*f).into(),
            toml::Value::Boolean(b) => (*b).into(),
            toml::Value::Datetime(d) => d.to_string().into(),
            toml::Value::Array(items) => items.iter().map(|v| convert(key, v)).collect(),
            toml::Value::Table(table) => table.iter().map(|(k, v)| (k.clone(), convert(k, v))).collect(),
        }
    }
    settings.iter().map(|(k, v)| (k.clone(), convert(k, v))).collect()
}
