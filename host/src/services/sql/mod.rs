//! Named SQL connections: SQLite databases opened by the host on a plugin's behalf.
//!
//! A database file is opened once per host and shared by every grant that
//! names it. Calls run on tokio's blocking pool, so a slow query never stalls
//! the async runtime. Parameters are always bound, never spliced into SQL.
//!
//! A grant reaches exactly its database file and nothing else (the full list
//! of rules, and the tests that try to get around them, is in
//! `docs/sandbox.md`):
//! - the file is opened without URI filenames, in defensive mode, with
//!   extensions off, an untrusted schema and no room for attached databases;
//! - every statement a plugin prepares passes [`authorize`]: no ATTACH or
//!   DETACH, no PRAGMA but the few that read a table's shape, no transaction
//!   control (the host opens and ends each call's transaction), no temporary
//!   objects (they would live on the connection other instances share), no
//!   `load_extension` or `fts3_tokenizer`;
//! - a progress handler interrupts a statement once its call's deadline
//!   passed or its call was given up, so the connection is free at once;
//! - results are capped in bytes (`limits.max_output`) and rows (`limits.sql_rows`).
//!
//! A PostgreSQL connection will follow the same rules with the server's own
//! means: a role holding only the grant's privileges (no `pg_read_server_files`,
//! no `CREATE` outside its schema), `statement_timeout` set to the call's
//! deadline, `idle_in_transaction_session_timeout`, and the same result caps.
//!
//! # Layout
//! - `database`: the shared connection of each file, how it is opened, and
//!   the watch its authorizer and progress handler consult.
//! - `rules`: the pure decisions on what a plugin's statement may do.
//! - `functions`: the host's versions of SQLite's quadratic string functions.
//! - here: a grant's calls (`query`, `execute`), their budgets and problems.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rusqlite::limits::Limit;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::Connection;

mod database;
mod functions;
mod rules;

pub use database::{SqlDatabase, SqlDatabases};
pub use rules::{authorize, refuse_vacuum, Refusal};

use database::{host_sql, CallWatch, ConnectionWatch, SQLITE_HEAP_LIMIT};

use crate::runtime::api::wit_sql::{BatchMode, Executed, Rows, Statement};
use crate::runtime::api::{Problem, Value};

/// A database as granted to one instance under one connection name.
#[derive(Debug, Clone)]
pub struct SqlGrant {
    pub database: Arc<SqlDatabase>,
    pub read_only: bool,
    /// `[endpoints.X.grants.sql.Y]`, for messages.
    pub origin: String,
}

/// What one SQL call may use: set by the plugin call it is part of.
#[derive(Debug, Clone)]
pub struct SqlCallBudget {
    /// When the plugin call ends; a statement still running then is interrupted.
    pub deadline: Instant,
    /// Largest result, in bytes (`limits.max_output`).
    pub max_bytes: u64,
    /// Longest single value a statement may read or build (`limits.sql_value`).
    pub max_value: u64,
    /// Rows the plugin call may still read (`limits.sql_rows` less what it read).
    pub rows_left: u64,
    /// Set when the plugin call is given up (its future dropped).
    pub given_up: Arc<AtomicBool>,
}

/// Sets `given_up` when dropped before [`CallGuard::finished`]: the caller's
/// future was dropped (a timeout), so a statement still running is stopped.
struct CallGuard(Option<Arc<AtomicBool>>);

