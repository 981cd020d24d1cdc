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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::hooks::{AuthAction, AuthContext, Authorization, TransactionOperation};
use rusqlite::limits::Limit;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};

use crate::runtime::bindings::wit_sql::{BatchMode, Executed, Rows, Statement};
use crate::runtime::bindings::{Problem, Value};

/// Longest SQL text a plugin may send in one statement.
const MAX_SQL_TEXT: i32 = 1 << 20;

/// Virtual machine steps between two looks at the call's deadline.
const PROGRESS_STEPS: i32 = 10_000;

/// PRAGMAs a plugin may run: each reads the shape of one table or index of
/// the granted database, named by its argument, and changes nothing. Every
/// other PRAGMA either names a file (`database_list`), changes a setting of
/// the shared connection (`journal_mode`, `foreign_keys`, `query_only` ...),
/// or changes the file (`user_version`, `writable_schema` ...).
const SCHEMA_PRAGMAS: &[&str] = &["table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"];

/// SQL functions no plugin may call: they reach outside the database or
/// change how the connection parses what other instances send.
const DENIED_FUNCTIONS: &[&str] = &["load_extension", "fts3_tokenizer"];

/// Why [`authorize`] refused a statement, said so a plugin author knows what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What the statement tried, e.g. "ATTACH".
    pub what: String,
    pub why: &'static str,
}

/// Decides whether a plugin's statement may do `action` on `database`.
/// Pure: the same rules for every grant; read-only grants are held to
/// statements that do not write by the caller.
pub fn authorize(action: &AuthAction<'_>, database: Option<&str>) -> Result<(), Refusal> {
    let refuse = |what: String, why: &'static str| Err(Refusal { what, why });
    const OWN_DATABASE: &str = "a grant reaches only its own database file";
    const SHARED: &str = "the connection is shared with other instances; the host opens and ends each call's transaction";
    const TEMPORARY: &str = "temporary objects would live on the connection other instances share";
    let temporary = matches!(
        action,
        AuthAction::CreateTempIndex { .. }
            | AuthAction::CreateTempTable { .. }
            | AuthAction::CreateTempTrigger { .. }
            | AuthAction::CreateTempView { .. }
            | AuthAction::DropTempIndex { .. }
            | AuthAction::DropTempTable { .. }
            | AuthAction::DropTempTrigger { .. }
            | AuthAction::DropTempView { .. }
    );
    if temporary {
        return refuse("a TEMP object".into(), TEMPORARY);
    }
    match database {
        None | Some("main") => {}
        Some("temp") => return refuse("a TEMP object".into(), TEMPORARY),
        Some(other) => return refuse(format!("database `{other}`"), OWN_DATABASE),
    }
    match action {
        AuthAction::Attach { .. } => refuse("ATTACH".into(), OWN_DATABASE),
        AuthAction::Detach { .. } => refuse("DETACH".into(), OWN_DATABASE),
        AuthAction::Pragma { pragma_name, pragma_value } => {
            let name = pragma_name.to_ascii_lowercase();
            if SCHEMA_PRAGMAS.contains(&name.as_str()) {
                Ok(())
            } else if pragma_value.is_some() {
                refuse(format!("PRAGMA {name}(…)"), "only the PRAGMAs that read a table's shape are allowed")
            } else {
                refuse(format!("PRAGMA {name}"), "only the PRAGMAs that read a table's shape are allowed")
            }
        }
        AuthAction::Transaction { operation } => {
            // SQLite reports COMMIT (and END) as an operation rusqlite does not name.
            let what = match operation {
                TransactionOperation::Begin => "BEGIN",
                TransactionOperation::Rollback => "ROLLBACK",
                TransactionOperation::Release => "RELEASE",
                _ => "COMMIT",
            };
            refuse(what.into(), SHARED)
        }
        AuthAction::Savepoint { operation, .. } => {
            let what = match operation {
                TransactionOperation::Release => "RELEASE (of a SAVEPOINT)",
                TransactionOperation::Rollback => "ROLLBACK TO (a SAVEPOINT)",
                _ => "SAVEPOINT",
            };
            refuse(what.into(), SHARED)
        }
        AuthAction::Function { function_name } => {
            let name = function_name.to_ascii_lowercase();
            if DENIED_FUNCTIONS.contains(&name.as_str()) {
                refuse(format!("{name}()"), "it reaches outside the database")
            } else {
                Ok(())
            }
        }
        AuthAction::Unknown { code, .. } => refuse(format!("SQLite action {code}"), "the host allows only what it knows"),
        _ => Ok(()),
    }
}

/// Refuses VACUUM, which SQLite's authorizer does not report: `VACUUM INTO`
/// writes a copy of the database to any path, and a plain VACUUM rewrites
/// the user's whole file. Pure.
pub fn refuse_vacuum(sql: &str) -> Result<(), Refusal> {
    let mut rest = sql.trim_start();
    // Skip leading comments, where a VACUUM could hide from a plain prefix test.
    loop {
        if let Some(line) = rest.strip_prefix("--") {
            rest = line.split_once('\n').map_or("", |(_, after)| after).trim_start();
        } else if let Some(block) = rest.strip_prefix("/*") {
            rest = block.split_once("*/").map_or("", |(_, after)| after).trim_start();
        } else {
            break;
        }
    }
    let keyword: String = rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    if keyword.eq_ignore_ascii_case("vacuum") {
        return Err(Refusal { what: "VACUUM".into(), why: "it copies or rewrites the whole database file" });
    }
    Ok(())
}

