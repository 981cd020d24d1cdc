//! Named SQL connections: SQLite databases opened by the host on a plugin's behalf.
//!
//! A database file is opened once per host and shared by every grant that
//! names it. Calls run on tokio's blocking pool, so a slow query never stalls
//! the async runtime. Parameters are always bound, never spliced into SQL.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};

use crate::runtime::bindings::wit_sql::{BatchMode, Executed, Rows, Statement};
use crate::runtime::bindings::{Problem, Value};

/// One SQLite database file, opened lazily.
#[derive(Debug)]
pub struct SqlDatabase {
    path: PathBuf,
    /// The open connection and the identity (device, inode) of the file it opened.
    connection: Mutex<Option<(Connection, (u64, u64))>>,
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

fn problem(code: &str, message: String, hint: Option<String>, retryable: bool) -> Problem {
    Problem { code: code.into(), message, hint, retryable }
}

impl SqlDatabase {
    /// Opens the database if needed and runs `f` on it. A file that was moved,
    /// replaced or deleted since it was opened is opened anew (or reported
    /// missing): the host never goes on writing into a file no longer at its path.
    fn with<T>(&self, origin: &str, f: impl FnOnce(&mut Connection) -> Result<T, Problem>) -> Result<T, Problem> {
        let mut guard = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let current = file_identity(&self.path);
        if guard.as_ref().is_some_and(|(_, opened)| Some(*opened) != current) {
            tracing::warn!(path = %self.path.display(), "Database file changed since it was opened; reopening");
            *guard = None;
        }
        if guard.is_none() {
            let connection = self.open(origin)?;
            let identity = file_identity(&self.path).unwrap_or_default();
            *guard = Some((connection, identity));
        }
        f(&mut guard.as_mut().expect("opened above").0)
    }

    fn open(&self, origin: &str) -> Result<Connection, Problem> {
        if !self.path.exists() {
            return Err(problem(
                "database-not-found",
                format!("database file {} of {origin} does not exist", self.path.display()),
                Some(format!("check the dsn in {origin}, or restore the database file")),
                false,
            ));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.path, flags).map_err(|e| {
            problem(
                "database-unavailable",
                format!("cannot open database {} of {origin}: {e}", self.path.display()),
                Some("check the file's permissions and that it is a SQLite database".into()),
                true,
            )
        })?;
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;")
            .map_err(|e| sql_problem(&e, origin))?;
        Ok(connection)
    }

    /// Opens the database now, to probe the connection before work is scheduled.
    pub fn probe(&self, origin: &str) -> Result<(), Problem> {
        self.with(origin, |c| c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())).map_err(|e| sql_problem(&e, origin)))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn sql_problem(error: &rusqlite::Error, origin: &str) -> Problem {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
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

/// Runs one prepared statement and collects the rows it returns, up to `max_bytes`.
fn run(
    connection: &Connection,
    sql: &str,
    params: Vec<Value>,
    max_bytes: u64,
    origin: &str,
) -> Result<(Vec<String>, Vec<Vec<Value>>), Problem> {
    let mut statement = connection.prepare_cached(sql).map_err(|e| sql_problem(&e, origin))?;
    let columns: Vec<String> = statement.column_names().into_iter().map(str::to_owned).collect();
    let params: Vec<SqlValue> = params.into_iter().map(to_sql).collect();
    let mut rows = statement.query(rusqlite::params_from_iter(params)).map_err(|e| sql_problem(&e, origin))?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = rows.next().map_err(|e| sql_problem(&e, origin))? {
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            let (value, size) = from_sql(row.get_ref(i).map_err(|e| sql_problem(&e, origin))?);
            bytes += size;
            values.push(value);
        }
        if bytes as u64 > max_bytes {
            return Err(problem(
                "result-too-large",
                format!("the query's result is larger than the instance's max_output limit ({max_bytes} bytes)"),
                Some("read in pages with LIMIT, or raise limits.max_output for the instance".into()),
                false,
            ));
        }
        out.push(values);
    }
    Ok((columns, out))
}

impl SqlGrant {
    /// Runs a read-only query.
    pub async fn query(&self, sql: String, params: Vec<Value>, max_bytes: u64) -> Result<Rows, Problem> {
        let grant = self.clone();
        blocking(move || {
            grant.database.with(&grant.origin, |connection| {
                let readonly = connection.prepare_cached(&sql).map_err(|e| sql_problem(&e, &grant.origin))?.readonly();
                if !readonly {
                    return Err(problem(
                        "not-a-query",
                        "`query` runs only statements that read; this one writes".into(),
                        Some("send statements that change data through `execute`".into()),
                        false,
                    ));
                }
                let (columns, rows) = run(connection, &sql, params, max_bytes, &grant.origin)?;
                Ok(Rows { columns, rows })
            })
        })
        .await
    }

    /// Runs a batch of statements in one transaction.
    pub async fn execute(&self, statements: Vec<Statement>, mode: BatchMode) -> Result<Vec<Result<Executed, Problem>>, Problem> {
        let grant = self.clone();
        blocking(move || {
            grant.database.with(&grant.origin, |connection| {
                let origin = grant.origin.as_str();
                let transaction = connection.transaction().map_err(|e| sql_problem(&e, origin))?;
                let mut results = Vec::with_capacity(statements.len());
                for (index, statement) in statements.into_iter().enumerate() {
                    if grant.read_only {
                        let readonly = transaction.prepare_cached(&statement.sql).map(|s| s.readonly()).unwrap_or(false);
                        if !readonly {
                            return Err(problem(
                                "capability-denied",
                                format!("{origin} is granted read-only; statement {index} writes"),
                                Some(format!("remove `read_only = true` from {origin} to allow writes")),
                                false,
                            ));
                        }
                    }
                    let outcome = match mode {
                        BatchMode::AllOrNothing => run_counted(&transaction, statement, origin).map_err(|p| {
                            Problem { message: format!("statement {index}: {}", p.message), ..p }
                        })?,
                        BatchMode::EachAlone => {
                            transaction.execute_batch("SAVEPOINT synchost_each").map_err(|e| sql_problem(&e, origin))?;
                            let outcome = run_counted(&transaction, statement, origin);
                            let end = if outcome.is_ok() {
                                "RELEASE synchost_each"
                            } else {
                                "ROLLBACK TO synchost_each; RELEASE synchost_each"
                            };
                            transaction.execute_batch(end).map_err(|e| sql_problem(&e, origin))?;
                            results.push(outcome);
                            continue;
                        }
                    };
                    results.push(Ok(outcome));
                }
                transaction.commit().map_err(|e| sql_problem(&e, origin))?;
                Ok(results)
            })
        })
        .await
    }
}

fn run_counted(connection: &Connection, statement: Statement, origin: &str) -> Result<Executed, Problem> {
    let before = connection.total_changes();
    let (_, returned) = run(connection, &statement.sql, statement.params, u64::MAX, origin)?;
    let rows_affected = connection.total_changes().saturating_sub(before);
    Ok(Executed { rows_affected, returned })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Problem> + Send + 'static) -> Result<T, Problem> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(problem("host-error", format!("the SQL worker failed: {e}"), None, true))
    })
}
