//! The endpoint settings this connector accepts.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[endpoints.NAME.settings]` of a sql-table endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The granted SQL connection (a key of `[endpoints.NAME.grants.sql]`).
    pub connection: String,
    /// The entities, by name; each is one table.
    pub entities: BTreeMap<String, EntitySettings>,
}

/// One table exposed as an entity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitySettings {
    /// The table; defaults to the entity's name.
    pub table: Option<String>,
    /// The primary-key column, the record's own id. Default `id`.
    #[serde(default = "default_key")]
    pub key: String,
    /// A column set to the time of every change: gives the entity a change feed.
    /// Without it, every read is a full scan.
    pub updated_at: Option<String>,
    /// How `updated_at` is stored: RFC 3339 text (default), or Unix time as an integer.
    #[serde(default)]
    pub updated_at_format: StampFormat,
    /// How far behind its position, in milliseconds, each read of the change
    /// feed looks again for rows it has not returned at their present version:
    /// rows committed late with an earlier stamp, and rows edited within the
    /// same tick of the stamp's clock as rows read before. Default 2000; 0
    /// turns it off.
    #[serde(default = "default_overlap")]
    pub overlap_ms: u64,
    /// A record-status column: deletes become tombstones instead of removing rows.
    pub soft_delete: Option<SoftDelete>,
    /// A column where creates store the caller's origin reference, so a create
    /// that is repeated (after a crash) updates the row it made the first time.
    pub origin: Option<String>,
    /// The synced columns and their types; read from the table when absent.
    pub fields: Option<BTreeMap<String, TypeName>>,
    /// Columns left out of introspected fields.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Whether writes are allowed. Default true.
    #[serde(default = "yes")]
    pub writable: bool,
}

/// Soft delete through a record-status column.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftDelete {
    pub column: String,
    /// The status of a deleted record. Default `deleted`.
    #[serde(default = "default_deleted")]
    pub deleted: String,
    /// The status written on create and on update. Default `active`.
    #[serde(default = "default_active")]
    pub active: String,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StampFormat {
    #[default]
    Rfc3339,
    UnixSeconds,
    UnixMillis,
}

/// A field type as written in settings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TypeName {
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

fn default_key() -> String {
    "id".into()
}
fn default_overlap() -> u64 {
    2000
}

fn default_deleted() -> String {
    "deleted".into()
}
fn default_active() -> String {
    "active".into()
}
fn yes() -> bool {
    true
}
