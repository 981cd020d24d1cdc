//! Typed wrappers over the services the host grants a plugin instance.
//!
//! Inside the host these call the WIT imports. In a native build (unit tests of
//! plugin logic) they use the [`testing`](crate::testing) harness instead:
//! settings and the instance name come from [`testing::Harness`](crate::testing::Harness),
//! log lines are captured there, HTTP requests go to the test's stand-in,
//! and sql reports that it needs the host.

use serde::de::DeserializeOwned;

use crate::bindings::connector::synchost::plugin as wit;
use crate::{Error, Value};

pub use wit::http::{Request, Response};
pub use wit::log::Level;
pub use wit::sql::{BatchMode, Dialect, Executed, Rows, Statement};

/// The plugin instance's name and settings, as the admin configured them.
#[derive(Debug, Clone)]
pub struct Context {
    name: String,
    settings: serde_json::Value,
}

impl Context {
    /// The context of the instance this call runs in.
    pub fn current() -> Result<Self, Error> {
        let name = imp::instance_name();
        let raw = imp::settings();
        let settings = serde_json::from_str(&raw).map_err(|e| {
            Error::settings(format!("the host passed settings that are not JSON: {e}"))
        })?;
        Ok(Context { name, settings })
    }

    /// A context with this name and settings (for tests and benchmarks).
    pub fn new(name: impl Into<String>, settings: serde_json::Value) -> Self {
        Context { name: name.into(), settings }
    }

    /// The endpoint or mapper name this plugin instance runs as.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings as a typed value. A mismatch becomes a `bad-settings`
    /// problem that names the instance and the setting at fault.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, Error> {
        T::deserialize(&self.settings).map_err(|e| {
            Error::settings(format!("settings of `{}`: {e}", self.name)).with_hint(format!(
                "fix the `settings` table of `{}` in the host config",
                self.name
            ))
        })
    }

    /// The settings as raw JSON.
    pub fn raw_settings(&self) -> &serde_json::Value {
        &self.settings
    }
}

/// Log lines into the host's log, tagged with this plugin instance.
pub mod log {
    use super::{imp, Level};

    /// Logs at debug level.
    pub fn debug(message: &str) {
        imp::log(Level::Debug, message)
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        imp::log(Level::Info, message)
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        imp::log(Level::Warn, message)
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        imp::log(Level::Error, message)
    }
}

/// A named SQL connection the admin granted to this plugin instance.
///
/// ```no_run
/// use synchost_plugin_sdk::host::Sql;
/// use synchost_plugin_sdk::Value;
///
/// # fn main() -> Result<(), synchost_plugin_sdk::Error> {
/// let crm = Sql::connection("crm");
/// let rows = crm.query("SELECT id, name FROM contacts WHERE id > ?1", &[Value::Integer(10)])?;
/// for row in &rows.rows {
///     println!("{:?}", row);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Sql {
    connection: String,
}

impl Sql {
    /// The connection with this name in the instance's `grants.sql` table.
    pub fn connection(name: impl Into<String>) -> Self {
        Sql { connection: name.into() }
    }

    /// The connection's name.
    pub fn name(&self) -> &str {
        &self.connection
    }

    /// The SQL dialect spoken on this connection.
    pub fn dialect(&self) -> Result<Dialect, Error> {
        imp::sql_dialect(&self.connection).map_err(Error::from)
    }

    /// Runs a query with bound parameters.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, Error> {
        imp::sql_query(&self.connection, sql, params).map_err(Error::from)
    }

    /// Runs statements in one transaction; see [`BatchMode`] for partial failure.
    pub fn execute(
        &self,
        statements: &[Statement],
        mode: BatchMode,
    ) -> Result<Vec<Result<Executed, Error>>, Error> {
        let results = imp::sql_execute(&self.connection, statements, mode)?;
        Ok(results.into_iter().map(|r| r.map_err(Error::from)).collect())
    }
}

