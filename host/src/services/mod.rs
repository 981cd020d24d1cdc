//! The services the host grants plugins, and the per-call state they run in.
//!
//! - `sql`: named SQL connections (SQLite), with bound parameters and batches.
//! - `http`: requests to allow-listed origins, performed by the host.
//! - `guest`: the host side of the WIT imports (`log`, `context`, `sql`, `http`)
//!   and WASI with no files, no network and captured stdio.
//!
//! Everything is denied unless the admin granted it to the instance.

mod guest;
pub mod http;
pub mod sql;

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use crate::config::EffectiveLimits;

/// What one plugin instance (endpoint or mapper) is and may access. Shared by
/// every call into the instance; swapped as a whole when its config changes.
#[derive(Debug)]
pub struct InstanceContext {
    /// The endpoint or mapper name.
    pub name: String,
    /// The plugin it runs.
    pub plugin: String,
    /// Its settings as a JSON object.
    pub settings: String,
    /// Granted SQL connections by the name the plugin uses.
    pub sql: BTreeMap<String, sql::SqlGrant>,
    /// Granted HTTP origins.
    pub http: http::HttpAccess,
    pub limits: EffectiveLimits,
}

/// Captured stdout and stderr of one call (a Rust guest prints panics there).
const STDIO_CAPTURE_BYTES: usize = 64 * 1024;

/// The data of one `Store`: one call into one plugin instance.
pub struct HostState {
    pub(crate) instance: Arc<InstanceContext>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) stdio: MemoryOutputPipe,
}

impl HostState {
    pub fn new(instance: Arc<InstanceContext>) -> Self {
        let stdio = MemoryOutputPipe::new(STDIO_CAPTURE_BYTES);
        let wasi = WasiCtx::builder()
            .stdout(stdio.clone())
            .stderr(stdio.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limiter = MemoryLimiter { limit: instance.limits.memory, exceeded: None };
        HostState { instance, wasi, table: ResourceTable::new(), limiter, stdio }
    }

    /// What the guest wrote to stdout and stderr, as text.
    pub fn captured_output(&self) -> String {
        String::from_utf8_lossy(&self.stdio.contents()).trim().to_owned()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps a call's linear memory and remembers when a plugin hit the cap, so
/// the error can say "memory limit" instead of a bare trap.
pub struct MemoryLimiter {
    limit: u64,
    pub(crate) exceeded: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.exceeded = Some(desired);
            return Err(wasmtime::Error::msg(format!(
                "memory limit reached: the plugin tried to grow its memory to {desired} bytes, the limit is {} bytes",
                self.limit
            )));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
