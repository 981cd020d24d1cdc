//! Plugin API 0.3 (frozen): records carry their field names; mapping and
//! validation are two calls. Besides the conversions to the model, the 0.3
//! imports are here: each converts its arguments to the current version's
//! types, calls the one implementation in `services`, and converts the
//! answer back, so a grant, a budget or a limit holds the same whichever
//! version a plugin speaks.

use super::list;
use crate::model;
use crate::services::HostState;

/// The `connector-plugin` world.
pub mod connector {
    wasmtime::component::bindgen!({
        world: "connector-plugin",
        path: "../schemas/wit/since_v0.3.0/plugin.wit",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// The `mapper-plugin` world.
pub mod mapper {
    wasmtime::component::bindgen!({
        world: "mapper-plugin",
        path: "../schemas/wit/since_v0.3.0/plugin.wit",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "synchost:plugin/types": super::connector::synchost::plugin::types,
            "synchost:plugin/log": super::connector::synchost::plugin::log,
            "synchost:plugin/context": super::connector::synchost::plugin::context,
        },
    });
}

mod v3 {
    pub use super::connector::exports::synchost::plugin::connector::{Applied, Change, ChangeKind, EntityNeed, Outcome, ReadBatch};
    pub use super::connector::synchost::plugin::types::{EntityDef, Field, FieldDef, FieldType, Problem, Record, Value};
    pub use super::mapper::exports::synchost::plugin::mapper::{Direction, Mapped, Violation};
}

model_conversions!(v3);

impl From<v3::ReadBatch> for model::ReadBatch {
    fn from(b: v3::ReadBatch) -> Self {
        model::ReadBatch { records: list(b.records), cursor: b.cursor, has_more: b.has_more, total: None }
    }
}

/// API 0.3 changes carry their field names.
pub fn changes(changes: &[model::Change]) -> Vec<v3::Change> {
    changes
        .iter()
        .map(|c| v3::Change {
            origin: c.origin.clone(),
            target_id: c.target_id.clone(),
            expected_version: c.expected_version.clone(),
            kind: c.kind.into(),
            fields: c.fields.iter().cloned().map(Into::into).collect(),
            repeated: c.repeated,
        })
        .collect()
}


// The 0.3 imports, delegating to the current services.

use self::connector::synchost::plugin as old;
use super::v0_4::connector::synchost::plugin as new;

/// `From` between the same enum of two versions.
macro_rules! same_variants {
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

same_variants!(old::types::Value => new::types::Value; tuple: Boolean, Integer, Float, Decimal, Text, Date, Timestamp, Bytes, Json; unit: Null);
same_variants!(new::types::Value => old::types::Value; tuple: Boolean, Integer, Float, Decimal, Text, Date, Timestamp, Bytes, Json; unit: Null);
same_variants!(old::sql::BatchMode => new::sql::BatchMode; tuple: ; unit: AllOrNothing, EachAlone);
same_variants!(new::sql::Dialect => old::sql::Dialect; tuple: ; unit: Sqlite, Postgres);
same_variants!(old::log::Level => new::log::Level; tuple: ; unit: Trace, Debug, Info, Warn, Error);

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
