//! The host side of the WIT imports a plugin may call.

use tracing::Level as TraceLevel;

use super::HostState;
use crate::runtime::bindings::connector::synchost::plugin::{context, http, log, sql, types};
use crate::runtime::bindings::Problem;

/// Longest log message kept from a plugin; a plugin cannot flood the log.
const MAX_LOG_MESSAGE: usize = 8 * 1024;

impl types::Host for HostState {}

impl log::Host for HostState {
    async fn log(&mut self, level: log::Level, mut message: String) -> wasmtime::Result<()> {
        if message.len() > MAX_LOG_MESSAGE {
            let mut end = MAX_LOG_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(" [truncated]");
        }
        let (plugin, instance) = (&self.instance.plugin, &self.instance.name);
        match level {
            log::Level::Trace => tracing::event!(TraceLevel::TRACE, plugin, instance, "{message}"),
            log::Level::Debug => tracing::event!(TraceLevel::DEBUG, plugin, instance, "{message}"),
            log::Level::Info => tracing::event!(TraceLevel::INFO, plugin, instance, "{message}"),
            log::Level::Warn => tracing::event!(TraceLevel::WARN, plugin, instance, "{message}"),
            log::Level::Error => tracing::event!(TraceLevel::ERROR, plugin, instance, "{message}"),
        }
        Ok(())
    }
}

impl context::Host for HostState {
    async fn instance_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.instance.name.clone())
    }

    async fn settings(&mut self) -> wasmtime::Result<String> {
        Ok(self.instance.settings.clone())
    }
}

impl HostState {
    fn sql_grant(&self, connection: &str) -> Result<super::sql::SqlGrant, Problem> {
        self.instance.sql.get(connection).cloned().ok_or_else(|| {
            tracing::warn!(plugin = %self.instance.plugin, instance = %self.instance.name, connection, "Refused ungranted SQL connection");
            Problem {
                code: "capability-denied".into(),
                message: format!(
                    "`{}` has no SQL connection named `{connection}` granted",
                    self.instance.name
                ),
                hint: Some(format!(
                    "grant it in the host config: [endpoints.{}.grants.sql.{connection}] dsn = \"sqlite:PATH\"",
                    self.instance.name
                )),
                retryable: false,
            }
        })
    }
}

impl sql::Host for HostState {
    async fn connection_dialect(&mut self, connection: String) -> wasmtime::Result<Result<sql::Dialect, Problem>> {
        Ok(self.sql_grant(&connection).map(|_| sql::Dialect::Sqlite))
    }

    async fn query(
        &mut self,
        connection: String,
        statement: String,
        params: Vec<types::Value>,
    ) -> wasmtime::Result<Result<sql::Rows, Problem>> {
        let grant = match self.sql_grant(&connection) {
            Ok(grant) => grant,
            Err(problem) => return Ok(Err(problem)),
        };
        let max_bytes = self.instance.limits.max_output;
        Ok(grant.query(statement, params, max_bytes).await)
    }

    async fn execute(
        &mut self,
        connection: String,
        statements: Vec<sql::Statement>,
        mode: sql::BatchMode,
    ) -> wasmtime::Result<Result<Vec<Result<sql::Executed, Problem>>, Problem>> {
        let grant = match self.sql_grant(&connection) {
            Ok(grant) => grant,
            Err(problem) => return Ok(Err(problem)),
        };
        Ok(grant.execute(statements, mode).await)
    }
}

impl http::Host for HostState {
    async fn send(&mut self, request: http::Request) -> wasmtime::Result<Result<http::Response, Problem>> {
        let instance = self.instance.clone();
        Ok(instance.http.send(&instance.name, request, instance.limits).await)
    }
}
