//! Helpers for synchost's end-to-end tests: the test guests' paths, configs
//! written to temporary folders and loaded through the real host, and sample
//! SQLite CRM databases.
//!
//! # Layout
//! - [`guests`]: paths of the test guests, built by `build.rs`.
//! - [`Scene`]: a temporary folder with a config and databases, loaded into a catalog.
//! - [`redmine`]: the real Redmine the Redmine tests run against.
//! - [`browser`]: a real headless Chromium for the dashboard tests.
//! - [`hello_server`]: a counting HTTP server on loopback.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use synchost::catalog::Catalog;
use synchost::config::LoadedConfig;
use synchost::engine::Engine;
use synchost::runtime::Instance;
use synchost::state::State;

pub mod browser;
pub mod proxy;
pub mod redmine;

/// Paths of the test guests (components that misbehave on purpose).
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// A temporary folder holding a config and its databases.
pub struct Scene {
    pub dir: tempfile::TempDir,
}

impl Default for Scene {
    fn default() -> Self {
        Self::new()
    }
}

impl Scene {
    pub fn new() -> Self {
        Scene { dir: tempfile::tempdir().expect("temporary folder") }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Creates a SQLite database in the scene from SQL.
    pub fn database(&self, name: &str, sql: &str) -> PathBuf {
        let path = self.path(name);
        let connection = rusqlite::Connection::open(&path).expect("open database");
        connection.execute_batch(sql).expect("database setup");
        path
    }

    /// Runs SQL on a database of the scene, as a user of that system would.
    pub fn sql(&self, name: &str, sql: &str) {
        let connection = rusqlite::Connection::open(self.path(name)).expect("open database");
        connection.execute_batch(sql).expect("sql");
    }

    /// A single value from a database of the scene.
    pub fn query_one<T: rusqlite::types::FromSql>(&self, name: &str, sql: &str) -> T {
        let connection = rusqlite::Connection::open(self.path(name)).expect("open database");
        connection.query_row(sql, [], |row| row.get(0)).expect("query")
    }

    /// Writes `synchost.toml` and loads it through the real config loader and catalog.
    pub fn load(&self, config: &str) -> Catalog {
        let path = self.write_config(config);
        let loaded = LoadedConfig::load(&path).unwrap_or_else(|e| panic!("config does not load:\n{e}"));
        Catalog::load(&loaded).expect("runtime starts")
    }

    /// Writes `synchost.toml` and opens an engine on it (state in the scene's folder).
    pub fn engine(&self, config: &str) -> Engine {
        let path = self.write_config(config);
        let loaded = LoadedConfig::load(&path).unwrap_or_else(|e| panic!("config does not load:\n{e}"));
        let catalog = Catalog::load(&loaded).expect("runtime starts");
        let state = State::open(&loaded.state_path()).expect("state opens");
        Engine::new(Arc::new(loaded), Arc::new(catalog), Arc::new(state))
    }

    /// All rows of a table as (key column, other columns joined by `|`), ordered by key.
    pub fn rows(&self, db: &str, sql: &str) -> Vec<String> {
        let connection = rusqlite::Connection::open(self.path(db)).expect("open database");
        let mut statement = connection.prepare(sql).expect("prepare");
        let columns = statement.column_count();
        statement
            .query_map([], |row| {
                Ok((0..columns)
                    .map(|i| match row.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Null => "∅".to_owned(),
                        rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                        rusqlite::types::ValueRef::Real(f) => f.to_string(),
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                        rusqlite::types::ValueRef::Blob(b) => format!("<{} bytes>", b.len()),
                    })
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    pub fn write_config(&self, config: &str) -> PathBuf {
        let path = self.path("synchost.toml");
        std::fs::write(&path, config).expect("write config");
        path
    }
}

/// An instance that must exist and load.
pub fn instance<'c>(catalog: &'c Catalog, name: &str) -> &'c Instance {
    catalog.instance(name).unwrap_or_else(|failure| panic!("instance `{name}` does not load: {failure}"))
}

/// An HTTP server on loopback that answers every request with `hello` and
/// counts the connections it accepted: a granted origin, or one that must
/// never be reached.
pub async fn hello_server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let port = listener.local_addr().expect("bound address").port();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello").await;
        }
    });
    (port, connections)
}

/// A TOML string literal for a path.
pub fn toml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}
