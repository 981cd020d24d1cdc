//! A test guest that misbehaves on purpose, as chosen by its `behaviour` setting.
//! Each behaviour must fail only its own call, with a clear error, and leave the
//! host serving every other plugin.
//!
//! All behaviours happen in `read`; `describe` always works, so the host can
//! load the plugin and check its settings first.

use serde::Deserialize;
use synchost_plugin_sdk::host::{http, log, BatchMode, Sql, Statement};
use synchost_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Behaviour {
    /// Returns one record.
    Ok,
    /// Executes `unreachable`.
    Trap,
    /// Panics with a message.
    Panic,
    /// Never returns.
    Loop,
    /// Allocates and touches memory without bound.
    Allocate,
    /// Returns `output_bytes` of records.
    HugeOutput,
    /// Queries a SQL connection named `connection` (not granted in the tests).
    Sql,
    /// Sends a GET to `url` through the host's http service.
    Http,
    /// Opens a TCP connection to `url` (`host:port`) with WASI sockets directly,
    /// going around the host's http service.
    RawTcp,
    /// Runs each of `queries` on `connection`, through `query` (or through
    /// `execute` when `execute` is set); stops at the first refusal. Returns
    /// one record per statement with the rows it gave.
    Queries,
    /// Logs `count` lines of `output_bytes` bytes each.
    LogFlood,
    /// Writes `output_bytes` bytes to `/FOLDER/file.bin` (`connection` names
    /// the folder), with `std::fs` (WASI streams); with `append` set, in
    /// 64 KiB appends.
    WriteFile,
    /// Creates `count` empty folders under `/FOLDER` (`connection`).
    MakeFolders,
    /// Writes `output_bytes` bytes to `/FOLDER/moving.bin`, then renames the
    /// file into the folder `target`.
    MoveFile,
    /// Logs `secret`, prints it to stdout and stderr, then fails with a
    /// problem that quotes it: what a careless plugin author might do.
    EchoSecret,
    /// Looks for what an earlier call left behind: a static it counts in,
    /// and a MiB of memory it grows and fills with 0xAB. Returns the count and
    /// the bytes of that MiB that were not zero when it looked.
    Remember,
}

/// Calls this instance served; a fresh instance starts at 0.
static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The non-zero bytes of a newly grown MiB of linear memory, which is then
/// filled with 0xAB for a later call to find.
#[cfg(target_arch = "wasm32")]
fn residue() -> usize {
    const PAGES: usize = 16;
    let start = core::arch::wasm32::memory_grow(0, PAGES);
    assert!(start != usize::MAX, "memory.grow failed");
    // Memory this module grew itself: no allocator owns it.
    let region = unsafe { core::slice::from_raw_parts_mut((start * 65536) as *mut u8, PAGES * 65536) };
    let found = region.iter().filter(|b| **b != 0).count();
    region.fill(0xAB);
    found
}

#[cfg(not(target_arch = "wasm32"))]
fn residue() -> usize {
    0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    behaviour: Behaviour,
    #[serde(default)]
    output_bytes: usize,
    #[serde(default)]
    connection: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    queries: Vec<String>,
    #[serde(default)]
    execute: bool,
    /// With `queries`: go on after a refusal, reporting each statement's
    /// outcome (`ok: ROWS` or `CODE: MESSAGE`) as a record.
    #[serde(default)]
    keep_going: bool,
    #[serde(default)]
    count: usize,
    #[serde(default)]
    append: bool,
    /// Extra request headers for `http`.
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    target: String,
    /// When set, `items` is writable and `write` reports these ids for the
    /// changes in turn (empty or repeated ones on purpose).
    #[serde(default)]
    write_ids: Vec<String>,
}

/// The misbehaving connector.
pub struct Misbehaving(Settings);

impl Connector for Misbehaving {
    fn new(context: &Context) -> Result<Self, Error> {
        Ok(Misbehaving(context.settings()?))
    }

    fn describe(&self) -> Result<Vec<EntityDef>, Error> {
        Ok(vec![EntityDef {
            name: "items".into(),
            key: "id".into(),
            fields: vec![FieldDef {
                name: "payload".into(),
                type_: FieldType::Text,
                nullable: true,
                read_only: false,
            }],
            change_feed: false,
            soft_delete: false,
            writable: !self.0.write_ids.is_empty(),
            finds_by_origin: false,
        }])
    }

