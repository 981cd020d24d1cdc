//! `sql-table`: a connector for tables in a SQL database, reached through a
//! named connection the admin granted (SQLite now; the queries are written for
//! PostgreSQL too). This is the CRM-tables connector: one entity per table.
//!
//! - Entities and their fields come from settings, or from the table itself.
//! - With an `updated_at` column an entity has a change feed: reads go in
//!   `(updated_at, key)` order from an opaque cursor, so a change is never
//!   skipped or read twice, even when many rows share one timestamp.
//! - Without one, reads page through a full scan in key order.
//! - Writes are upserts: an update names the row by its own key; a create with
//!   an `origin` column finds the row an earlier attempt made and updates it.
//! - With a `soft_delete` status column, deletes become tombstones that reads
//!   return; updates never change the status, so they cannot revive a record.
//!
//! # Layout
//! - `settings`: the endpoint settings.
//! - `schema`: resolving settings against the table's real columns.
//! - `convert`: column values to typed record values and back.
//! - `clock`: timestamps for `updated_at`.
//! - `feed`: the change feed's cursor and the window behind it.
//! - `write`: a batch of changes as statements, in one transaction.

mod clock;
mod convert;
mod feed;
mod schema;
pub mod settings;
mod write;

use synchost_plugin_sdk::host::{Dialect, Sql};
use synchost_plugin_sdk::prelude::*;
use synchost_plugin_sdk::version;

use feed::{from_json, to_json, Cursor};
use convert::{from_column, id_to_key, to_id};
use schema::{resolve, Table};
use settings::{Settings, StampFormat};

/// The sql-table connector for one call.
pub struct SqlTable {
    settings: Settings,
    sql: Sql,
    dialect: Dialect,
}


fn quote(identifier: &str) -> String {
    format!("\"{identifier}\"")
}

impl SqlTable {
    /// Bound-parameter placeholder number `n` (1-based) in this dialect.
    fn param(&self, n: usize) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// Null-safe equality in this dialect.
    fn same(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "IS",
            Dialect::Postgres => "IS NOT DISTINCT FROM",
        }
    }

    fn table<'s>(&'s self, entity: &str) -> Result<Table<'s>, Error> {
        let settings = self.settings.entities.get(entity).ok_or_else(|| {
            let known: Vec<&str> = self.settings.entities.keys().map(String::as_str).collect();
            Error::new("unknown-entity", format!("entity `{entity}` is not configured"))
                .with_hint(format!("configured entities: {}", known.join(", ")))
        })?;
        let table = resolve(&self.sql, self.dialect, entity, settings)?;
        if let Some((column, StampFormat::Rfc3339)) = &table.updated_at
            && column.kind == FieldType::Integer
        {
            return Err(Error::settings(format!(
                "entity `{entity}`: updated_at column `{}` is an integer column, but updated_at_format is rfc3339",
                column.name
            ))
            .with_hint("set updated_at_format = \"unix-seconds\" or \"unix-millis\""));
        }
        Ok(table)
    }

    fn select_list(table: &Table<'_>) -> String {
        table.select_columns().iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
    }

    /// Turns a row read with `select_list` into a record.
    fn record_from_row(table: &Table<'_>, row: Vec<Value>) -> Record {
        let typed = TypedRow::of(table, row);
        let version = typed.version(table);
        typed.into_record(table, version)
    }

    fn fetch_records(&self, table: &Table<'_>, ids: &[String]) -> Result<Vec<Record>, Error> {
        let mut records = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let params = chunk.iter().map(|id| id_to_key(&table.key, id)).collect::<Result<Vec<_>, _>>()?;
            let placeholders: Vec<String> = (1..=params.len()).map(|n| self.param(n)).collect();
            let query = format!(
                "SELECT {} FROM {} WHERE {} IN ({})",
                Self::select_list(table),
                quote(&table.table),
                quote(&table.key.name),
                placeholders.join(", ")
            );
            let rows = self.sql.query(&query, &params)?;
            records.extend(rows.rows.into_iter().map(|row| Self::record_from_row(table, row)));
        }
        Ok(records)
    }
}

/// A row read with `select_list`, its values typed as the fields declare
/// them, before it is made a record (each field named).
struct TypedRow {
    id: String,
    stamp: Option<Value>,
    deleted: bool,
    values: Vec<Value>,
}