impl CallGuard {
    fn finished(mut self) {
        self.0 = None;
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(flag) = self.0.take() {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

fn problem(code: &str, message: String, hint: Option<String>, retryable: bool) -> Problem {
    Problem { code: code.into(), message, hint, retryable }
}

fn refusal_problem(origin: &str, refusal: &Refusal) -> Problem {
    problem(
        "capability-denied",
        format!("{origin} does not allow {}: {}", refusal.what, refusal.why),
        Some("use only tables of the granted database, in plain SELECT, INSERT, UPDATE and DELETE statements; the host runs each call in a transaction of its own".into()),
        false,
    )
}

fn sql_problem(error: &rusqlite::Error, origin: &str, watch: &ConnectionWatch) -> Problem {
    use rusqlite::ErrorCode;
    // SQLite reports a refused function as a plain error, not SQLITE_AUTH:
    // the authorizer's note says what happened either way.
    if let Some(refusal) = watch.take_refusal() {
        return refusal_problem(origin, &refusal);
    }
    match error.sqlite_error_code() {
        Some(ErrorCode::AuthorizationForStatementDenied) => {
            let refusal = watch.take_refusal().unwrap_or(Refusal {
                what: "the statement".into(),
                why: "it reaches outside the grant",
            });
            refusal_problem(origin, &refusal)
        }
        Some(ErrorCode::OperationInterrupted) => problem(
            "sql-interrupted",
            format!("a statement on {origin} was stopped: it ran past the end of its call (limits.timeout)"),
            Some("read in smaller pages, add an index, or raise limits.timeout for the instance".into()),
            true,
        ),
        Some(ErrorCode::TooBig) => problem(
            "budget-exceeded",
            format!("a value read or built by a statement on {origin} is longer than the sql_value budget allows"),
            Some("read or build smaller values, or raise limits.sql_value (and limits.max_output, shared among a result's columns) for the instance".into()),
            false,
        ),
        Some(ErrorCode::OutOfMemory) => problem(
            "budget-exceeded",
            format!(
                "a statement on {origin} needed more than the SQL memory budget of {} (all databases of the host together)",
                bytesize::ByteSize::b(SQLITE_HEAP_LIMIT as u64)
            ),
            Some("do less per statement: page with LIMIT, and return fewer rows per statement (RETURNING keeps them all in memory until the first is read)".into()),
            true,
        ),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => problem(
            "database-busy",
            format!("database of {origin} is busy: {error}"),
            Some("another program holds a lock; the work is retried".into()),
            true,
        ),
        Some(ErrorCode::ConstraintViolation) => problem(
            "constraint-violation",
            format!("{error}"),
            Some("the record breaks a constraint of the table (unique, not null, foreign key or check)".into()),
            false,
        ),
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => problem(
            "permission-denied",
            format!("database of {origin} cannot be written: {error}"),
            Some("give the synchost service account write access to the database file".into()),
            false,
        ),
        _ => problem("sql-error", format!("{error}"), None, false),
    }
}

fn to_sql(value: Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Boolean(b) => SqlValue::Integer(i64::from(b)),
        Value::Integer(i) => SqlValue::Integer(i),
        Value::Float(f) => SqlValue::Real(f),
        Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Timestamp(s) | Value::Json(s) => SqlValue::Text(s),
        Value::Bytes(b) => SqlValue::Blob(b),
    }
}

fn from_sql(value: ValueRef<'_>) -> (Value, usize) {
    match value {
        ValueRef::Null => (Value::Null, 1),
        ValueRef::Integer(i) => (Value::Integer(i), 8),
        ValueRef::Real(f) => (Value::Float(f), 8),
        ValueRef::Text(t) => (Value::Text(String::from_utf8_lossy(t).into_owned()), t.len() + 8),
        ValueRef::Blob(b) => (Value::Bytes(b.to_vec()), b.len() + 8),
    }
}

/// What one SQL call has read so far, against its budget.
struct ResultCap<'a> {
    budget: &'a SqlCallBudget,
    bytes: u64,
    rows: u64,
}

impl ResultCap<'_> {
    fn add_row(&mut self, bytes: usize) -> Result<(), Problem> {
        self.bytes += bytes as u64;
        self.rows += 1;
        if self.bytes > self.budget.max_bytes {
            return Err(problem(
                "budget-exceeded",
                format!("the result is larger than the max_output limit ({} bytes)", self.budget.max_bytes),
                Some("read in pages with LIMIT, or raise limits.max_output for the instance".into()),
                false,
            ));
        }
        if self.rows > self.budget.rows_left {
            return Err(problem(
                "budget-exceeded",
                "the call read more rows than its sql_rows budget allows".into(),
                Some("read in pages with LIMIT, or raise limits.sql_rows for the instance".into()),
                false,
            ));
        }
        Ok(())
    }
}

