//! SQLite database files opened for plugins: one connection per file,
//! shared by every grant naming it, set up so that a grant reaches only that
//! file (see the parent module), with the authorizer and the progress
//! handler consulting a [`ConnectionWatch`] the call in progress sets.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::hooks::{AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::{Connection, OpenFlags};

use super::{authorize, functions, problem, sql_problem, Refusal};
use crate::runtime::api::Problem;

/// Longest SQL text a plugin may send in one statement: connectors bind
/// their values, so their statements are short; a long one can only repeat
/// work in the straight-line code between two looks at the deadline.
const MAX_SQL_TEXT: i32 = 100 * 1024;

/// Most virtual machine instructions in one statement, and most arguments
/// of one function: the same reason.
const MAX_STATEMENT_STEPS: i32 = 25_000;
const MAX_FUNCTION_ARGUMENTS: i32 = 32;

/// How often a call waiting for a database another call holds looks again.
const POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// The most memory SQLite may take in this process, plugin connections and
/// the state store together: a last guard behind the per-call caps (a sort
/// of a huge set, which runs in memory, fails instead of exhausting the host).
pub(super) const SQLITE_HEAP_LIMIT: i64 = 2 << 30;

/// Virtual machine steps between two looks at the call's deadline.
const PROGRESS_STEPS: i32 = 10_000;

/// What the authorizer and the progress handler of one connection consult.
/// Set under the connection's lock, for the call that holds it.
#[derive(Debug, Default)]
pub(super) struct ConnectionWatch {
    /// The host is running its own statements (BEGIN, COMMIT, settings):
    /// the plugin rules do not apply and nothing is interrupted.
    pub(super) host: AtomicBool,
    /// The call now running, if any.
    pub(super) call: Mutex<Option<CallWatch>>,
    /// Why the authorizer refused the last statement.
    refused: Mutex<Option<Refusal>>,
    /// The longest value the running statement may build (its
    /// `SQLITE_LIMIT_LENGTH`), for the host's own `replace`.
    pub(super) longest: Arc<AtomicU64>,
}

#[derive(Debug, Clone)]
pub(super) struct CallWatch {
    pub(super) deadline: Instant,
    pub(super) given_up: Arc<AtomicBool>,
}

impl ConnectionWatch {
    pub(super) fn should_interrupt(&self) -> bool {
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

    pub(super) fn take_refusal(&self) -> Option<Refusal> {
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

/// Runs `f` as the host on a plugin connection: the plugin rules do not
/// apply to what it prepares and it is never interrupted.
fn as_host<T>(watch: &ConnectionWatch, f: impl FnOnce() -> T) -> T {
    watch.host.store(true, Ordering::Relaxed);
    let result = f();
    watch.host.store(false, Ordering::Relaxed);
    result
}

/// Runs the host's own SQL statements on a plugin connection.
pub(super) fn host_sql(connection: &Connection, watch: &ConnectionWatch, sql: &str) -> rusqlite::Result<()> {
    as_host(watch, || connection.execute_batch(sql))
}

impl SqlDatabase {
    /// Opens the database if needed and runs `f` on it. A file that was moved,
    /// replaced or deleted since it was opened is opened anew (or reported
    /// missing): the host never goes on writing into a file no longer at its path.
    pub(super) fn with<T>(
        &self,
        origin: &str,
        deadline: Instant,
        f: impl FnOnce(&mut Connection, &ConnectionWatch) -> Result<T, Problem>,
    ) -> Result<T, Problem> {
        // Waits for the connection no longer than the call may run, so calls
        // queued behind a slow statement give up in time and do not pile up.
        let mut guard = loop {
            match self.connection.try_lock() {
                Ok(guard) => break guard,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => break poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => std::thread::sleep(POLL),
                Err(std::sync::TryLockError::WouldBlock) => {
                    return Err(problem(
                        "database-busy",
                        format!("the database of {origin} was held by another call until this call's deadline"),
                        Some("another instance's statement ran long on the same file; the work is retried".into()),
                        true,
                    ));
                }
            }
        };
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
        let result = f(&mut open.connection, &open.watch);
        // Whatever happened, the next call finds no transaction open.
        if !open.connection.is_autocommit() {
            let _ = host_sql(&open.connection, &open.watch, "ROLLBACK");
        }
        result
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
        // Paths are resolved against the config file's folder, so they never
        // start with `file:` and are never read as URIs. No symbolic link is
        // followed: the config refuses write grants on folders holding a
        // database, and this holds even if a link is planted some other way.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW;
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
        connection.set_limit(Limit::SQLITE_LIMIT_VDBE_OP, MAX_STATEMENT_STEPS).map_err(unavailable)?;
        connection.set_limit(Limit::SQLITE_LIMIT_FUNCTION_ARG, MAX_FUNCTION_ARGUMENTS).map_err(unavailable)?;
        let stop_watch = watch.clone();
        functions::install(&connection, watch.longest.clone(), Arc::new(move || stop_watch.should_interrupt())).map_err(unavailable)?;
        static HEAP_LIMIT: std::sync::Once = std::sync::Once::new();
        // SAFETY: sets a process-wide number; callable at any time.
        HEAP_LIMIT.call_once(|| unsafe {
            rusqlite::ffi::sqlite3_hard_heap_limit64(SQLITE_HEAP_LIMIT);
        });
        // Settings of this connection only: the file itself (its journal mode,
        // its schema) is the user's and stays as it is. Temporary data (sorts,
        // materialized subqueries) stays in memory, within the heap limit,
        // rather than in temporary files no quota covers.
        host_sql(&connection, &watch, "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA trusted_schema = OFF; PRAGMA temp_store = MEMORY;")
            .map_err(unavailable)?;
        let authorizer = watch.clone();
        connection.authorizer(Some(move |context: AuthContext<'_>| authorizer.authorize(&context)));
        let progress = watch.clone();
        connection.progress_handler(PROGRESS_STEPS, Some(move || progress.should_interrupt()));
        Ok((connection, watch))
    }

    /// Opens the database now, to probe the connection before work is scheduled.
    pub fn probe(&self, origin: &str) -> Result<(), Problem> {
        self.with(origin, Instant::now() + std::time::Duration::from_secs(30), |c, watch| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())).map_err(|e| sql_problem(&e, origin, watch))
        })
    }

    /// Whether SQLite could open the file for reading only (the file or its
    /// folder is not writable for this process): every write would fail.
    pub fn read_only_on_disk(&self, origin: &str) -> Result<bool, Problem> {
        self.with(origin, Instant::now() + std::time::Duration::from_secs(30), |c, watch| {
            c.is_readonly(rusqlite::MAIN_DB).map_err(|e| sql_problem(&e, origin, watch))
        })
    }

    /// SQLite's `quick_check` of the whole file, for `synchost check`: a
    /// damaged page is reported before a run reads it. Reads only.
    pub fn integrity(&self, origin: &str) -> Result<Vec<String>, Problem> {
        self.with(origin, Instant::now() + std::time::Duration::from_secs(300), |c, watch| {
            let found = as_host(watch, || {
                let mut statement = c.prepare("PRAGMA quick_check")?;
                let rows = statement.query_map([], |r| r.get::<_, String>(0))?;
                rows.collect::<Result<Vec<_>, _>>()
            });
            let found = found.map_err(|e| sql_problem(&e, origin, watch))?;
            Ok(if found == ["ok"] { Vec::new() } else { found })
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

