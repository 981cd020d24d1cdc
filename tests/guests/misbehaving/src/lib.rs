//! A test guest that misbehaves on purpose, as chosen by its `behaviour` setting.
//! Each behaviour must fail only its own call, with a clear error, and leave the
//! host serving every other plugin.
//!
//! All behaviours happen in `read`; `describe` always works, so the host can
//! load the plugin and check its settings first.

use serde::Deserialize;
use synchost_plugin_sdk::host::{http, Sql};
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
            writable: false,
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
                let response = http::send(&synchost_plugin_sdk::host::Request::new("GET", self.0.url.as_str()))?;
                vec![Record::new("1").with("payload", response.text())]
            }
            Behaviour::RawTcp => match std::net::TcpStream::connect(self.0.url.as_str()) {
                Ok(_) => vec![Record::new("1").with("payload", "connected")],
                Err(e) => return Err(Error::new("io", format!("raw TCP connect failed: {e}"))),
            },
        };
        Ok(ReadBatch { records, cursor: None, has_more: false })
    }

    fn fetch(&mut self, _entity: &str, _ids: Vec<String>) -> Result<Vec<Record>, Error> {
        Ok(Vec::new())
    }

    fn write(&mut self, _entity: &str, _changes: Vec<Change>) -> Result<Vec<Outcome>, Error> {
        Err(Error::new("read-only", "the misbehaving guest does not write"))
    }
}

export_connector!(Misbehaving);
