//! The sandbox that runs plugins: wasmtime components, one call at a time.
//!
//! - One [`Runtime`] per host: one wasmtime `Engine` with the pooling
//!   allocator and epoch interruption, a linker per plugin world, an epoch
//!   ticker thread, and a cache of compiled components on disk.
//! - A [`Plugin`] is a checked and compiled component with its `InstancePre`:
//!   its API version is read and checked before anything is compiled.
//! - An [`Instance`] is a plugin with one endpoint's or mapper's settings and
//!   grants. Every call gets a fresh `Store`: a wall-clock deadline, a memory
//!   limit and an output limit. A trap, a hang or a memory blow-up fails that
//!   call with a [`CallError`] naming the plugin, the function and the cause.
//!
//! - [`api`]: each plugin API version's bindings and its conversions to the
//!   host's model; an instance calls a plugin through the bindings of the
//!   version it was built against.
//!
//! Nothing here is global: plugins and instances are values held in `Arc`s, so
//! a new version can be swapped in while calls on the old one finish.

pub mod api;
mod cache;
mod error;
pub mod metadata;
mod size;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

pub use error::{CallError, CallSite};
pub use metadata::{PluginKind, PluginMetadata};

use api::{v0_3, v0_4, v0_5};
use size::OutputSize;

use crate::model::{Change, Direction, EntityDef, EntityNeed, Mapped, Outcome, Problem, ReadBatch, Record, Violation};

use crate::services::{HostState, InstanceContext};

/// How often the epoch ticks; wall-clock limits are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How much of a plugin's linear memory and stack stays mapped between calls.
const KEEP_RESIDENT: usize = 16 << 20;

/// The most linear memory any plugin instance may be given.
pub const MAX_PLUGIN_MEMORY: u64 = 1 << 30;

/// Why a plugin cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin `{plugin}` cannot be used: {source}")]
    Metadata { plugin: String, source: metadata::MetadataError },
    #[error("plugin `{plugin}` failed to compile: {message}")]
    Compile { plugin: String, message: String },
    #[error("plugin `{plugin}` does not fit the {kind} world of plugin API {api}: {message}")]
    Link { plugin: String, kind: PluginKind, api: String, message: String },
}