/// HTTP requests to hosts the admin allow-listed for this plugin instance.
pub mod http {
    use super::{imp, Request, Response};
    use crate::Error;

    impl Request {
        /// A request with this method and URL, no headers and no body.
        pub fn new(method: &str, url: impl Into<String>) -> Self {
            Request {
                method: method.to_owned(),
                url: url.into(),
                headers: Vec::new(),
                body: None,
                timeout_ms: None,
            }
        }

        /// Adds a header.
        pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
            self.headers.push((name.to_owned(), value.into()));
            self
        }

        /// Sets a JSON body and its content type.
        pub fn json<T: serde::Serialize>(self, body: &T) -> Result<Self, Error> {
            let mut request = self.header("content-type", "application/json");
            request.body = Some(serde_json::to_vec(body)?);
            Ok(request)
        }
    }

    impl Response {
        /// The body parsed as JSON.
        pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
            serde_json::from_slice(&self.body).map_err(|e| {
                Error::new("bad-response", format!("response body is not the expected JSON: {e}"))
            })
        }

        /// A response with this status and a JSON body (for test stand-ins).
        pub fn with_json<T: serde::Serialize>(status: u16, body: &T) -> Self {
            Response {
                status,
                headers: vec![("content-type".into(), "application/json".into())],
                body: serde_json::to_vec(body).expect("a test's JSON body serializes"),
            }
        }

        /// The body as text (invalid UTF-8 replaced).
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }

        /// The first header with this name (case-insensitive).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// Sends a request through the host.
    pub fn send(request: &Request) -> Result<Response, Error> {
        imp::http_send(request).map_err(Error::from)
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::wit;
    use crate::{Problem, Value};

    pub fn instance_name() -> String {
        wit::context::instance_name()
    }
    pub fn settings() -> String {
        wit::context::settings()
    }
    pub fn log(level: wit::log::Level, message: &str) {
        wit::log::log(level, message)
    }
    pub fn sql_dialect(connection: &str) -> Result<wit::sql::Dialect, Problem> {
        wit::sql::connection_dialect(connection)
    }
    pub fn sql_query(connection: &str, sql: &str, params: &[Value]) -> Result<wit::sql::Rows, Problem> {
        wit::sql::query(connection, sql, params)
    }
    pub fn sql_execute(
        connection: &str,
        statements: &[wit::sql::Statement],
        mode: wit::sql::BatchMode,
    ) -> Result<Vec<Result<wit::sql::Executed, Problem>>, Problem> {
        wit::sql::execute(connection, statements, mode)
    }
    pub fn http_send(request: &wit::http::Request) -> Result<wit::http::Response, Problem> {
        wit::http::send(request)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::wit;
    use crate::testing::Harness;
    use crate::{Problem, Value};

    fn needs_host(service: &str) -> Problem {
        Problem {
            code: "needs-host".into(),
            message: format!("the {service} service is only available inside the synchost host"),
            hint: Some("test code that uses it through synchost's runtime".into()),
            retryable: false,
        }
    }

    pub fn instance_name() -> String {
        Harness::with(|h| h.name.clone())
    }
    pub fn settings() -> String {
        Harness::with(|h| h.settings.to_string())
    }
    pub fn log(level: wit::log::Level, message: &str) {
        Harness::with(|h| h.logs.push((level, message.to_owned())))
    }
    pub fn sql_dialect(_: &str) -> Result<wit::sql::Dialect, Problem> {
        Err(needs_host("sql"))
    }
    pub fn sql_query(_: &str, _: &str, _: &[Value]) -> Result<wit::sql::Rows, Problem> {
        Err(needs_host("sql"))
    }
    pub fn sql_execute(
        _: &str,
        _: &[wit::sql::Statement],
        _: wit::sql::BatchMode,
    ) -> Result<Vec<Result<wit::sql::Executed, Problem>>, Problem> {
        Err(needs_host("sql"))
    }
    pub fn http_send(request: &wit::http::Request) -> Result<wit::http::Response, Problem> {
        Harness::send(request)
    }
}
