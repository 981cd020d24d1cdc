//! The plugin API versions this host runs, one module each: the current
//! one ([`v0_5`], `schemas/wit/plugin.wit`) and each frozen earlier one
//! ([`v0_4`], [`v0_3`], `schemas/wit/since_vX.Y.Z`). Each module holds its
//! version's generated bindings and the conversions between its types and
//! the host's model (`crate::model`), so the engine sees none of them;
//! [`borrowed`] holds views of the model that the current version's calls
//! lower without copying the values first.
//!
//! The host services are implemented once, for the current version (see
//! `services`); an earlier version's imports convert and delegate to them
//! ([`delegate_imports`]), so a grant, a budget or a limit holds the same
//! whichever version a plugin speaks.

/// A version's generated bindings: `connector` (the `connector-plugin`
/// world) and `mapper` (the `mapper-plugin` world, which shares the
/// connector's types, log and context), from the WIT file at `$path`.
macro_rules! world_bindings {
    ($path:literal) => {
        /// The `connector-plugin` world.
        pub mod connector {
            wasmtime::component::bindgen!({
                world: "connector-plugin",
                path: $path,
                imports: { default: async | trappable },
                exports: { default: async },
                additional_derives: [PartialEq],
            });
        }

        /// The `mapper-plugin` world.
        pub mod mapper {
            wasmtime::component::bindgen!({
                world: "mapper-plugin",
                path: $path,
                imports: { default: async | trappable },
                exports: { default: async },
                with: {
                    "synchost:plugin/types": super::connector::synchost::plugin::types,
                    "synchost:plugin/log": super::connector::synchost::plugin::log,
                    "synchost:plugin/context": super::connector::synchost::plugin::context,
                },
            });
        }
    };
}

/// `From` both ways between enums whose variants have the same names and payloads.
macro_rules! same_variants {
    ($a:ident :: $ty_a:ident, $b:ident :: $ty_b:ident; tuple: $($tuple:ident),*; unit: $($unit:ident),*) => {
        impl From<$a::$ty_a> for $b::$ty_b {
            fn from(value: $a::$ty_a) -> Self {
                match value {
                    $($a::$ty_a::$tuple(inner) => $b::$ty_b::$tuple(inner),)*
                    $($a::$ty_a::$unit => $b::$ty_b::$unit,)*
                }
            }
        }
        impl From<$b::$ty_b> for $a::$ty_a {
            fn from(value: $b::$ty_b) -> Self {
                match value {
                    $($b::$ty_b::$tuple(inner) => $a::$ty_a::$tuple(inner),)*
                    $($b::$ty_b::$unit => $a::$ty_a::$unit,)*
                }
            }
        }
    };
}

/// `From` both ways between structs with the same fields, each converted with `into`.
macro_rules! same_fields {
    ($a:ident :: $ty_a:ident, $b:ident :: $ty_b:ident; $($field:ident),*) => {
        impl From<$a::$ty_a> for $b::$ty_b {
            fn from(value: $a::$ty_a) -> Self {
                $b::$ty_b { $($field: value.$field.into(),)* }
            }
        }
        impl From<$b::$ty_b> for $a::$ty_a {
            fn from(value: $b::$ty_b) -> Self {
                $a::$ty_a { $($field: value.$field.into(),)* }
            }
        }
    };
}

/// A list converted element by element (a blanket `Into` cannot cover it).
pub fn list<A: Into<B>, B>(values: Vec<A>) -> Vec<B> {
    values.into_iter().map(Into::into).collect()
}