/// The host's plugin sandbox.
pub struct Runtime {
    engine: Engine,
    connector_linker: Linker<HostState>,
    mapper_linker: Linker<HostState>,
    cache: Option<cache::ComponentCache>,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    /// A runtime that caches compiled plugins in `cache_dir`, if given.
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // `perf` cannot name code compiled at run time on its own: with this
        // set, plugins' functions are listed in /tmp/perf-<pid>.map for it.
        if std::env::var_os("SYNCHOST_PERF_MAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(256)
            .total_core_instances(1024)
            .total_memories(256)
            .total_tables(1024)
            .max_memory_size(MAX_PLUGIN_MEMORY as usize)
            // Every call gets a fresh instance: a slot's memory and stack are
            // zeroed in place for the next call rather than handed back to the
            // kernel, which would fault each page in again (a fifth of a big
            // sync went to page faults).
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .async_stack_keep_resident(KEEP_RESIDENT);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        let engine = Engine::new(&config).map_err(into_anyhow)?;

        let mut connector_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut connector_linker).map_err(into_anyhow)?;
        crate::services::files::add_quota_to_linker(&mut connector_linker).map_err(into_anyhow)?;
        // Each API version's interfaces have their own names (`...@0.3.0`), so one
        // linker serves plugins of every version.
        v0_5::connector::ConnectorPlugin::add_to_linker::<_, HasSelf<_>>(&mut connector_linker, |s| s).map_err(into_anyhow)?;
        v0_4::connector::ConnectorPlugin::add_to_linker::<_, HasSelf<_>>(&mut connector_linker, |s| s).map_err(into_anyhow)?;
        v0_3::connector::ConnectorPlugin::add_to_linker::<_, HasSelf<_>>(&mut connector_linker, |s| s).map_err(into_anyhow)?;
        let mut mapper_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut mapper_linker).map_err(into_anyhow)?;
        crate::services::files::add_quota_to_linker(&mut mapper_linker).map_err(into_anyhow)?;
        v0_5::mapper::MapperPlugin::add_to_linker::<_, HasSelf<_>>(&mut mapper_linker, |s| s).map_err(into_anyhow)?;
        v0_4::mapper::MapperPlugin::add_to_linker::<_, HasSelf<_>>(&mut mapper_linker, |s| s).map_err(into_anyhow)?;
        v0_3::mapper::MapperPlugin::add_to_linker::<_, HasSelf<_>>(&mut mapper_linker, |s| s).map_err(into_anyhow)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new().name("synchost-epoch".into()).spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        }
        let cache = cache_dir.map(|dir| cache::ComponentCache::new(dir, &engine));
        Ok(Runtime { engine, connector_linker, mapper_linker, cache, ticker_stop })
    }

    /// Checks, compiles and links a plugin component. The API version is
    /// checked first, so an incompatible plugin is never compiled or run.
    pub fn load_plugin(&self, name: &str, bytes: &[u8]) -> Result<Arc<Plugin>, LoadError> {
        let metadata = metadata::read(bytes).map_err(|source| LoadError::Metadata { plugin: name.into(), source })?;
        let sha256 = hex::encode(Sha256::digest(bytes));
        let compile_error = |e: wasmtime::Error| LoadError::Compile { plugin: name.into(), message: format!("{e:#}") };
        let component = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, bytes, &sha256).map_err(compile_error)?,
            None => Component::new(&self.engine, bytes).map_err(compile_error)?,
        };
        let link_error = |e: wasmtime::Error| LoadError::Link {
            plugin: name.into(),
            kind: metadata.kind,
            api: metadata.api_version.to_string(),
            message: format!("{e:#}"),
        };
        let connector = || self.connector_linker.instantiate_pre(&component).map_err(link_error);
        let mapper = || self.mapper_linker.instantiate_pre(&component).map_err(link_error);
        let pre = match (metadata.kind, metadata.binding) {
            (PluginKind::Connector, metadata::Binding::V0_5) => {
                PluginPre::Connector(v0_5::connector::ConnectorPluginPre::new(connector()?).map_err(link_error)?)
            }
            (PluginKind::Mapper, metadata::Binding::V0_5) => PluginPre::Mapper(v0_5::mapper::MapperPluginPre::new(mapper()?).map_err(link_error)?),
            (PluginKind::Connector, metadata::Binding::V0_4) => {
                PluginPre::ConnectorV0_4(v0_4::connector::ConnectorPluginPre::new(connector()?).map_err(link_error)?)
            }
            (PluginKind::Mapper, metadata::Binding::V0_4) => {
                PluginPre::MapperV0_4(v0_4::mapper::MapperPluginPre::new(mapper()?).map_err(link_error)?)
            }
            (PluginKind::Connector, metadata::Binding::V0_3) => {
                PluginPre::ConnectorV0_3(v0_3::connector::ConnectorPluginPre::new(connector()?).map_err(link_error)?)
            }
            (PluginKind::Mapper, metadata::Binding::V0_3) => {
                PluginPre::MapperV0_3(v0_3::mapper::MapperPluginPre::new(mapper()?).map_err(link_error)?)
            }
        };
        Ok(Arc::new(Plugin { name: name.into(), metadata, sha256, pre }))
    }

    /// A plugin bound to one instance's settings, grants and limits.
    pub fn instance(&self, plugin: Arc<Plugin>, context: InstanceContext) -> Instance {
        Instance { engine: self.engine.clone(), plugin, context: Arc::new(context) }
    }
}

/// A call error with whatever the plugin said passed through [`crate::secrets::redact`].
fn redact_call_error(error: CallError) -> CallError {
    use crate::secrets::redacted;
    match error {
        CallError::Problem { site, problem } => CallError::Problem {
            site,
            problem: Problem {
                code: redacted(&problem.code),
                message: redacted(&problem.message),
                hint: problem.hint.as_deref().map(redacted),
                ..problem
            },
        },
        CallError::Trap { site, message } => CallError::Trap { site, message: redacted(&message) },
        CallError::Instantiate { site, message } => CallError::Instantiate { site, message: redacted(&message) },
        other => other,
    }
}

