//! The plugin traits and the glue that exports them as the WIT worlds.

use std::marker::PhantomData;

use crate::bindings::connector::exports::synchost::plugin::connector as wit_connector;
use crate::bindings::mapper::exports::synchost::plugin::mapper as wit_mapper;
use crate::bindings::connector::synchost::plugin::types::Page;
use crate::page;
use crate::{
    Change, Context, Direction, EntityDef, EntityNeed, Error, Mapped, Outcome, Problem, ReadBatch, Record,
    Violation,
};

/// A connector to one business system.
///
/// The host creates a fresh instance for every call (each call runs in a new
/// sandbox), so [`Connector::new`] runs once per call: keep it cheap, and keep
/// no state between calls except in the system itself or the cursor.
pub trait Connector: Sized {
    /// Builds the connector from the instance's settings.
    fn new(context: &Context) -> Result<Self, Error>;

    /// The entities this connector exposes under its settings.
    fn describe(&self) -> Result<Vec<EntityDef>, Error>;

    /// Up to `limit` records changed since `cursor` (from the start when `None`),
    /// in a stable order, with the cursor to continue from.
    fn read(&mut self, entity: &str, cursor: Option<String>, limit: u32) -> Result<ReadBatch, Error>;

    /// The current state of the records with these ids; unknown ids are left out.
    fn fetch(&mut self, entity: &str, ids: Vec<String>) -> Result<Vec<Record>, Error>;

    /// How many records a [`Connector::read`] from the start returns in all,
    /// when the system can tell cheaply (a `count(*)`, a total in the first
    /// answer): the host shows the time left of a big first sync. Called
    /// before the first page of a read from the start only. The default: unknown.
    fn count(&mut self, entity: &str) -> Result<Option<u64>, Error> {
        let _ = entity;
        Ok(None)
    }

    /// What system answers, as this connector can tell it apart from others
    /// at the same address (an instance's id, the creation time of the
    /// project it is scoped to ...): the host records it at the first sync
    /// and stops the endpoint's pipelines when another system answers. The
    /// default: nothing tells it apart (the host still compares addresses).
    fn identity(&mut self) -> Result<Option<String>, Error> {
        Ok(None)
    }

    /// Applies a batch of changes and returns one [`Outcome`] per change, in order.
    fn write(&mut self, entity: &str, changes: Vec<Change>) -> Result<Vec<Outcome>, Error>;

    /// Checks that the system is reachable and the account may do what `needs`
    /// asks; returns one problem per missing permission. The default checks the
    /// needs against [`Connector::describe`]: each entity exists, and is
    /// writable where a pipeline writes to it. Connectors to systems with their
    /// own permission model override it to ask the system.
    fn probe(&mut self, needs: &[EntityNeed]) -> Result<Vec<Problem>, Error> {
        let entities = self.describe()?;
        Ok(needs
            .iter()
            .filter_map(|need| match entities.iter().find(|e| e.name == need.entity) {
                None => Some(Problem {
                    code: "unknown-entity".into(),
                    message: format!("entity `{}` is not exposed by this endpoint", need.entity),
                    hint: Some(format!(
                        "use one of: {}",
                        entities.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
                    )),
                    retryable: false,
                }),
                Some(entity) if need.write && !entity.writable => Some(Problem {
                    code: "read-only".into(),
                    message: format!("entity `{}` is read-only here but a pipeline writes to it", need.entity),
                    hint: Some("make the pipeline one-way (`create` and field `direction`), or make the entity writable in the endpoint's settings".into()),
                    retryable: false,
                }),
                Some(_) => None,
            })
            .collect())
    }
}

/// A mapper with field-mapping and validation rules.
pub trait Mapper: Sized {
    /// Builds the mapper from the instance's settings.
    fn new(context: &Context) -> Result<Self, Error>;

    /// Maps a batch of records; one [`Mapped`] per record, in order.
    fn map(&self, direction: Direction, records: Vec<Record>) -> Result<Vec<Mapped>, Error>;

    /// Every rule each record breaks; one list per record, in order.
    fn validate(&self, direction: Direction, records: &[Record]) -> Result<Vec<Vec<Violation>>, Error>;
}

fn instance<T>(new: fn(&Context) -> Result<T, Error>) -> Result<T, Problem> {
    let context = Context::current().map_err(Error::into_problem)?;
    new(&context).map_err(Error::into_problem)
}

/// Exports a [`Connector`] as the WIT `connector` interface; used by [`export_connector!`].
#[doc(hidden)]
pub struct ConnectorExport<T>(PhantomData<T>);

impl<T: Connector> wit_connector::Guest for ConnectorExport<T> {
    fn describe() -> Result<Vec<EntityDef>, Problem> {
        instance(T::new)?.describe().map_err(Error::into_problem)
    }

    fn read(entity: String, cursor: Option<String>, limit: u32) -> Result<wit_connector::ReadBatch, Problem> {
        let mut connector = instance(T::new)?;
        // Counted once, on the first page of a read from the start.
        let total = if cursor.is_none() { connector.count(&entity).map_err(Error::into_problem)? } else { None };
        let batch = connector.read(&entity, cursor, limit).map_err(Error::into_problem)?;
        Ok(page::read_batch(batch, total))
    }

