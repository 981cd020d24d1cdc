//! Write synchost plugins in plain Rust.
//!
//! A plugin is a WebAssembly component that the synchost host runs in a sandbox.
//! It is either a **connector** to one business system (it describes its
//! entities, reads changes, fetches records and writes batches of changes) or a
//! **mapper** (it maps records between two systems and validates them).
//!
//! Implement [`Connector`] or [`Mapper`] for a type, then call
//! [`export_connector!`] or [`export_mapper!`] once. Build with
//! `cargo build --target wasm32-wasip2 --release`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the plugin.
//!
//! ```
//! use synchost_plugin_sdk::prelude::*;
//!
//! /// Upper-cases every text field.
//! struct Shout;
//!
//! impl Mapper for Shout {
//!     fn new(_context: &Context) -> Result<Self, Error> {
//!         Ok(Shout)
//!     }
//!
//!     fn map(&self, _direction: Direction, records: Vec<Record>) -> Result<Vec<Mapped>, Error> {
//!         Ok(records
//!             .into_iter()
//!             .map(|mut record| {
//!                 for field in &mut record.fields {
//!                     if let Value::Text(text) = &field.value {
//!                         field.value = Value::Text(text.to_uppercase());
//!                     }
//!                 }
//!                 Mapped::Ok(record)
//!             })
//!             .collect())
//!     }
//!
//!     fn validate(&self, _direction: Direction, records: &[Record]) -> Result<Vec<Vec<Violation>>, Error> {
//!         Ok(records.iter().map(|_| Vec::new()).collect())
//!     }
//! }
//!
//! export_mapper!(Shout);
//! # fn main() {}
//! ```
//!
//! # Layout
//! - [`bindings`]: the types and functions generated from the WIT API in `schemas/wit`.
//! - `page`: [`ReadBatch`] and [`Change`], and how batches cross the boundary as pages.
//! - `record`: helpers on [`Record`], [`Value`] and [`Field`]: typed getters, builders.
//! - `error`: [`Error`], which becomes a [`Problem`] the host shows to the admin.
//! - [`host`]: small typed wrappers over the host services (log, settings, sql, http).
//! - `export`: the [`Connector`] and [`Mapper`] traits and their export macros.
//! - [`testing`]: a native harness to unit-test plugin logic without the host.
//! - [`version`]: record versions: a change time and a digest of the values.
//! - [`allocator`]: the allocator plugins run with: freed small blocks kept
//!   by size for the next allocation (installed on wasm32 only; a plugin
//!   cannot set a `#[global_allocator]` of its own).

#![deny(missing_docs)]

// Lets the generated export macros name this crate the same way inside and outside it.
extern crate self as synchost_plugin_sdk;

pub mod allocator;

#[cfg(target_family = "wasm")]
#[global_allocator]
static ALLOCATOR: allocator::KeepingAllocator = allocator::KeepingAllocator::new();

pub mod bindings;
mod error;
mod export;
pub mod host;
mod page;
mod record;
pub mod testing;
pub mod version;

pub use error::Error;
pub use export::{Connector, ConnectorExport, Mapper, MapperExport, __section_bytes};
pub use host::Context;

/// The plugin API version this SDK builds plugins against.
///
/// The export macros embed it in the component's `synchost:api-version`
/// custom section, where the host reads it before instantiating the plugin.
pub const API_VERSION: &str = "0.5.0";

/// Shared WIT types: values, records, problems, entity descriptions.
pub use bindings::connector::synchost::plugin::types::{
    EntityDef, Field, FieldDef, FieldType, Problem, Record, Value,
};
/// Connector types: changes' kinds and outcomes, and what the host needs.
pub use bindings::connector::exports::synchost::plugin::connector::{Applied, ChangeKind, EntityNeed, Outcome};
/// Read batches and changes, each record with its named fields.
pub use page::{Change, ReadBatch};
/// Mapper types: direction, mapping results and rule violations.
pub use bindings::mapper::exports::synchost::plugin::mapper::{Direction, Mapped, Violation};

/// Everything a plugin usually needs, in one import.
pub mod prelude {
    pub use crate::host::{log, Context};
    pub use crate::{
        export_connector, export_mapper, Applied, Change, ChangeKind, Connector, Direction,
        EntityDef, EntityNeed, Error, Field, FieldDef, FieldType, Mapped, Mapper, Outcome, Problem, ReadBatch,
        Record, Value, Violation,
    };
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}