impl TypedRow {
    fn of(table: &Table<'_>, row: Vec<Value>) -> TypedRow {
        let mut values = row.into_iter();
        let id = to_id(&values.next().unwrap_or(Value::Null));
        let stamp = table.updated_at.as_ref().map(|_| values.next().unwrap_or(Value::Null)).filter(|v| !v.is_null());
        let deleted = table.soft_delete.is_some_and(|soft| {
            values.next().is_some_and(|status| status.as_str() == Some(soft.deleted.as_str()))
        });
        let values = table.fields.iter().zip(values).map(|(def, raw)| from_column(def.type_, raw)).collect();
        TypedRow { id, stamp, deleted, values }
    }

    /// The stamp and a digest of the values: an edit within the same tick
    /// of the stamp's clock still makes a new version.
    fn version(&self, table: &Table<'_>) -> Option<String> {
        let named = table.fields.iter().map(|def| def.name.as_str()).zip(&self.values);
        self.stamp.as_ref().map(|stamp| version::version_of(&to_id(stamp), named, self.deleted))
    }

    fn into_record(self, table: &Table<'_>, version: Option<String>) -> Record {
        let fields = table.fields.iter().zip(self.values).map(|(def, value)| Field { name: def.name.clone(), value }).collect();
        Record { id: self.id, version, deleted: self.deleted, fields, born: None }
    }
}

impl SqlTable {
    /// The rows behind the cursor within its window (see `feed`), each as
    /// read by `read`; at most what the cursor can remember, oldest last.
    fn read_behind(&self, table: &Table<'_>, cursor: &Cursor) -> Result<Vec<Vec<Value>>, Error> {
        let Some((u, format)) = &table.updated_at else { return Ok(Vec::new()) };
        let (Some(start), Some(last)) = (cursor.window_start(*format, table.overlap_ms), cursor.u.as_ref()) else { return Ok(Vec::new()) };
        let (u, key) = (quote(&u.name), quote(&table.key.name));
        let query = format!(
            "SELECT {} FROM {} WHERE {u} >= {p1} AND ({u}, {key}) <= ({p2}, {p3}) ORDER BY {u} DESC, {key} DESC LIMIT {p4}",
            Self::select_list(table),
            quote(&table.table),
            p1 = self.param(1),
            p2 = self.param(2),
            p3 = self.param(3),
            p4 = self.param(4),
        );
        let params = [start, from_json(last), from_json(&cursor.k), Value::Integer(feed::REMEMBERED as i64)];
        let mut rows = self.sql.query(&query, &params)?.rows;
        rows.reverse();
        Ok(rows)
    }

    /// The connector over settings made by code rather than read from the
    /// endpoint's config: how connectors for one fixed schema reuse this one.
    pub fn with_settings(settings: Settings) -> Result<Self, Error> {
        let sql = Sql::connection(settings.connection.as_str());
        let dialect = sql.dialect()?;
        Ok(SqlTable { settings, sql, dialect })
    }
}

impl Connector for SqlTable {
    fn new(context: &Context) -> Result<Self, Error> {
        SqlTable::with_settings(context.settings()?)
    }

    fn describe(&self) -> Result<Vec<EntityDef>, Error> {
        self.settings.entities.keys().map(|entity| Ok(self.table(entity)?.definition())).collect()
    }