/// The conversions every version has, between its types and the model's.
macro_rules! model_conversions {
    ($v:ident) => {
        same_variants!($v::Value, model::Value; tuple: Boolean, Integer, Float, Decimal, Text, Date, Timestamp, Bytes, Json; unit: Null);
        same_variants!($v::FieldType, model::FieldType; tuple: ; unit: Boolean, Integer, Float, Decimal, Text, Date, Timestamp, Bytes, Json);
        same_variants!($v::ChangeKind, model::ChangeKind; tuple: ; unit: Upsert, Delete);
        same_variants!($v::Direction, model::Direction; tuple: ; unit: LeftToRight, RightToLeft);
        same_fields!($v::Problem, model::Problem; code, message, hint, retryable);
        same_fields!($v::Field, model::Field; name, value);
        same_fields!($v::Applied, model::Applied; id, version);
        same_fields!($v::EntityNeed, model::EntityNeed; entity, read, write);

        impl From<$v::Record> for model::Record {
            fn from(r: $v::Record) -> Self {
                model::Record { id: r.id, version: r.version, deleted: r.deleted, fields: list(r.fields), born: r.born }
            }
        }
        impl From<model::Record> for $v::Record {
            fn from(r: model::Record) -> Self {
                $v::Record { id: r.id, version: r.version, deleted: r.deleted, fields: list(r.fields), born: r.born }
            }
        }
        impl From<$v::FieldDef> for model::FieldDef {
            fn from(f: $v::FieldDef) -> Self {
                model::FieldDef { name: f.name, type_: f.type_.into(), nullable: f.nullable, read_only: f.read_only }
            }
        }
        impl From<$v::EntityDef> for model::EntityDef {
            fn from(e: $v::EntityDef) -> Self {
                model::EntityDef {
                    name: e.name,
                    key: e.key,
                    fields: list(e.fields),
                    change_feed: e.change_feed,
                    soft_delete: e.soft_delete,
                    writable: e.writable,
                    finds_by_origin: e.finds_by_origin,
                }
            }
        }
        impl From<$v::Violation> for model::Violation {
            fn from(v: $v::Violation) -> Self {
                model::Violation { field: v.field, message: v.message, hint: v.hint }
            }
        }
        impl From<$v::Mapped> for model::Mapped {
            fn from(m: $v::Mapped) -> Self {
                match m {
                    $v::Mapped::Ok(record) => model::Mapped::Ok(record.into()),
                    $v::Mapped::Invalid(violations) => model::Mapped::Invalid(list(violations)),
                }
            }
        }
        impl From<$v::Outcome> for model::Outcome {
            fn from(o: $v::Outcome) -> Self {
                match o {
                    $v::Outcome::Applied(applied) => model::Outcome::Applied(applied.into()),
                    $v::Outcome::Rejected(problem) => model::Outcome::Rejected(problem.into()),
                    $v::Outcome::Conflict(record) => model::Outcome::Conflict(record.into()),
                }
            }
        }
    };
}

/// The field names of records or changes, in order of first use: most
/// batches have one layout, so a record's fields are looked up from where
/// the last one was found.
pub fn layout<'a>(field_lists: impl Iterator<Item = &'a [model::Field]>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for fields in field_lists {
        for (i, field) in fields.iter().enumerate() {
            if names.get(i).is_some_and(|n| *n == field.name) || names.iter().any(|n| *n == field.name) {
                continue;
            }
            names.push(field.name.clone());
        }
    }
    names
}

/// One record's values in the slots of `names`, each made with `value`
/// (a copy in a version's own type, or a borrowed view).
pub fn slots<'a, V: Clone>(names: &[String], fields: &'a [model::Field], value: impl Fn(&'a model::Value) -> V) -> Vec<Option<V>> {
    let mut values: Vec<Option<V>> = vec![None; names.len()];
    for (i, field) in fields.iter().enumerate() {
        let slot = if names.get(i).is_some_and(|n| *n == field.name) { Some(i) } else { names.iter().position(|n| *n == field.name) };
        if let Some(slot) = slot {
            values[slot] = Some(value(&field.value));
        }
    }
    values
}

/// Pages (0.4 on): records to and from a version's `page`, and its read batches.
macro_rules! paged_conversions {
    ($v:ident) => {
        impl From<$v::ReadBatch> for model::ReadBatch {
            fn from(b: $v::ReadBatch) -> Self {
                model::ReadBatch { records: records_of(b.records), cursor: b.cursor, has_more: b.has_more, total: b.total }
            }
        }

        /// The records of a page, each with its fields named.
        pub fn records_of(page: $v::Page) -> Vec<model::Record> {
            let names = page.fields;
            page.rows
                .into_iter()
                .map(|row| model::Record {
                    fields: names
                        .iter()
                        .zip(row.values)
                        .filter_map(|(name, value)| value.map(|value| model::Field { name: name.clone(), value: value.into() }))
                        .collect(),
                    id: row.id,
                    version: row.version,
                    deleted: row.deleted,
                    born: row.born,
                })
                .collect()
        }
    };
}

/// `From` between the same enum of two versions.
macro_rules! convert_variants {
    ($from:path => $to:path; tuple: $($tuple:ident),*; unit: $($unit:ident),*) => {
        impl From<$from> for $to {
            fn from(value: $from) -> Self {
                type A = $from;
                type B = $to;
                match value {
                    $(A::$tuple(inner) => B::$tuple(inner),)*
                    $(A::$unit => B::$unit,)*
                }
            }
        }
    };
}