/// What the authorizer and the progress handler of one connection consult.
/// Set under the connection's lock, for the call that holds it.
#[derive(Debug, Default)]
struct ConnectionWatch {
    /// The host is running its own statements (BEGIN, COMMIT, settings):
    /// the plugin rules do not apply and nothing is interrupted.
    host: AtomicBool,
    /// The call now running, if any.
    call: Mutex<Option<CallWatch>>,
    /// Why the authorizer refused the last statement.
    refused: Mutex<Option<Refusal>>,
}

#[derive(Debug, Clone)]
struct CallWatch {
    deadline: Instant,
    given_up: Arc<AtomicBool>,
}

impl ConnectionWatch {
    fn should_interrupt(&self) -> bool {
        if self.host.load(Ordering::Relaxed) {
            return false;
        }
        let call = self.call.lock().unwrap_or_else(|e| e.into_inner());
        call.as_ref().is_some_and(|c| Instant::now() >= c.deadline || c.given_up.load(Ordering::Relaxed))
    }

    fn authorize(&self, context: &AuthContext<'_>) -> Authorization {
        if self.host.load(Ordering::Relaxed) {
            return Authorization::Allow;
        }
        match authorize(&context.action, context.database_name) {
            Ok(()) => Authorization::Allow,
            Err(refusal) => {
                *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(refusal);
                Authorization::Deny
            }
        }
    }

    fn take_refusal(&self) -> Option<Refusal> {
        self.refused.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// One SQLite database file, opened lazily.
#[derive(Debug)]
pub struct SqlDatabase {
    path: PathBuf,
    /// The open connection and the identity (device, inode) of the file it opened.
    connection: Mutex<Option<OpenDatabase>>,
}

#[derive(Debug)]
struct OpenDatabase {
    connection: Connection,
    identity: (u64, u64),
    watch: Arc<ConnectionWatch>,
}

/// The identity of the file now at `path`, if there is one.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Every database the host has opened, so grants naming one file share it.
#[derive(Debug, Default)]
pub struct SqlDatabases {
    open: Mutex<HashMap<PathBuf, Arc<SqlDatabase>>>,
}

impl SqlDatabases {
    /// The shared handle of a database file.
    pub fn get(&self, path: &Path) -> Arc<SqlDatabase> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.entry(key.clone())
            .or_insert_with(|| Arc::new(SqlDatabase { path: key, connection: Mutex::new(None) }))
            .clone()
    }
}

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

/// Runs the host's own SQL on a plugin connection: the plugin rules do not
/// apply to it and it is never interrupted.
fn host_sql(connection: &Connection, watch: &ConnectionWatch, sql: &str) -> rusqlite::Result<()> {
    watch.host.store(true, Ordering::Relaxed);
    let result = connection.execute_batch(sql);
    watch.host.store(false, Ordering::Relaxed);
    result
}

impl SqlDatabase {
    /// Opens the database if needed and runs `f` on it. A file that was moved,
    /// replaced or deleted since it was opened is opened anew (or reported
    /// missing): the host never goes on writing into a file no longer at its path.
    fn with<T>(
        &self,
        origin: &str,
        f: impl FnOnce(&mut Connection, &ConnectionWatch) -> Result<T, Problem>,
    ) -> Result<T, Problem> {
        let mut guard = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let current = file_identity(&self.path);
        if guard.as_ref().is_some_and(|open| Some(open.identity) != current) {
            tracing::warn!(path = %self.path.display(), "Database file changed since it was opened; reopening");
            *guard = None;
        }
        if guard.is_none() {
            let (connection, watch) = self.open(origin)?;
            let identity = file_identity(&self.path).unwrap_or_default();
            *guard = Some(OpenDatabase { connection, identity, watch });
        }
        let open = guard.as_mut().expect("opened above");
        // A call that failed half-way may not leave a transaction open for the next.
        if !open.connection.is_autocommit() {
            host_sql(&open.connection, &open.watch, "ROLLBACK").map_err(|e| sql_problem(&e, origin, &open.watch))?;
        }
        f(&mut open.connection, &open.watch)
    }