    fn read(&mut self, entity: &str, cursor: Option<String>, limit: u32) -> Result<ReadBatch, Error> {
        let table = self.table(entity)?;
        let cursor: Option<Cursor> = cursor
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| {
                Error::new("bad-cursor", format!("cursor is not one this connector made: {e}"))
                    .with_hint("read again without --since to start from the beginning")
            })?;
        let key = quote(&table.key.name);
        let mut params: Vec<Value> = Vec::new();
        let (filter, order) = match (&table.updated_at, &cursor) {
            (Some((u, _)), cursor) => {
                let u = quote(&u.name);
                let filter = match cursor {
                    None => String::new(),
                    Some(Cursor { u: None | Some(serde_json::Value::Null), k, .. }) => {
                        params.push(from_json(k));
                        format!(" WHERE ({u} IS NULL AND {key} > {}) OR {u} IS NOT NULL", self.param(1))
                    }
                    Some(Cursor { u: Some(last), k, .. }) => {
                        params.push(from_json(last));
                        params.push(from_json(k));
                        // A row-value comparison, so an index on (updated_at, key) serves it.
                        format!(" WHERE ({u}, {key}) > ({p1}, {p2})", p1 = self.param(1), p2 = self.param(2))
                    }
                };
                (filter, format!("{u} NULLS FIRST, {key}"))
            }
            (None, None) => (String::new(), key.clone()),
            (None, Some(Cursor { k, .. })) => {
                params.push(from_json(k));
                (format!(" WHERE {key} > {}", self.param(1)), key.clone())
            }
        };
        // Noted before the page is read: what commits after it is stamped no
        // earlier than `overlap_ms` before it (see `feed`).
        let newest = match &table.updated_at {
            Some((u, _)) if table.overlap_ms > 0 => {
                let query = format!("SELECT max({}) FROM {}", quote(&u.name), quote(&table.table));
                self.sql.query(&query, &[])?.rows.into_iter().next().and_then(|row| row.into_iter().next())
            }
            _ => None,
        };
        let limit = limit.max(1);
        params.push(Value::Integer(i64::from(limit)));
        let columns = Self::select_list(&table);
        let from = quote(&table.table);
        let limit_param = self.param(params.len());
        let query = match (&table.updated_at, &cursor) {
            // Rows sharing the cursor's timestamp, then later ones: two index seeks,
            // so a page costs the same however many rows share one timestamp.
            (Some((u, _)), Some(Cursor { u: Some(last), .. })) if !last.is_null() => {
                let (u, p1, p2) = (quote(&u.name), self.param(1), self.param(2));
                format!(
                    "SELECT * FROM (SELECT {columns} FROM {from} WHERE {u} = {p1} AND {key} > {p2} ORDER BY {key} LIMIT {limit_param}) \
                     UNION ALL SELECT * FROM (SELECT {columns} FROM {from} WHERE {u} > {p1} ORDER BY {order} LIMIT {limit_param}) \
                     ORDER BY {order} LIMIT {limit_param}"
                )
            }
            _ => format!("SELECT {columns} FROM {from}{filter} ORDER BY {order} LIMIT {limit_param}"),
        };
        let rows = self.sql.query(&query, &params)?.rows;
        let has_more = rows.len() == limit as usize;
        let Some((_, format)) = &table.updated_at else {
            // A full scan: the key is the position.
            let next = rows.last().map(|row| Cursor { u: None, k: to_json(&row[0]), seen: Vec::new(), newest: None }).or(cursor);
            let records = rows.into_iter().map(|row| Self::record_from_row(&table, row)).collect();
            return Ok(ReadBatch { records, cursor: next.map(|c| serde_json::to_string(&c)).transpose()?, has_more });
        };
        let stamped = |row: Vec<Value>| (row[1].clone(), row[0].clone(), Self::record_from_row(&table, row));
        let fresh: Vec<(Value, Value, Record)> = rows.into_iter().map(stamped).collect();
        let previous = cursor.unwrap_or_default();
        // Most rows behind the cursor were returned before at the version
        // they have now: those are told apart before a record is made of them.
        let seen = previous.seen_versions();
        let late: Vec<(Value, Value, Record)> = self
            .read_behind(&table, &previous)?
            .into_iter()
            .filter_map(|row| {
                let (u, k) = (row[1].clone(), row[0].clone());
                let typed = TypedRow::of(&table, row);
                let version = typed.version(&table);
                let returned = matches!((seen.get(&to_json(&k).to_string()), version.as_deref()), (Some(a), Some(b)) if *a == b);
                (!returned).then(|| (u, k, typed.into_record(&table, version)))
            })
            .collect();
        let next = previous.advance(&borrowed(&late), &borrowed(&fresh), newest.as_ref(), *format, table.overlap_ms);
        // Before the cursor has a position, there is nothing to keep.
        let next = (next.u.is_some() || !fresh.is_empty()).then_some(next);
        let records = late.into_iter().chain(fresh).map(|(_, _, record)| record).collect();
        Ok(ReadBatch { records, cursor: next.map(|c| serde_json::to_string(&c)).transpose()?, has_more })
    }

    fn fetch(&mut self, entity: &str, ids: Vec<String>) -> Result<Vec<Record>, Error> {
        let table = self.table(entity)?;
        self.fetch_records(&table, &ids)
    }

    fn count(&mut self, entity: &str) -> Result<Option<u64>, Error> {
        let table = self.table(entity)?;
        let rows = self.sql.query(&format!("SELECT count(*) FROM {}", quote(&table.table)), &[])?.rows;
        Ok(rows.first().and_then(|row| row.first()).and_then(Value::as_integer).and_then(|n| u64::try_from(n).ok()))
    }

    fn write(&mut self, entity: &str, changes: Vec<Change>) -> Result<Vec<Outcome>, Error> {
        self.write_changes(entity, changes)
    }
}

/// Rows with their records borrowed, as `Cursor::advance` takes them.
fn borrowed(rows: &[(Value, Value, Record)]) -> Vec<(Value, Value, &Record)> {
    rows.iter().map(|(u, k, r)| (u.clone(), k.clone(), r)).collect()
}

// Connectors that build on this one as a library export themselves instead.
#[cfg(feature = "export")]
export_connector!(SqlTable);
