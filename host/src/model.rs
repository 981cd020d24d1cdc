//! The engine's own model of records, values, changes and outcomes.
//!
//! Plugins speak one of the plugin API versions (`schemas/wit`, each released
//! version frozen in its own folder); the runtime turns what they return into
//! these types and these types into what they take (`runtime::convert`). So
//! the engine, the state and the command line never depend on a WIT version,
//! and a new API version changes the boundary only.
//!
//! The serde form of these types is what the state stores (approvals, parked
//! values, conflicts): it must not change without a migration.

use serde::{Deserialize, Serialize};

/// One field value. Dates are ISO 8601 `YYYY-MM-DD`, timestamps RFC 3339,
/// decimals their exact decimal text, json a JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Decimal(String),
    Text(String),
    Date(String),
    Timestamp(String),
    Bytes(Vec<u8>),
    Json(String),
}

/// A named value inside a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub value: Value,
}

/// One record of an entity as the system it lives in sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The record's own id in its system (never copied to another system).
    pub id: String,
    /// An opaque version; a change time (optionally `/` and a digest) also
    /// serves the time-based conflict policies.
    pub version: Option<String>,
    /// A tombstone: the record was deleted (soft delete) in its system.
    pub deleted: bool,
    pub fields: Vec<Field>,
    /// A mark of the record's creation, where its system reuses ids.
    pub born: Option<String>,
}

/// What went wrong, for a person to act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable machine-readable code, e.g. `not-found`, `capability-denied`.
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
    /// Whether trying again later may succeed.
    pub retryable: bool,
}

/// The declared type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FieldType {
    Boolean,
    Integer,
    Float,
    Decimal,
    Text,
    Date,
    Timestamp,
    Bytes,
    Json,
}

/// A field of an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDef {
    pub name: String,
    pub type_: FieldType,
    pub nullable: bool,
    /// Set by the system itself; never written.
    pub read_only: bool,
}

/// A kind of record an endpoint exposes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityDef {
    pub name: String,
    /// The field holding the record's own id.
    pub key: String,
    pub fields: Vec<FieldDef>,
    /// `read` returns only changes since the cursor; else a full scan.
    pub change_feed: bool,
    /// Deletes are kept as tombstones that `read` returns.
    pub soft_delete: bool,
    pub writable: bool,
    /// A create sent again (`repeated`) finds the record made the first time.
    pub finds_by_origin: bool,
}

/// One page of records from a connector's `read`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadBatch {
    pub records: Vec<Record>,
    /// Where the next read continues, once this page is processed.
    pub cursor: Option<String>,
    /// More records are ready now.
    pub has_more: bool,
    /// How many records this read returns in all, when the connector knows.
    pub total: Option<u64>,
}

/// What a change does to the target record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeKind {
    /// Create, or update when `target_id` names an existing record.
    Upsert,
    Delete,
}

/// One change to apply to a target system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The caller's reference (the source record's link), for idempotent creates.
    pub origin: String,
    pub target_id: Option<String>,
    /// Apply only if the target is still at this version.
    pub expected_version: Option<String>,
    pub kind: ChangeKind,
    /// The fields to set; fields not listed are left as they are.
    pub fields: Vec<Field>,
    /// A create sent before whose outcome is not known.
    pub repeated: bool,
    /// The person whose decision this change carries out (an approver).
    pub on_behalf_of: Option<String>,
}

/// The target record after an applied change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub id: String,
    pub version: Option<String>,
}

/// The outcome of one change, in the order the changes were given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Applied(Applied),
    Rejected(Problem),
    /// The target changed since the expected version: here is how it is now.
    Conflict(Record),
}

/// What the host's pipelines need from one entity, for a connector's probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityNeed {
    pub entity: String,
    pub read: bool,
    pub write: bool,
}

/// Which way a mapper maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    LeftToRight,
    RightToLeft,
}

/// A rule a record breaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// The field at fault, if it is one field.
    pub field: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

/// A mapped record that keeps every rule, or every reason it does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Mapped {
    Ok(Record),
    Invalid(Vec<Violation>),
}

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

    /// A value a person typed as JSON (an API body): null, a boolean, a
    /// number, text; an array or object is kept as JSON.
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Boolean(*b),
            serde_json::Value::Number(n) => n.as_i64().map_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)), Value::Integer),
            serde_json::Value::String(s) => Value::Text(s.clone()),
            other => Value::Json(other.to_string()),
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