/// A frozen version's imports (`old`, in scope where it is used: its
/// `synchost::plugin` module), each converting its arguments to the current
/// version's types, calling the one implementation in `services`, and
/// converting the answer back. The imports have kept their shape since 0.3.
macro_rules! delegate_imports {
    () => {
        use super::v0_5::connector::synchost::plugin as new;

        convert_variants!(old::types::Value => new::types::Value; tuple: Boolean, Integer, Float, Decimal, Text, Date, Timestamp, Bytes, Json; unit: Null);
        convert_variants!(new::types::Value => old::types::Value; tuple: Boolean, Integer, Float, Decimal, Text, Date, Timestamp, Bytes, Json; unit: Null);
        convert_variants!(old::sql::BatchMode => new::sql::BatchMode; tuple: ; unit: AllOrNothing, EachAlone);
        convert_variants!(new::sql::Dialect => old::sql::Dialect; tuple: ; unit: Sqlite, Postgres);
        convert_variants!(old::log::Level => new::log::Level; tuple: ; unit: Trace, Debug, Info, Warn, Error);

        impl From<new::types::Problem> for old::types::Problem {
            fn from(p: new::types::Problem) -> Self {
                old::types::Problem { code: p.code, message: p.message, hint: p.hint, retryable: p.retryable }
            }
        }

        fn values<A: Into<B>, B>(list: Vec<A>) -> Vec<B> {
            list.into_iter().map(Into::into).collect()
        }

        fn rows(list: Vec<Vec<new::types::Value>>) -> Vec<Vec<old::types::Value>> {
            list.into_iter().map(values).collect()
        }

        impl old::types::Host for HostState {}

        impl old::log::Host for HostState {
            async fn log(&mut self, level: old::log::Level, message: String) -> wasmtime::Result<()> {
                new::log::Host::log(self, level.into(), message).await
            }
        }

        impl old::context::Host for HostState {
            async fn instance_name(&mut self) -> wasmtime::Result<String> {
                new::context::Host::instance_name(self).await
            }

            async fn settings(&mut self) -> wasmtime::Result<String> {
                new::context::Host::settings(self).await
            }
        }

        impl old::sql::Host for HostState {
            async fn connection_dialect(&mut self, connection: String) -> wasmtime::Result<Result<old::sql::Dialect, old::types::Problem>> {
                Ok(new::sql::Host::connection_dialect(self, connection).await?.map(Into::into).map_err(Into::into))
            }

            async fn query(
                &mut self,
                connection: String,
                statement: String,
                params: Vec<old::types::Value>,
            ) -> wasmtime::Result<Result<old::sql::Rows, old::types::Problem>> {
                let result = new::sql::Host::query(self, connection, statement, values(params)).await?;
                Ok(result.map(|r| old::sql::Rows { columns: r.columns, rows: rows(r.rows) }).map_err(Into::into))
            }

            async fn execute(
                &mut self,
                connection: String,
                statements: Vec<old::sql::Statement>,
                mode: old::sql::BatchMode,
            ) -> wasmtime::Result<Result<Vec<Result<old::sql::Executed, old::types::Problem>>, old::types::Problem>> {
                let statements = statements.into_iter().map(|s| new::sql::Statement { sql: s.sql, params: values(s.params) }).collect();
                let result = new::sql::Host::execute(self, connection, statements, mode.into()).await?;
                Ok(result
                    .map(|each| {
                        each.into_iter()
                            .map(|r| r.map(|e| old::sql::Executed { rows_affected: e.rows_affected, returned: rows(e.returned) }).map_err(Into::into))
                            .collect()
                    })
                    .map_err(Into::into))
            }
        }

        impl old::http::Host for HostState {
            async fn send(&mut self, request: old::http::Request) -> wasmtime::Result<Result<old::http::Response, old::types::Problem>> {
                let request = new::http::Request {
                    method: request.method,
                    url: request.url,
                    headers: request.headers,
                    body: request.body,
                    timeout_ms: request.timeout_ms,
                };
                let result = new::http::Host::send(self, request).await?;
                Ok(result.map(|r| old::http::Response { status: r.status, headers: r.headers, body: r.body }).map_err(Into::into))
            }
        }
    };
}

pub mod borrowed;
pub mod v0_3;
pub mod v0_4;
pub mod v0_5;

use crate::model;

/// The host services' side of the current API: what plugins send and get back.
pub use v0_5::connector::synchost::plugin::http as wit_http;
pub use v0_5::connector::synchost::plugin::sql as wit_sql;
pub use v0_5::connector::synchost::plugin::types::{Problem, Value};