    fn fetch(entity: String, ids: Vec<String>) -> Result<Page, Problem> {
        instance(T::new)?.fetch(&entity, ids).map(page::page_of).map_err(Error::into_problem)
    }

    fn write(entity: String, fields: Vec<String>, changes: Vec<wit_connector::Change>) -> Result<Vec<Outcome>, Problem> {
        instance(T::new)?.write(&entity, page::changes_of(&fields, changes)).map_err(Error::into_problem)
    }

    fn probe(needs: Vec<EntityNeed>) -> Result<Vec<Problem>, Problem> {
        instance(T::new)?.probe(&needs).map_err(Error::into_problem)
    }

    fn identity() -> Result<Option<String>, Problem> {
        instance(T::new)?.identity().map_err(Error::into_problem)
    }
}

/// Exports a [`Mapper`] as the WIT `mapper` interface; used by [`export_mapper!`].
#[doc(hidden)]
pub struct MapperExport<T>(PhantomData<T>);

impl<T: Mapper> wit_mapper::Guest for MapperExport<T> {
    fn map_records(direction: Direction, records: Page) -> Result<Vec<Mapped>, Problem> {
        let mapper = instance(T::new)?;
        let records = page::records_of(records);
        let count = records.len();
        let mut mapped = mapper.map(direction, records).map_err(Error::into_problem)?;
        if mapped.len() != count {
            // The host reports the broken contract with both counts.
            return Ok(mapped);
        }
        // The records mapped are checked against the rules in the same call:
        // taken out of their slots, checked, and put back.
        let mut slots: Vec<usize> = Vec::new();
        let mut valid: Vec<Record> = Vec::new();
        for (slot, result) in mapped.iter_mut().enumerate() {
            if matches!(result, Mapped::Ok(_))
                && let Mapped::Ok(record) = std::mem::replace(result, Mapped::Invalid(Vec::new()))
            {
                slots.push(slot);
                valid.push(record);
            }
        }
        if valid.is_empty() {
            return Ok(mapped);
        }
        let found = mapper.validate(direction, &valid).map_err(Error::into_problem)?;
        if found.len() != valid.len() {
            return Err(Error::new(
                "broken-contract",
                format!("validate returned {} results for {} records", found.len(), valid.len()),
            )
            .into_problem());
        }
        for ((slot, record), violations) in slots.into_iter().zip(valid).zip(found) {
            mapped[slot] = if violations.is_empty() { Mapped::Ok(record) } else { Mapped::Invalid(violations) };
        }
        Ok(mapped)
    }
}

/// Copies a string into a fixed-size array, for the custom sections.
#[doc(hidden)]
pub const fn __section_bytes<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    assert!(bytes.len() == N);
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Embeds the plugin's API version and kind as custom sections, so the host can
/// check them before it compiles or instantiates the component.
#[doc(hidden)]
#[macro_export]
macro_rules! __embed_plugin_metadata {
    ($kind:literal, $version:expr) => {
        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "synchost:api-version")]
        #[used]
        static __SYNCHOST_API_VERSION: [u8; $version.len()] = $crate::__section_bytes($version);

        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "synchost:plugin-kind")]
        #[used]
        static __SYNCHOST_PLUGIN_KIND: [u8; $kind.len()] = $crate::__section_bytes($kind);
    };
}

/// Exports a type implementing [`Connector`] as this crate's plugin.
///
/// Call it once, at the crate root of a `cdylib` built for `wasm32-wasip2`.
/// In a native build it expands to nothing, so the same crate can be unit-tested.
#[macro_export]
macro_rules! export_connector {
    ($ty:ty) => {
        $crate::export_connector!($ty, api_version = $crate::API_VERSION);
    };
    ($ty:ty, api_version = $version:expr) => {
        #[cfg(target_arch = "wasm32")]
        type __SynchostConnectorExport = $crate::ConnectorExport<$ty>;
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::connector::__export_connector_world!(__SynchostConnectorExport with_types_in $crate::bindings::connector);
        $crate::__embed_plugin_metadata!("connector", $version);
    };
}

/// Exports a type implementing [`Mapper`] as this crate's plugin.
///
/// Call it once, at the crate root of a `cdylib` built for `wasm32-wasip2`.
/// In a native build it expands to nothing, so the same crate can be unit-tested.
#[macro_export]
macro_rules! export_mapper {
    ($ty:ty) => {
        $crate::export_mapper!($ty, api_version = $crate::API_VERSION);
    };
    ($ty:ty, api_version = $version:expr) => {
        #[cfg(target_arch = "wasm32")]
        type __SynchostMapperExport = $crate::MapperExport<$ty>;
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::mapper::__export_mapper_world!(__SynchostMapperExport with_types_in $crate::bindings::mapper);
        $crate::__embed_plugin_metadata!("mapper", $version);
    };
}
