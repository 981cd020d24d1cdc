//! Newtypes for config values with a shape, checked as the file is read.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

/// A name made of lower-case letters, digits, `-` and `_`, starting with a letter.
fn check_name(kind: &str, value: &str) -> Result<(), String> {
    let valid = value.len() <= 64
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a valid {kind}: use up to 64 lower-case letters, digits, `-` or `_`, starting with a letter"
        ))
    }
}

const NAME_PATTERN: &str = "^[a-z][a-z0-9_-]{0,63}$";

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// The name as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                check_name($kind, &value)?;
                Ok(Self(value))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "pattern": NAME_PATTERN, "description": concat!("A ", $kind, ".") })
            }
        }
    };
}

/// The plugin an instance runs: a bundled plugin, a key of `[plugins]`, or
/// an installed package, by name (its active version) or pinned to a
/// version (`acme-tickets@1.2`: the newest 1.2.x installed; `@1.2.3`: exactly).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct PluginId(String);

impl PluginId {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without a version pin.
    pub fn name(&self) -> &str {
        self.0.split_once('@').map_or(&self.0, |(name, _)| name)
    }

    /// The version pin, if any.
    pub fn pin(&self) -> Option<&str> {
        self.0.split_once('@').map(|(_, pin)| pin)
    }
}

impl TryFrom<String> for PluginId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let (name, pin) = value.split_once('@').map_or((value.as_str(), None), |(n, p)| (n, Some(p)));
        check_name("plugin name", name)?;
        if let Some(pin) = pin {
            let valid = !pin.is_empty() && pin.split('.').count() <= 3 && pin.split('.').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
            if !valid {
                return Err(format!("`{value}`: pin a package version as NAME@1, NAME@1.2 or NAME@1.2.3"));
            }
        }
        Ok(PluginId(value))
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for PluginId {
    fn schema_name() -> Cow<'static, str> {
        "PluginId".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[a-z][a-z0-9_-]{0,63}(@[0-9]+(\\.[0-9]+){0,2})?$",
            "description": "A bundled plugin, a key of [plugins], or an installed package (NAME, or NAME@1.2 pinned)."
        })
    }
}

/// A publisher's public key: `ed25519:` and 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PublisherKey(pub String);

impl TryFrom<String> for PublisherKey {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        crate::packages::signature::public_key(&value).map(|_| PublisherKey(value)).map_err(|e| {
            format!("{e}; a publisher key is `ed25519:` and 64 hex digits, as `synchost package keygen` prints it")
        })
    }
}

impl JsonSchema for PublisherKey {
    fn schema_name() -> Cow<'static, str> {
        "PublisherKey".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": "^ed25519:[0-9a-fA-F]{64}$", "description": "An Ed25519 public key, `ed25519:HEX`." })
    }
}
name_type!(
    /// The name of an endpoint or mapper instance.
    InstanceName, "instance name"
);
name_type!(
    /// The name of a pipeline.
    PipelineName, "pipeline name"
);
name_type!(
    /// The name a plugin uses for a granted SQL connection.
    ConnectionName, "connection name"
);

/// Where a SQL connection goes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub enum Dsn {
    /// A SQLite database file (relative paths are relative to the config file).
    Sqlite(PathBuf),
}

impl TryFrom<String> for Dsn {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if let Some(path) = value.strip_prefix("sqlite://").or_else(|| value.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err("`sqlite:` needs a file path, e.g. `sqlite:data/crm.sqlite`".into());
            }
            return Ok(Dsn::Sqlite(PathBuf::from(path)));
        }
        // A rejected DSN may carry a password: it is shown masked.
        let shown = crate::secrets::redacted(&value);
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return Err(format!(
                "`{shown}`: PostgreSQL connections are not supported by this version of synchost; use a `sqlite:PATH` connection"
            ));
        }
        Err(format!("`{shown}` is not a connection string synchost knows; write `sqlite:PATH`"))
    }
}

impl JsonSchema for Dsn {
    fn schema_name() -> Cow<'static, str> {
        "Dsn".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": "^sqlite:", "description": "A connection string: `sqlite:PATH`." })
    }
}

/// An HTTP origin a plugin may reach: host, port and optionally scheme.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HttpOrigin {
    /// `http` or `https`; any when not given.
    pub scheme: Option<String>,
    /// Lower-case host name or IP address.
    pub host: String,
    /// The port; the scheme's default when not given.
    pub port: Option<u16>,
}

impl HttpOrigin {
    /// Whether a request URL goes to this origin.
    pub fn allows(&self, url: &url::Url) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == url.scheme());
        let host_ok = url.host_str().is_some_and(|h| h.eq_ignore_ascii_case(&self.host));
        // `Url::port` is `None` when the URL uses its scheme's default port.
        let port_ok = match self.port {
            Some(port) => url.port_or_known_default() == Some(port),
            None => url.port().is_none(),
        };
        scheme_ok && host_ok && port_ok
    }
}

