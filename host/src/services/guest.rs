//! The host side of the WIT imports a plugin may call.

use std::time::Instant;

use tracing::Level as TraceLevel;

use super::budget::{BudgetExceeded, LogVerdict};
use super::sql::SqlCallBudget;
use super::HostState;
use crate::runtime::api::v0_5::connector::synchost::plugin::{context, http, log, sql, types};
use crate::runtime::api::Problem;

/// Longest log message kept from a plugin; a plugin cannot flood the log.
const MAX_LOG_MESSAGE: usize = 8 * 1024;

impl types::Host for HostState {}

impl log::Host for HostState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        // Masked before it is cut, so no part of a secret survives the cut.
        let mut message = crate::secrets::redacted(&message);
        if message.len() > MAX_LOG_MESSAGE {
            let mut end = MAX_LOG_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(" [truncated]");
        }
        // Counted as written, so one huge line costs what it shows.
        if self.instance.log_budget.admit(message.len(), Instant::now()) == LogVerdict::Drop {
            return Ok(());
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

impl HostState {
    /// What the next SQL call of this plugin call may use.
    fn sql_budget(&self) -> SqlCallBudget {
        SqlCallBudget {
            deadline: self.deadline,
            max_bytes: self.instance.limits.max_output,
            max_value: self.instance.limits.sql_value,
            rows_left: self.instance.limits.sql_rows.saturating_sub(self.usage.sql_rows),
            given_up: self.given_up.clone(),
        }
    }

    /// Counts what a SQL call read; notes the budget it went over.
    fn settle_sql<T>(&mut self, result: &Result<T, Problem>, rows: u64) {
        self.usage.sql_rows += rows;
        if let Err(problem) = result
            && problem.code == "budget-exceeded"
        {
            let limits = self.instance.limits;
            let exceeded = if problem.message.contains("sql_rows") {
                BudgetExceeded {
                    budget: "SQL rows per call".into(),
                    limit: limits.sql_rows.to_string(),
                    setting: format!("limits.sql_rows of `{}`", self.instance.name),
                }
            } else if problem.message.contains("SQL memory budget") {
                BudgetExceeded {
                    budget: "SQL memory".into(),
                    limit: "2 GiB".into(),
                    setting: String::new(),
                }
            } else if problem.message.contains("sql_value") {
                BudgetExceeded {
                    budget: "SQL value size".into(),
                    limit: bytesize::ByteSize::b(limits.sql_value).to_string(),
                    setting: format!("limits.sql_value of `{}`", self.instance.name),
                }
            } else {
                BudgetExceeded {
                    budget: "SQL result size".into(),
                    limit: bytesize::ByteSize::b(limits.max_output).to_string(),
                    setting: format!("limits.max_output of `{}`", self.instance.name),
                }
            };
            self.usage.exceed(exceeded);
        }
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
        let result = grant.query(statement, params, self.sql_budget()).await;
        let rows = result.as_ref().map_or(0, |r| r.rows.len() as u64);
        self.settle_sql(&result, rows);
        Ok(result)
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
        let result = grant.execute(statements, mode, self.sql_budget()).await;
        let rows = result.as_ref().map_or(0, |outcomes| {
            outcomes.iter().flatten().map(|executed| executed.returned.len() as u64).sum()
        });
        self.settle_sql(&result, rows);
        Ok(result)
    }
}

impl http::Host for HostState {
    async fn send(&mut self, request: http::Request) -> wasmtime::Result<Result<http::Response, Problem>> {
        let instance = self.instance.clone();
        let limits = instance.limits;
        if self.usage.http_requests >= limits.http_requests {
            let exceeded = BudgetExceeded {
                budget: "HTTP requests per call".into(),
                limit: limits.http_requests.to_string(),
                setting: format!("limits.http_requests of `{}`", instance.name),
            };
            self.usage.exceed(exceeded.clone());
            return Ok(Err(budget_problem(&exceeded)));
        }
        let body = request.body.as_ref().map_or(0, |b| b.len() as u64);
        if body > limits.http_body {
            let exceeded = BudgetExceeded {
                budget: "HTTP request body".into(),
                limit: bytesize::ByteSize::b(limits.http_body).to_string(),
                setting: format!("limits.http_body of `{}`", instance.name),
            };
            self.usage.exceed(exceeded.clone());
            return Ok(Err(budget_problem(&exceeded)));
        }
        self.usage.http_requests += 1;
        let result = instance.http.send(&instance.name, request, limits).await;
        if let Err(problem) = &result
            && problem.code == "response-too-large"
        {
            self.usage.exceed(BudgetExceeded {
                budget: "HTTP response body".into(),
                limit: bytesize::ByteSize::b(limits.max_output).to_string(),
                setting: format!("limits.max_output of `{}`", instance.name),
            });
        }
        Ok(result)
    }
}

/// The problem a plugin sees when it goes over a budget.
fn budget_problem(exceeded: &BudgetExceeded) -> Problem {
    Problem {
        code: "budget-exceeded".into(),
        message: format!("over the {exceeded}"),
        hint: Some(exceeded.fix()),
        retryable: false,
    }
}