/// Runs one prepared statement and collects the rows it returns, within `cap`.
fn run(
    connection: &Connection,
    watch: &ConnectionWatch,
    sql: &str,
    params: Vec<Value>,
    cap: &mut ResultCap<'_>,
    origin: &str,
) -> Result<(Vec<String>, Vec<Vec<Value>>), Problem> {
    let fail = |e: rusqlite::Error| sql_problem(&e, origin, watch);
    refuse_vacuum(sql).map_err(|refusal| refusal_problem(origin, &refusal))?;
    let mut statement = connection.prepare_cached(sql).map_err(fail)?;
    let columns: Vec<String> = statement.column_names().into_iter().map(str::to_owned).collect();
    limit_values(connection, watch, cap.budget, columns.len());
    let params: Vec<SqlValue> = params.into_iter().map(to_sql).collect();
    let mut rows = statement.query(rusqlite::params_from_iter(params)).map_err(fail)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(fail)? {
        let mut values = Vec::with_capacity(columns.len());
        let mut size = 0;
        for i in 0..columns.len() {
            let (value, bytes) = from_sql(row.get_ref(i).map_err(fail)?);
            size += bytes;
            values.push(value);
        }
        cap.add_row(size)?;
        out.push(values);
    }
    Ok((columns, out))
}

/// Sets the longest value a statement may read or build: `limits.sql_value`,
/// and no more than its share of `limits.max_output` per column, so that one
/// row of many columns cannot take more memory than a whole result may.
fn limit_values(connection: &Connection, watch: &ConnectionWatch, budget: &SqlCallBudget, columns: usize) {
    let share = budget.max_bytes / columns.max(1) as u64;
    let longest = budget.max_value.min(share).clamp(1, i32::MAX as u64);
    watch.longest.store(longest, Ordering::Relaxed);
    let _ = connection.set_limit(Limit::SQLITE_LIMIT_LENGTH, longest as i32);
}

/// Starts a call on a connection: its deadline, its length cap, and a
/// check that it was not given up while it waited for the connection.
fn begin_call(watch: &ConnectionWatch, budget: &SqlCallBudget) -> Result<(), Problem> {
    if budget.given_up.load(Ordering::Relaxed) || Instant::now() >= budget.deadline {
        return Err(problem(
            "sql-interrupted",
            "the call ended before the database was free".into(),
            Some("another call held the database until its deadline; the work is retried".into()),
            true,
        ));
    }
    *watch.call.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(CallWatch { deadline: budget.deadline, given_up: budget.given_up.clone() });
    watch.take_refusal();
    Ok(())
}

