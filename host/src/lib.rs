//! synchost: a plugin-driven integration host. It keeps business systems in
//! sync through sandboxed WebAssembly plugins: connectors to one system each,
//! and mappers with field-mapping and validation rules.
//!
//! # Layout
//! - [`config`]: the config file (`synchost.toml`): types, loading, every error with its place and fix.
//! - [`runtime`]: the wasmtime sandbox: plugins, instances, guarded calls, the API version check.
//! - [`services`]: what plugins may be granted (SQL connections, HTTP origins, folders, log), their budgets, and the per-call state.
//! - [`secrets`]: the one redaction function every log line, message and stored text goes through.
//! - [`packages`]: plugin packages: manifest, signature, the store of installed versions.
//! - [`catalog`]: a config turned into loaded plugins and runnable instances.
//! - [`state`]: durable state in SQLite: links, base values, cursors, history, queues, health.
//! - [`model`]: the engine's own records, values, changes and outcomes; every plugin API version converts to them.
//! - [`engine`]: one run of a pipeline: read, diff against base, resolve, map, validate, write, commit.
//! - [`daemon`]: `synchost run`: pipelines on their schedules, backoff, resubmission, heartbeat, hot reload.
//! - [`replicas`]: two hosts that meet only through messages: the format, acknowledgements, roles, transports.
//! - [`bundled`]: the plugins built into the binary.
//! - [`schema`]: the config's JSON Schema.
//! - [`admin`]: what an admin sees and does, shared by the command line and the admin API.
//! - [`process`]: what the process sets for itself before its threads start (memory behaviour).
//! - [`logging`]: the process's log, and verbose tracing of one pipeline on demand.
//! - [`metrics`]: what the process counts as it goes (runs, records, plugin calls), for `/metrics`.
//! - [`http`]: the admin HTTP API `synchost run` serves: users and roles, metrics, probes.
//! - [`cli`]: the `synchost` command line.

pub mod admin;
pub mod bundled;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod packages;
pub mod process;
pub mod replicas;
pub mod runtime;
pub mod schema;
pub mod secrets;
pub mod services;
pub mod state;