fn into_anyhow(error: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{error:#}")
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A linked plugin, by kind and by the plugin API version it was built against.
enum PluginPre {
    Connector(v0_5::connector::ConnectorPluginPre<HostState>),
    Mapper(v0_5::mapper::MapperPluginPre<HostState>),
    ConnectorV0_4(v0_4::connector::ConnectorPluginPre<HostState>),
    MapperV0_4(v0_4::mapper::MapperPluginPre<HostState>),
    ConnectorV0_3(v0_3::connector::ConnectorPluginPre<HostState>),
    MapperV0_3(v0_3::mapper::MapperPluginPre<HostState>),
}

/// A checked, compiled and linked plugin, ready to instantiate.
pub struct Plugin {
    pub name: String,
    pub metadata: PluginMetadata,
    /// SHA-256 of the component file, hex.
    pub sha256: String,
    pre: PluginPre,
}

impl Plugin {
    pub fn kind(&self) -> PluginKind {
        self.metadata.kind
    }
}

/// A plugin with one endpoint's or mapper's settings, grants and limits.
#[derive(Clone)]
pub struct Instance {
    engine: Engine,
    plugin: Arc<Plugin>,
    context: Arc<InstanceContext>,
}

/// One guarded call: a fresh store, instantiate, call, then turn whatever
/// happened into a value or a [`CallError`].
/// What the plugin returns is turned into the host's model by `$convert`.
/// `$pre` instantiates: a version's generated `...Pre` (the call gets its
/// bindings) or its `InstancePre` (the call gets the bare instance, to
/// look up a function typed with borrowed arguments).
macro_rules! guarded_call {
    ($self:ident, $pre:expr, $function:literal, |$bindings:ident, $store:ident| $call:expr, $convert:expr) => {{
        let mut $store = $self.new_store();
        let started = std::time::Instant::now();
        let limit = $self.context.limits.timeout;
        let outcome = tokio::time::timeout(limit + Duration::from_secs(1), async {
            let $bindings = $pre.instantiate_async(&mut $store).await?;
            Ok($call.await?.map($convert).map_err(Problem::from))
        })
        .await;
        $self.finish($function, &$store, outcome, started)
    }};
}

impl Instance {
    pub fn name(&self) -> &str {
        &self.context.name
    }

    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    pub fn context(&self) -> &Arc<InstanceContext> {
        &self.context
    }

    fn site(&self, function: &'static str) -> CallSite {
        CallSite { plugin: self.plugin.name.clone(), instance: self.context.name.clone(), function }
    }

    fn new_store(&self) -> Store<HostState> {
        let mut store = Store::new(&self.engine, HostState::new(self.context.clone()));
        store.limiter(|state| &mut state.limiter);
        let ticks = self.context.limits.timeout.as_millis() / EPOCH_TICK.as_millis() + 1;
        store.set_epoch_deadline(ticks as u64);
        store.epoch_deadline_trap();
        store
    }

    fn finish<T: OutputSize>(
        &self,
        function: &'static str,
        store: &Store<HostState>,
        outcome: Result<wasmtime::Result<Result<T, Problem>>, tokio::time::error::Elapsed>,
        started: std::time::Instant,
    ) -> Result<T, CallError> {
        let result = self.outcome_of(function, store, outcome);
        crate::metrics::observe_call(&self.plugin.name, function, started.elapsed(), result.as_ref().err().map(CallError::kind));
        result
    }

    fn outcome_of<T: OutputSize>(
        &self,
        function: &'static str,
        store: &Store<HostState>,
        outcome: Result<wasmtime::Result<Result<T, Problem>>, tokio::time::error::Elapsed>,
    ) -> Result<T, CallError> {
        let site = self.site(function);
        let state = store.data();
        // The capture is capped: a secret may be cut at its end.
        let output = crate::secrets::redacted_cut(&state.captured_output());
        if !output.is_empty() {
            tracing::warn!(plugin = %site.plugin, instance = %site.instance, function, "Plugin wrote to stdout/stderr: {output}");
        }
        self.report_dropped_logs(state);
        if let Some(exceeded) = state.usage.exceeded.clone().or_else(|| state.folder_usage.exceeded()) {
            return Err(CallError::OverBudget { site, exceeded });
        }
        self.call_result(site, state, &output, outcome).map_err(redact_call_error)
    }

    /// Says once per call how many log lines the instance's budget dropped.
    fn report_dropped_logs(&self, state: &HostState) {
        let budget = &self.context.log_budget;
        let (now, before) = (budget.dropped(), state.log_dropped_at_start);
        if now.lines > before.lines {
            tracing::warn!(
                plugin = %self.plugin.name,
                instance = %self.context.name,
                dropped_lines = now.lines - before.lines,
                dropped_bytes = now.bytes - before.bytes,
                "Plugin logged over its budget of {} lines and {} per minute; the rest was dropped (raise limits.log_lines or limits.log_bytes of `{}`)",
                budget.lines_per_minute(),
                bytesize::ByteSize::b(budget.bytes_per_minute()),
                self.context.name,
            );
        }
    }

    fn call_result<T: OutputSize>(
        &self,
        site: CallSite,
        state: &HostState,
        output: &str,
        outcome: Result<wasmtime::Result<Result<T, Problem>>, tokio::time::error::Elapsed>,
    ) -> Result<T, CallError> {
        let limits = self.context.limits;
        let result = match outcome {
            Err(_) => return Err(CallError::Timeout { site, limit: limits.timeout }),
            Ok(result) => result,
        };
        match result {
            Ok(Ok(value)) => {
                let size = value.output_size();
                if size > limits.max_output {
                    return Err(CallError::OutputTooLarge { site, size, limit: limits.max_output });
                }
                Ok(value)
            }
            Ok(Err(problem)) => Err(CallError::Problem { site, problem }),
            Err(error) => {
                if let Some(attempted) = state.limiter.exceeded {
                    return Err(CallError::MemoryLimit { site, attempted, limit: limits.memory });
                }
                match error.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => Err(CallError::Timeout { site, limit: limits.timeout }),
                    Some(trap) => {
                        let mut message = trap.to_string();
                        // A Rust guest prints its panic message before it traps.
                        if let Some(panic) = output.lines().find(|l| l.contains("panicked at")) {
                            let detail: Vec<&str> = output.lines().skip_while(|l| !l.contains("panicked at")).take(3).collect();
                            message = format!("{message}; {}", if detail.is_empty() { panic.to_owned() } else { detail.join(" ") });
                        }
                        Err(CallError::Trap { site, message })
                    }
                    None => {
                        let message = format!("{error:#}");
                        if message.contains("instance") && message.contains("limit") {
                            Err(CallError::Instantiate { site, message })
                        } else {
                            Err(CallError::Trap { site, message })
                        }
                    }
                }
            }
        }
    }

    fn wrong_kind(&self, function: &'static str, wanted: PluginKind) -> CallError {
        CallError::Problem {
            site: self.site(function),
            problem: Problem {
                code: "wrong-plugin-kind".into(),
                message: format!("plugin `{}` is a {}, not a {wanted}", self.plugin.name, self.plugin.kind()),
                hint: Some(format!(
                    "use a {wanted} plugin for `{}`: connectors go under [endpoints], mappers under [mappers]",
                    self.context.name
                )),
                retryable: false,
            },
        }
    }

    /// The entities the connector exposes.
    pub async fn describe(&self) -> Result<Vec<EntityDef>, CallError> {
        match &self.plugin.pre {
            PluginPre::Connector(pre) => guarded_call!(self, pre, "describe", |plugin, store| plugin
                .synchost_plugin_connector()
                .call_describe(&mut store), api::list),
            PluginPre::ConnectorV0_4(pre) => guarded_call!(self, pre, "describe", |plugin, store| plugin
                .synchost_plugin_connector()
                .call_describe(&mut store), api::list),
            PluginPre::ConnectorV0_3(pre) => guarded_call!(self, pre, "describe", |plugin, store| plugin
                .synchost_plugin_connector()
                .call_describe(&mut store), api::list),
            _ => Err(self.wrong_kind("describe", PluginKind::Connector)),
        }
    }

    /// What system answers, as the connector tells it apart (API 0.5 on;
    /// `None` from earlier plugins and from systems with nothing to tell).
    pub async fn identity(&self) -> Result<Option<String>, CallError> {
        match &self.plugin.pre {
            PluginPre::Connector(pre) => {
                guarded_call!(self, pre, "identity", |plugin, store| plugin.synchost_plugin_connector().call_identity(&mut store), |found| found)
            }
            PluginPre::ConnectorV0_4(_) | PluginPre::ConnectorV0_3(_) => Ok(None),
            _ => Err(self.wrong_kind("identity", PluginKind::Connector)),
        }
    }

    /// Checks reachability, credentials and permissions for what the pipelines
    /// need; one problem per thing missing.
    pub async fn probe(&self, needs: &[EntityNeed]) -> Result<Vec<Problem>, CallError> {
        match &self.plugin.pre {
            PluginPre::Connector(pre) => {
                let needs: Vec<_> = needs.iter().cloned().map(Into::into).collect();
                guarded_call!(self, pre, "probe", |plugin, store| plugin.synchost_plugin_connector().call_probe(&mut store, &needs), api::list)
            }
            PluginPre::ConnectorV0_4(pre) => {
                let needs: Vec<_> = needs.iter().cloned().map(Into::into).collect();
                guarded_call!(self, pre, "probe", |plugin, store| plugin.synchost_plugin_connector().call_probe(&mut store, &needs), api::list)
            }
            PluginPre::ConnectorV0_3(pre) => {
                let needs: Vec<_> = needs.iter().cloned().map(Into::into).collect();
                guarded_call!(self, pre, "probe", |plugin, store| plugin.synchost_plugin_connector().call_probe(&mut store, &needs), api::list)
            }
            _ => Err(self.wrong_kind("probe", PluginKind::Connector)),
        }
    }

    /// Records changed since `cursor`, at most `limit`.
    pub async fn read(&self, entity: &str, cursor: Option<&str>, limit: u32) -> Result<ReadBatch, CallError> {
        match &self.plugin.pre {
            PluginPre::Connector(pre) => guarded_call!(self, pre, "read", |plugin, store| plugin
                .synchost_plugin_connector()
                .call_read(&mut store, entity, cursor, limit), ReadBatch::from),
            PluginPre::ConnectorV0_4(pre) => guarded_call!(self, pre, "read", |plugin, store| plugin
                .synchost_plugin_connector()
                .call_read(&mut store, entity, cursor, limit), ReadBatch::from),
            PluginPre::ConnectorV0_3(pre) => guarded_call!(self, pre, "read", |plugin, store| plugin
                .synchost_plugin_connector()
                .call_read(&mut store, entity, cursor, limit), ReadBatch::from),
            _ => Err(self.wrong_kind("read", PluginKind::Connector)),
        }
    }

    /// The current state of records by id.
    pub async fn fetch(&self, entity: &str, ids: &[String]) -> Result<Vec<Record>, CallError> {
        match &self.plugin.pre {
            PluginPre::Connector(pre) => guarded_call!(self, pre, "fetch", |plugin, store| plugin
                .synchost_plugin_connector()
                .call_fetch(&mut store, entity, ids), v0_5::records_of),
            PluginPre::ConnectorV0_4(pre) => guarded_call!(self, pre, "fetch", |plugin, store| plugin
                .synchost_plugin_connector()
                .call_fetch(&mut store, entity, ids), v0_4::records_of),
            PluginPre::ConnectorV0_3(pre) => guarded_call!(self, pre, "fetch", |plugin, store| plugin
                .synchost_plugin_connector()
                .call_fetch(&mut store, entity, ids), api::list),
            _ => Err(self.wrong_kind("fetch", PluginKind::Connector)),
        }
    }

    /// Applies a batch of changes; one outcome per change.
    pub async fn write(&self, entity: &str, changes: &[Change]) -> Result<Vec<Outcome>, CallError> {
        let outcomes: Vec<Outcome> = match &self.plugin.pre {
            PluginPre::Connector(pre) => {
                let (fields, changes) = api::borrowed::changes(changes);
                guarded_call!(self, pre.instance_pre(), "write", |instance, store| v0_5::write(
                    instance, &mut store, entity, &fields, &changes
                ), api::list)
            }
            PluginPre::ConnectorV0_4(pre) => {
                let (fields, changes) = v0_4::changes(changes);
                guarded_call!(self, pre, "write", |plugin, store| plugin
                    .synchost_plugin_connector()
                    .call_write(&mut store, entity, &fields, &changes), api::list)
            }
            PluginPre::ConnectorV0_3(pre) => {
                let changes = v0_3::changes(changes);
                guarded_call!(self, pre, "write", |plugin, store| plugin
                    .synchost_plugin_connector()
                    .call_write(&mut store, entity, &changes), api::list)
            }
            _ => Err(self.wrong_kind("write", PluginKind::Connector)),
        }?;
        if outcomes.len() != changes.len() {
            return Err(self.broken_contract("write", changes.len(), outcomes.len()));
        }
        Ok(outcomes)
    }

    /// Maps a batch of records and checks each mapped record against the
    /// mapper's rules; one result per record. A plugin of API 0.4 on does
    /// both in one call; one of API 0.3 is called to map, then to validate.
    pub async fn map_and_validate(&self, direction: Direction, records: &[Record]) -> Result<Vec<Mapped>, CallError> {
        let mapped: Vec<Mapped> = match &self.plugin.pre {
            PluginPre::Mapper(pre) => {
                let page = api::borrowed::page(records);
                guarded_call!(self, pre.instance_pre(), "map-records", |instance, store| v0_5::map_records(
                    instance, &mut store, direction, &page
                ), api::list)
            }
            PluginPre::MapperV0_4(pre) => {
                let page = v0_4::page_of(records);
                guarded_call!(self, pre, "map-records", |plugin, store| plugin
                    .synchost_plugin_mapper()
                    .call_map_records(&mut store, direction.into(), &page), api::list)
            }
            PluginPre::MapperV0_3(pre) => {
                let old: Vec<_> = records.iter().cloned().map(Into::into).collect();
                let mut mapped: Vec<Mapped> = guarded_call!(self, pre, "map-records", |plugin, store| plugin
                    .synchost_plugin_mapper()
                    .call_map_records(&mut store, direction.into(), &old), api::list)?;
                if mapped.len() == records.len() {
                    self.validate_v0_3(pre, direction, &mut mapped).await?;
                }
                Ok(mapped)
            }
            _ => Err(self.wrong_kind("map-records", PluginKind::Mapper)),
        }?;
        if mapped.len() != records.len() {
            return Err(self.broken_contract("map-records", records.len(), mapped.len()));
        }
        Ok(mapped)
    }

    /// API 0.3's second call: the violations of the records mapped, which
    /// turn those records invalid.
    async fn validate_v0_3(&self, pre: &v0_3::mapper::MapperPluginPre<HostState>, direction: Direction, mapped: &mut [Mapped]) -> Result<(), CallError> {
        let valid: Vec<_> = mapped
            .iter()
            .filter_map(|m| match m {
                Mapped::Ok(record) => Some(record.clone().into()),
                Mapped::Invalid(_) => None,
            })
            .collect();
        if valid.is_empty() {
            return Ok(());
        }
        let found: Vec<Vec<Violation>> = guarded_call!(self, pre, "validate-records", |plugin, store| plugin
            .synchost_plugin_mapper()
            .call_validate_records(&mut store, direction.into(), &valid), |lists: Vec<Vec<_>>| lists
            .into_iter()
            .map(api::list)
            .collect())?;
        if found.len() != valid.len() {
            return Err(self.broken_contract("validate-records", valid.len(), found.len()));
        }
        let mut found = found.into_iter();
        for result in mapped.iter_mut().filter(|m| matches!(m, Mapped::Ok(_))) {
            let violations = found.next().unwrap_or_default();
            if !violations.is_empty() {
                *result = Mapped::Invalid(violations);
            }
        }
        Ok(())
    }

    fn broken_contract(&self, function: &'static str, expected: usize, got: usize) -> CallError {
        CallError::Problem {
            site: self.site(function),
            problem: Problem {
                code: "broken-contract".into(),
                message: format!("the plugin returned {got} results for {expected} records"),
                hint: Some(format!("this is a bug in plugin `{}`: report it to its vendor", self.plugin.name)),
                retryable: false,
            },
        }
    }
}
