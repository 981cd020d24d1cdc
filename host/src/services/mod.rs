//! The services the host grants plugins, and the per-call state they run in.
//!
//! - `sql`: named SQL connections (SQLite), with bound parameters and batches,
//!   held to exactly the granted database.
//! - `http`: requests to allow-listed origins, performed by the host.
//! - `files`: granted folders, with their quota.
//! - `budget`: how much of each service a call or an instance may use.
//! - `guest`: the host side of the WIT imports (`log`, `context`, `sql`, `http`).
//!
//! WASI is given no network, captured stdio, and only the granted folders.
//!
//! Everything is denied unless the admin granted it to the instance;
//! `docs/sandbox.md` lists every capability and budget.

pub mod budget;
pub mod files;
mod guest;
pub mod http;
pub mod sql;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, ResourceTable, WasiCtx, WasiCtxView, WasiView};

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
    /// Granted folders: the name the plugin uses (seen at `/NAME`), the
    /// folder on the host, and whether it is read-only.
    pub folders: Vec<Folder>,
    pub limits: EffectiveLimits,
    /// Log lines and bytes per minute, shared by every call.
    pub log_budget: budget::LogBudget,
}

impl InstanceContext {
    /// An instance with no grants and the given limits.
    pub fn ungranted(name: &str, plugin: &str, settings: String, limits: EffectiveLimits) -> Self {
        InstanceContext {
            name: name.to_owned(),
            plugin: plugin.to_owned(),
            settings,
            sql: BTreeMap::new(),
            http: http::HttpAccess { allow: Vec::new(), read_only: false, client: http::client() },
            folders: Vec::new(),
            limits,
            log_budget: budget::LogBudget::new(limits.log_lines, limits.log_bytes),
        }
    }
}

/// A folder of the host's disk granted to an instance.
#[derive(Debug, Clone)]
pub struct Folder {
    pub name: String,
    pub path: std::path::PathBuf,
    pub read_only: bool,
    /// The most the folder may hold, in bytes.
    pub quota: u64,
    /// What the folder holds, shared by every grant of it.
    pub account: Arc<files::FolderAccount>,
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
    /// When the call must end; host services stop their work then.
    pub(crate) deadline: Instant,
    /// Set when the host gives up on the call (its future is dropped).
    pub(crate) given_up: Arc<AtomicBool>,
    /// What the call has used of its budgets.
    pub(crate) usage: budget::CallUsage,
    /// Bytes written into granted folders during the call, against their quotas.
    pub(crate) folder_usage: files::FolderUsage,
    /// The instance's dropped log lines when the call began.
    pub(crate) log_dropped_at_start: budget::Dropped,
}

impl HostState {
    pub fn new(instance: Arc<InstanceContext>) -> Self {
        let stdio = MemoryOutputPipe::new(STDIO_CAPTURE_BYTES);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdio.clone()).stderr(stdio.clone()).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        for folder in &instance.folders {
            let perms = if folder.read_only { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
            // A folder removed since the config was loaded: the plugin finds
            // no `/NAME` and reports it; the call itself goes on.
            if let Err(error) = wasi.preopened_dir(&folder.path, format!("/{}", folder.name), perms) {
                tracing::warn!(instance = %instance.name, folder = %folder.path.display(), "Granted folder cannot be opened: {error:#}");
            }
        }
        let wasi = wasi.build();
        let limiter = MemoryLimiter { limit: instance.limits.memory, exceeded: None };
        let deadline = Instant::now() + instance.limits.timeout;
        let folder_usage = files::FolderUsage::new(&instance.name, &instance.folders);
        let log_dropped_at_start = instance.log_budget.dropped();
        HostState {
            instance,
            wasi,
            table: ResourceTable::new(),
            limiter,
            stdio,
            deadline,
            given_up: Arc::new(AtomicBool::new(false)),
            usage: budget::CallUsage::default(),
            log_dropped_at_start,
            folder_usage,
        }
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
