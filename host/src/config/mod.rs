//! The host config: `synchost.toml`.
//!
//! - `types`: the structs an admin writes (and the JSON Schema is generated from).
//! - `values`: newtypes for names, connection strings, origins, durations and sizes.
//! - `load`: reading a file, reporting every error at once with its location and fix.
//! - `error`: the error type and its rustc-style rendering.

mod error;
mod load;
mod pipeline;
mod types;
mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, ConfigErrors};
pub use types::{Config, Grants, HostSettings, HttpGrant, InstanceConfig, Limits, PluginSource, SqlGrant};
pub use pipeline::{ApprovalConfig, ConflictPolicy, DeletePolicy, FieldCheck, FieldRule, Flow, MirrorFields, PipelineConfig, RetryConfig, ScopeValue, Side, SideConfig};
pub use values::{ByteSize, ConnectionName, Dsn, HttpOrigin, InstanceName, PipelineName, PluginId, Schedule, Timeout};

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
}

/// Limits of one call into a plugin, after defaults are applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EffectiveLimits {
    pub timeout: Duration,
    pub memory: u64,
    pub max_output: u64,
}

impl Default for EffectiveLimits {
    fn default() -> Self {
        EffectiveLimits { timeout: Duration::from_secs(30), memory: 128 << 20, max_output: 32 << 20 }
    }
}

impl EffectiveLimits {
    /// These limits with the values `limits` sets replaced.
    pub fn overridden_by(self, limits: &Limits) -> Self {
        EffectiveLimits {
            timeout: limits.timeout.map_or(self.timeout, |t| t.0),
            memory: limits.memory.as_ref().map_or(self.memory, |m| m.get_ref().0),
            max_output: limits.max_output.map_or(self.max_output, |m| m.0),
        }
    }
}

impl LoadedConfig {
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
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base_dir = if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir };
        Ok(LoadedConfig { path: path.to_owned(), base_dir, config })
    }

    /// A path from the config, resolved against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_owned() } else { self.base_dir.join(path) }
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
/// values are replaced by the variable's value from the environment.
pub fn settings_json(settings: &toml::Table) -> serde_json::Value {
    fn convert(value: &toml::Value) -> serde_json::Value {
        match value {
            toml::Value::String(s) => match env_reference(s) {
                Some(variable) => std::env::var(variable).unwrap_or_default().into(),
                None => s.clone().into(),
            },
            toml::Value::Integer(i) => (*i).into(),
            toml::Value::Float(f) => (*f).into(),
            toml::Value::Boolean(b) => (*b).into(),
            toml::Value::Datetime(d) => d.to_string().into(),
            toml::Value::Array(items) => items.iter().map(convert).collect(),
            toml::Value::Table(table) => table.iter().map(|(k, v)| (k.clone(), convert(v))).collect(),
        }
    }
    settings.iter().map(|(k, v)| (k.clone(), convert(v))).collect()
}