    fn read(&mut self, _entity: &str, _cursor: Option<String>, _limit: u32) -> Result<ReadBatch, Error> {
        let records = match self.0.behaviour {
            Behaviour::Ok => vec![Record::new("1").with("payload", "fine")],
            #[cfg(target_arch = "wasm32")]
            Behaviour::Trap => core::arch::wasm32::unreachable(),
            #[cfg(not(target_arch = "wasm32"))]
            Behaviour::Trap => std::process::abort(),
            Behaviour::Panic => panic!("the misbehaving guest panics on purpose"),
            Behaviour::Loop => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Behaviour::Allocate => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Behaviour::HugeOutput => {
                let chunk = "x".repeat(64 * 1024);
                (0..self.0.output_bytes / chunk.len())
                    .map(|i| Record::new(i.to_string()).with("payload", chunk.clone()))
                    .collect()
            }
            Behaviour::Sql => {
                let rows = Sql::connection(self.0.connection.as_str()).query("SELECT 1", &[])?;
                vec![Record::new("1").with("payload", format!("{rows:?}"))]
            }
            Behaviour::Http => {
                let mut request = synchost_plugin_sdk::host::Request::new("GET", self.0.url.as_str());
                for (name, value) in &self.0.headers {
                    request = request.header(name, value.as_str());
                }
                let mut response = http::send(&request)?;
                for _ in 1..self.0.count {
                    response = http::send(&request)?;
                }
                vec![Record::new("1").with("payload", response.text())]
            }
            Behaviour::RawTcp => match std::net::TcpStream::connect(self.0.url.as_str()) {
                Ok(_) => vec![Record::new("1").with("payload", "connected")],
                Err(e) => return Err(Error::new("io", format!("raw TCP connect failed: {e}"))),
            },
            Behaviour::Queries => self.queries()?,
            Behaviour::LogFlood => {
                let line = "x".repeat(self.0.output_bytes);
                for _ in 0..self.0.count {
                    log::info(&line);
                }
                vec![Record::new("1").with("payload", "logged")]
            }
            Behaviour::WriteFile => {
                let path = format!("/{}/file.bin", self.0.connection);
                write_file(&path, self.0.output_bytes, self.0.append)
                    .map_err(|e| Error::new("io", format!("writing {path} failed: {e}")))?;
                vec![Record::new("1").with("payload", "written")]
            }
            Behaviour::MakeFolders => {
                for i in 0..self.0.count {
                    let path = format!("/{}/d{i}", self.0.connection);
                    std::fs::create_dir(&path).map_err(|e| Error::new("io", format!("creating {path} failed: {e}")))?;
                }
                vec![Record::new("1").with("payload", "created")]
            }
            Behaviour::MoveFile => {
                let from = format!("/{}/moving.bin", self.0.connection);
                let to = format!("/{}/moving.bin", self.0.target);
                write_file(&from, self.0.output_bytes, false).map_err(|e| Error::new("io", format!("writing {from} failed: {e}")))?;
                std::fs::rename(&from, &to).map_err(|e| Error::new("io", format!("moving {from} to {to} failed: {e}")))?;
                vec![Record::new("1").with("payload", "moved")]
            }
            Behaviour::Remember => {
                let calls = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                vec![Record::new("1").with("calls_before", i64::from(calls)).with("residue", residue() as i64)]
            }
            Behaviour::EchoSecret => {
                let secret = &self.0.secret;
                log::warn(&format!("connecting with key {secret}"));
                println!("debug: key={secret}");
                eprintln!("the key is {secret}");
                return Err(Error::new("auth", format!("the server refused key {secret}"))
                    .with_hint(format!("check that {secret} is still valid")));
            }
        };
        Ok(ReadBatch { records, cursor: None, has_more: false })
    }

    fn fetch(&mut self, _entity: &str, _ids: Vec<String>) -> Result<Vec<Record>, Error> {
        Ok(Vec::new())
    }

    fn write(&mut self, _entity: &str, changes: Vec<Change>) -> Result<Vec<Outcome>, Error> {
        if self.0.write_ids.is_empty() {
            return Err(Error::new("read-only", "the misbehaving guest does not write"));
        }
        let ids = self.0.write_ids.iter().cycle();
        Ok(changes.iter().zip(ids).map(|(_, id)| Outcome::Applied(Applied { id: id.clone(), version: None })).collect())
    }
}

impl Misbehaving {
    fn queries(&self) -> Result<Vec<Record>, Error> {
        let sql = Sql::connection(self.0.connection.as_str());
        if self.0.execute {
            let statements: Vec<Statement> =
                self.0.queries.iter().map(|q| Statement { sql: q.clone(), params: Vec::new() }).collect();
            let mut records = Vec::new();
            for (i, result) in sql.execute(&statements, BatchMode::AllOrNothing)?.into_iter().enumerate() {
                let executed = result?;
                records.push(Record::new(i.to_string()).with("payload", format!("{} rows", executed.returned.len())));
            }
            return Ok(records);
        }
        let mut records = Vec::new();
        for (i, query) in self.0.queries.iter().enumerate() {
            let payload = match sql.query(query, &[]) {
                Ok(rows) if self.0.keep_going => format!("ok: {:?}", rows.rows),
                Ok(rows) => format!("{:?}", rows.rows),
                Err(error) if self.0.keep_going => format!("{}: {}", error.problem().code, error.problem().message),
                Err(error) => return Err(error),
            };
            records.push(Record::new(i.to_string()).with("payload", payload));
        }
        Ok(records)
    }
}

fn write_file(path: &str, bytes: usize, append: bool) -> std::io::Result<()> {
    use std::io::Write;
    if append {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let chunk = vec![7u8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            file.write_all(&chunk[..n])?;
            left -= n;
        }
        Ok(())
    } else {
        std::fs::write(path, vec![7u8; bytes])
    }
}

export_connector!(Misbehaving);
