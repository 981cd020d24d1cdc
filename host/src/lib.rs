//! synchost: a plugin-driven integration host. It keeps business systems in
//! sync through sandboxed WebAssembly plugins: connectors to one system each,
//! and mappers with field-mapping and validation rules.
//!
//! # Layout
//! - [`config`]: the config file (`synchost.toml`): types, loading, every error with its place and fix.
//! - [`runtime`]: the wasmtime sandbox: plugins, instances, guarded calls, the API version check.
//! - [`services`]: what plugins may be granted (SQL connections, HTTP origins, log) and the per-call state.
//! - [`catalog`]: a config turned into loaded plugins and runnable instances.
//! - [`bundled`]: the plugins built into the binary.
//! - [`schema`]: the config's JSON Schema.
//! - [`cli`]: the `synchost` command line.

pub mod bundled;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod runtime;
pub mod schema;
pub mod services;
