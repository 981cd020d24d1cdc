//! Host-side bindings generated from `schemas/wit` (plugin API 0.3.x).
//!
//! The mapper world reuses the connector world's shared interfaces, so one
//! `Record` type and one implementation of each host service serve both.

/// The `connector-plugin` world.
pub mod connector {
    wasmtime::component::bindgen!({
        world: "connector-plugin",
        path: "../schemas/wit",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

/// The `mapper-plugin` world.
pub mod mapper {
    wasmtime::component::bindgen!({
        world: "mapper-plugin",
        path: "../schemas/wit",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq],
        with: {
            "synchost:plugin/types": super::connector::synchost::plugin::types,
            "synchost:plugin/log": super::connector::synchost::plugin::log,
            "synchost:plugin/context": super::connector::synchost::plugin::context,
        },
    });
}

pub use connector::exports::synchost::plugin::connector::{Applied, Change, ChangeKind, EntityNeed, Outcome, ReadBatch};
pub use connector::synchost::plugin::http as wit_http;
pub use connector::synchost::plugin::sql as wit_sql;
pub use connector::synchost::plugin::types::{EntityDef, Field, FieldDef, FieldType, Problem, Record, Value};
pub use mapper::exports::synchost::plugin::mapper::{Direction, Mapped, Violation};

impl Record {
    /// The value of a field, if the record has it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|f| f.name == name).map(|f| &f.value)
    }

    /// The text of a text field; `None` when absent or not text.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Value::Text(text)) => Some(text),
            _ => None,
        }
    }
}

impl Value {
    /// The value as JSON: dates, timestamps and decimals stay exact strings,
    /// bytes are hex, a JSON value is embedded as itself.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Boolean(b) => (*b).into(),
            Value::Integer(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
            Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Timestamp(s) => s.clone().into(),
            Value::Bytes(b) => hex::encode(b).into(),
            Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| s.clone().into()),
        }
    }

    /// The value as a number, when it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Integer(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Decimal(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The value as a person reads it in one line; null is `∅`.
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => "∅".into(),
            Value::Boolean(b) => b.to_string(),
            Value::Integer(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bytes(b) => format!("<{} bytes>", b.len()),
            Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Timestamp(s) | Value::Json(s) => s.clone(),
        }
    }

    /// Null, or text that is only whitespace.
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Text(t) => t.trim().is_empty(),
            _ => false,
        }
    }
}