fn end_call(watch: &ConnectionWatch) {
    *watch.call.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

impl SqlGrant {
    /// Runs a query; returns its rows and how many there were.
    pub async fn query(&self, sql: String, params: Vec<Value>, budget: SqlCallBudget) -> Result<Rows, Problem> {
        let grant = self.clone();
        blocking(budget.given_up.clone(), move || {
            grant.database.with(&grant.origin, budget.deadline, |connection, watch| {
                begin_call(watch, &budget)?;
                let result = grant.query_on(connection, watch, &sql, params, &budget);
                end_call(watch);
                result
            })
        })
        .await
    }

    fn query_on(
        &self,
        connection: &Connection,
        watch: &ConnectionWatch,
        sql: &str,
        params: Vec<Value>,
        budget: &SqlCallBudget,
    ) -> Result<Rows, Problem> {
        let origin = self.origin.as_str();
        refuse_vacuum(sql).map_err(|refusal| refusal_problem(origin, &refusal))?;
        let readonly = connection.prepare_cached(sql).map_err(|e| sql_problem(&e, origin, watch))?.readonly();
        if !readonly {
            return Err(problem(
                "not-a-query",
                "`query` runs only statements that read; this one writes".into(),
                Some("send statements that change data through `execute`".into()),
                false,
            ));
        }
        let mut cap = ResultCap { budget, bytes: 0, rows: 0 };
        let (columns, rows) = run(connection, watch, sql, params, &mut cap, origin)?;
        Ok(Rows { columns, rows })
    }

    /// Runs a batch of statements in one transaction.
    pub async fn execute(
        &self,
        statements: Vec<Statement>,
        mode: BatchMode,
        budget: SqlCallBudget,
    ) -> Result<Vec<Result<Executed, Problem>>, Problem> {
        let grant = self.clone();
        blocking(budget.given_up.clone(), move || {
            grant.database.with(&grant.origin, budget.deadline, |connection, watch| {
                begin_call(watch, &budget)?;
                let origin = grant.origin.as_str();
                let result = host_sql(connection, watch, "BEGIN")
                    .map_err(|e| sql_problem(&e, origin, watch))
                    .and_then(|()| grant.execute_in_transaction(connection, watch, statements, mode, &budget));
                let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
                let mut ended = if connection.is_autocommit() { Ok(()) } else { host_sql(connection, watch, end) };
                // A COMMIT that fails (a deferred foreign key) leaves the
                // transaction open: it is rolled back, never left for others.
                if ended.is_err() && !connection.is_autocommit() {
                    ended = ended.and(host_sql(connection, watch, "ROLLBACK"));
                }
                end_call(watch);
                let results = result?;
                ended.map_err(|e| sql_problem(&e, origin, watch))?;
                Ok(results)
            })
        })
        .await
    }

    fn execute_in_transaction(
        &self,
        connection: &Connection,
        watch: &ConnectionWatch,
        statements: Vec<Statement>,
        mode: BatchMode,
        budget: &SqlCallBudget,
    ) -> Result<Vec<Result<Executed, Problem>>, Problem> {
        let origin = self.origin.as_str();
        let fail = |e: rusqlite::Error| sql_problem(&e, origin, watch);
        let mut cap = ResultCap { budget, bytes: 0, rows: 0 };
        let mut results = Vec::with_capacity(statements.len());
        for (index, statement) in statements.into_iter().enumerate() {
            let at = |p: Problem| Problem { message: format!("statement {index}: {}", p.message), ..p };
            refuse_vacuum(&statement.sql).map_err(|refusal| at(refusal_problem(origin, &refusal)))?;
            if self.read_only {
                let readonly = connection.prepare_cached(&statement.sql).map_err(fail).map_err(at)?.readonly();
                if !readonly {
                    return Err(problem(
                        "capability-denied",
                        format!("{origin} is granted read-only; statement {index} writes"),
                        Some(format!("remove `read_only = true` from {origin} to allow writes")),
                        false,
                    ));
                }
            }
            match mode {
                BatchMode::AllOrNothing => results.push(Ok(run_counted(connection, watch, statement, &mut cap, origin).map_err(at)?)),
                BatchMode::EachAlone => {
                    host_sql(connection, watch, "SAVEPOINT synchost_each").map_err(fail)?;
                    let outcome = run_counted(connection, watch, statement, &mut cap, origin);
                    // Over budget, interrupted or refused: the whole call stops.
                    if let Err(p) = &outcome
                        && matches!(p.code.as_str(), "budget-exceeded" | "sql-interrupted" | "capability-denied")
                    {
                        return Err(at(p.clone()));
                    }
                    let end = if outcome.is_ok() { "RELEASE synchost_each" } else { "ROLLBACK TO synchost_each; RELEASE synchost_each" };
                    host_sql(connection, watch, end).map_err(fail)?;
                    results.push(outcome);
                }
            }
        }
        Ok(results)
    }
}

fn run_counted(
    connection: &Connection,
    watch: &ConnectionWatch,
    statement: Statement,
    cap: &mut ResultCap<'_>,
    origin: &str,
) -> Result<Executed, Problem> {
    let before = connection.total_changes();
    let (_, returned) = run(connection, watch, &statement.sql, statement.params, cap, origin)?;
    let rows_affected = connection.total_changes().saturating_sub(before);
    Ok(Executed { rows_affected, returned })
}

/// Runs `f` on the blocking pool. Dropping the returned future (the plugin
/// call timed out) marks the call given up, which stops its statement.
async fn blocking<T: Send + 'static>(
    given_up: Arc<AtomicBool>,
    f: impl FnOnce() -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let guard = CallGuard(Some(given_up));
    let result = tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(problem("host-error", format!("the SQL worker failed: {e}"), None, true)));
    guard.finished();
    result
}