    fn open(&self, origin: &str) -> Result<(Connection, Arc<ConnectionWatch>), Problem> {
        if !self.path.exists() {
            return Err(problem(
                "database-not-found",
                format!("database file {} of {origin} does not exist", self.path.display()),
                Some(format!("check the dsn in {origin}, or restore the database file")),
                false,
            ));
        }
        // No SQLITE_OPEN_URI: a path is a path, never `file:...?vfs=...`.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.path, flags).map_err(|e| {
            problem(
                "database-unavailable",
                format!("cannot open database {} of {origin}: {e}", self.path.display()),
                Some("check the file's permissions and that it is a SQLite database".into()),
                true,
            )
        })?;
        let watch = Arc::new(ConnectionWatch::default());
        let unavailable = |e: rusqlite::Error| {
            problem("database-unavailable", format!("cannot set up database {} of {origin}: {e}", self.path.display()), None, true)
        };
        use rusqlite::config::DbConfig;
        connection.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true).map_err(unavailable)?;
        connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, false).map_err(unavailable)?;
        connection.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0).map_err(unavailable)?;
        connection.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_TEXT).map_err(unavailable)?;
        // Settings of this connection only: the file itself (its journal mode,
        // its schema) is the user's and stays as it is.
        host_sql(&connection, &watch, "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA trusted_schema = OFF;")
            .map_err(unavailable)?;
        let authorizer = watch.clone();
        connection.authorizer(Some(move |context: AuthContext<'_>| authorizer.authorize(&context)));
        let progress = watch.clone();
        connection.progress_handler(PROGRESS_STEPS, Some(move || progress.should_interrupt()));
        Ok((connection, watch))
    }

    /// Opens the database now, to probe the connection before work is scheduled.
    pub fn probe(&self, origin: &str) -> Result<(), Problem> {
        self.with(origin, |c, watch| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())).map_err(|e| sql_problem(&e, origin, watch))
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
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
            format!("a value built by a statement on {origin} is larger than the max_output limit"),
            Some("build smaller values, or raise limits.max_output for the instance".into()),
            false,
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

/// Starts a call on a connection: its deadline, its length cap, and a
/// check that it was not given up while it waited for the connection.
fn begin_call(connection: &Connection, watch: &ConnectionWatch, budget: &SqlCallBudget) -> Result<(), Problem> {
    if budget.given_up.load(Ordering::Relaxed) || Instant::now() >= budget.deadline {
        return Err(problem(
            "sql-interrupted",
            "the call ended before the database was free".into(),
            Some("another call held the database until its deadline; the work is retried".into()),
            true,
        ));
    }
    let longest = budget.max_bytes.min(i32::MAX as u64) as i32;
    let _ = connection.set_limit(Limit::SQLITE_LIMIT_LENGTH, longest.max(1));
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
            grant.database.with(&grant.origin, |connection, watch| {
                begin_call(connection, watch, &budget)?;
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
            grant.database.with(&grant.origin, |connection, watch| {
                begin_call(connection, watch, &budget)?;
                let origin = grant.origin.as_str();
                let result = host_sql(connection, watch, "BEGIN")
                    .map_err(|e| sql_problem(&e, origin, watch))
                    .and_then(|()| grant.execute_in_transaction(connection, watch, statements, mode, &budget));
                let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
                let ended = if connection.is_autocommit() { Ok(()) } else { host_sql(connection, watch, end) };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_settings_are_refused() {
        assert!(authorize(&AuthAction::Attach { filename: "/x.sqlite" }, None).is_err());
        assert!(authorize(&AuthAction::Detach { database_name: "s" }, None).is_err());
        assert!(authorize(&AuthAction::Pragma { pragma_name: "database_list", pragma_value: None }, None).is_err());
        assert!(authorize(&AuthAction::Pragma { pragma_name: "journal_mode", pragma_value: Some("delete") }, None).is_err());
        assert!(authorize(&AuthAction::Function { function_name: "LOAD_EXTENSION" }, None).is_err());
        assert!(authorize(&AuthAction::Read { table_name: "t", column_name: "c" }, Some("temp")).is_err());
    }

    #[test]
    fn vacuum_is_refused_even_behind_comments() {
        assert!(refuse_vacuum("VACUUM INTO '/tmp/copy.sqlite'").is_err());
        assert!(refuse_vacuum("  -- tidy up\n /* now */ vacuum").is_err());
        assert!(refuse_vacuum("SELECT 'vacuum'").is_ok());
    }

    #[test]
    fn transactions_are_the_hosts() {
        for operation in [TransactionOperation::Begin, TransactionOperation::Release, TransactionOperation::Rollback] {
            assert!(authorize(&AuthAction::Transaction { operation }, None).is_err());
            assert!(authorize(&AuthAction::Savepoint { operation, savepoint_name: "s" }, None).is_err());
        }
    }

    #[test]
    fn ordinary_statements_and_schema_reads_pass() {
        assert!(authorize(&AuthAction::Select, None).is_ok());
        assert!(authorize(&AuthAction::Read { table_name: "t", column_name: "c" }, Some("main")).is_ok());
        assert!(authorize(&AuthAction::Insert { table_name: "t" }, Some("main")).is_ok());
        assert!(authorize(&AuthAction::Pragma { pragma_name: "table_info", pragma_value: Some("t") }, None).is_ok());
        assert!(authorize(&AuthAction::Function { function_name: "lower" }, None).is_ok());
        assert!(authorize(&AuthAction::Recursive, None).is_ok());
        assert!(authorize(&AuthAction::CreateTempTable { table_name: "x" }, Some("temp")).is_err());
    }
}