impl TryFrom<String> for HttpOrigin {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let with_scheme = if value.contains("://") { value.clone() } else { format!("any://{value}") };
        let url = url::Url::parse(&with_scheme).map_err(|e| {
            format!("`{value}` is not an HTTP origin ({e}); write `host`, `host:port` or `https://host`")
        })?;
        let scheme = match url.scheme() {
            "any" => None,
            "http" | "https" => Some(url.scheme().to_owned()),
            other => return Err(format!("`{value}`: scheme `{other}` is not HTTP; use http:// or https://")),
        };
        if url.path() != "/" && !url.path().is_empty() || url.query().is_some() {
            return Err(format!("`{value}`: an allowed origin has no path; write only `host[:port]`"));
        }
        let host = url.host_str().ok_or_else(|| format!("`{value}` names no host"))?.to_ascii_lowercase();
        Ok(HttpOrigin { scheme, host, port: url.port() })
    }
}

impl fmt::Display for HttpOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = &self.scheme {
            write!(f, "{scheme}://")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl JsonSchema for HttpOrigin {
    fn schema_name() -> Cow<'static, str> {
        "HttpOrigin".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "description": "`host`, `host:port` or `scheme://host[:port]`." })
    }
}

/// A wall-clock duration such as `30s`, `500ms` or `2m`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct Timeout(pub Duration);

impl TryFrom<String> for Timeout {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let duration = humantime::parse_duration(&value)
            .map_err(|e| format!("`{value}` is not a duration ({e}); write e.g. `30s`, `500ms` or `2m`"))?;
        if duration.is_zero() {
            return Err(format!("`{value}`: a timeout must be longer than zero"));
        }
        Ok(Timeout(duration))
    }
}

impl JsonSchema for Timeout {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "description": "A duration such as `30s`, `500ms` or `2m`." })
    }
}

/// A size in bytes such as `128MiB` or `64 MB`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct ByteSize(pub u64);

impl TryFrom<String> for ByteSize {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        let size: bytesize::ByteSize = value
            .parse()
            .map_err(|e| format!("`{value}` is not a size ({e}); write e.g. `128MiB` or `64MB`"))?;
        if size.as_u64() == 0 {
            return Err(format!("`{value}`: a size limit must be larger than zero"));
        }
        Ok(ByteSize(size.as_u64()))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", bytesize::ByteSize::b(self.0).display().iec())
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "description": "A size such as `128MiB` or `64MB`." })
    }
}

/// When a pipeline runs: every interval (from 1 s), or on a cron schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub enum Schedule {
    /// Every this long, counted from the end of the previous run.
    Every(Duration),
    /// At the times of a cron expression (UTC).
    Cron(Box<cron::Schedule>, String),
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::Every(Duration::from_secs(30))
    }
}

impl Schedule {
    /// How long until the next run, from now.
    pub fn next_delay(&self) -> Duration {
        match self {
            Schedule::Every(every) => *every,
            Schedule::Cron(schedule, _) => schedule
                .upcoming(chrono::Utc)
                .next()
                .and_then(|at| (at - chrono::Utc::now()).to_std().ok())
                .unwrap_or(Duration::from_secs(60)),
        }
    }

    /// The typical time between runs, for the liveness check.
    pub fn period(&self) -> Duration {
        match self {
            Schedule::Every(every) => *every,
            Schedule::Cron(schedule, _) => {
                let mut upcoming = schedule.upcoming(chrono::Utc);
                match (upcoming.next(), upcoming.next()) {
                    (Some(a), Some(b)) => (b - a).to_std().unwrap_or(Duration::from_secs(60)),
                    _ => Duration::from_secs(60),
                }
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(every) => write!(f, "every {}", humantime::format_duration(*every)),
            Schedule::Cron(_, text) => write!(f, "cron {text}"),
        }
    }
}

impl TryFrom<String> for Schedule {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        if let Some(expression) = value.strip_prefix("cron:") {
            let expression = expression.trim();
            // Five fields are the classic form; the cron crate wants seconds first.
            let full = if expression.split_whitespace().count() == 5 { format!("0 {expression}") } else { expression.to_owned() };
            let schedule: cron::Schedule = full
                .parse()
                .map_err(|e| format!("`{value}` is not a cron expression ({e}); write e.g. `cron:*/5 * * * *`"))?;
            return Ok(Schedule::Cron(Box::new(schedule), expression.to_owned()));
        }
        let every = humantime::parse_duration(&value)
            .map_err(|e| format!("`{value}` is not a schedule ({e}); write an interval such as `30s` or `cron:*/5 * * * *`"))?;
        if every < Duration::from_secs(1) {
            return Err(format!("`{value}`: the shortest interval is 1s"));
        }
        Ok(Schedule::Every(every))
    }
}

impl JsonSchema for Schedule {
    fn schema_name() -> Cow<'static, str> {
        "Schedule".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "description": "An interval from `1s` (e.g. `30s`, `5m`) or `cron:EXPRESSION`." })
    }
}
