//! `replica`: the connector a host uses for the other host of a replica
//! (`[replicas.NAME]`), which it meets only through messages. The host
//! keeps an exchange store for each replica (a SQLite file it grants this
//! connector as the connection `store`):
//!
//! - `mirror`: the other host's records as its messages last said, each with
//!   the position of the import that last changed it. `read` is the change
//!   feed of imports (by that position), `fetch` the records as known.
//! - `outbox`: the changes this host's pipelines make for the other host;
//!   `write` adds to it (the host exports them as messages and keeps them
//!   until they are acknowledged) and updates the mirror, so that what was
//!   sent counts as the other side's state without coming back as a change.
//!
//! A record's id on this side is a key both hosts use for it: made by the
//! host that first sent the record, from its own name and the change's
//! origin, so that no system's own id crosses (C9) and a create sent again
//! after a crash finds the record it made.
//!
//! Values keep their types across: each is kept as `{"type": value}`.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use synchost_plugin_sdk::host::{BatchMode, Sql, Statement};
use synchost_plugin_sdk::prelude::*;
use synchost_plugin_sdk::version;

/// `settings` of a replica's endpoint, as the host writes them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The granted connection to the exchange store.
    pub connection: String,
    /// This host's name: the start of the keys of records it sends first.
    pub prefix: String,
    /// The entities the pipelines exchange, with their fields.
    pub entities: BTreeMap<String, Vec<String>>,
}

/// The replica connector for one call.
pub struct Replica {
    settings: Settings,
    sql: Sql,
}

/// A value as the store keeps it.
pub fn encode(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => json!({ "boolean": b }),
        Value::Integer(i) => json!({ "integer": i }),
        Value::Float(f) => json!({ "float": f }),
        Value::Decimal(s) => json!({ "decimal": s }),
        Value::Text(s) => json!({ "text": s }),
        Value::Date(s) => json!({ "date": s }),
        Value::Timestamp(s) => json!({ "timestamp": s }),
        Value::Json(s) => json!({ "json": s }),
        Value::Bytes(b) => json!({ "bytes": b.iter().map(|byte| format!("{byte:02x}")).collect::<String>() }),
    }
}

/// A value from the store; `None` for one this version cannot read.
pub fn decode(json: &Json) -> Option<Value> {
    let Json::Object(tagged) = json else { return json.is_null().then_some(Value::Null) };
    let (kind, inner) = tagged.iter().next()?;
    let text = || inner.as_str().map(str::to_owned);
    Some(match kind.as_str() {
        "boolean" => Value::Boolean(inner.as_bool()?),
        "integer" => Value::Integer(inner.as_i64()?),
        "float" => Value::Float(inner.as_f64()?),
        "decimal" => Value::Decimal(text()?),
        "text" => Value::Text(text()?),
        "date" => Value::Date(text()?),
        "timestamp" => Value::Timestamp(text()?),
        "json" => Value::Json(text()?),
        "bytes" => {
            let hex = inner.as_str()?;
            Value::Bytes((0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)).collect::<Result<_, _>>().ok()?)
        }
        _ => return None,
    })
}

fn fields_of(stored: &str) -> Vec<Field> {
    let object: Map<String, Json> = serde_json::from_str(stored).unwrap_or_default();
    object.iter().filter_map(|(name, value)| Some(Field { name: name.clone(), value: decode(value)? })).collect()
}

fn text(value: &Value) -> String {
    match value {
        Value::Text(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        _ => String::new(),
    }
}

/// A mirror row (`key, fields, version, deleted, seq`) as a record.
fn record(row: &[Value]) -> Record {
    Record {
        id: text(&row[0]),
        fields: fields_of(&text(&row[1])),
        version: Some(text(&row[2])),
        deleted: matches!(row[3], Value::Integer(1)),
        born: None,
    }
}

impl Replica {
    fn check(&self, entity: &str) -> Result<&[String], Error> {
        self.settings.entities.get(entity).map(Vec::as_slice).ok_or_else(|| {
            Error::new("unknown-entity", format!("no pipeline exchanges entity `{entity}` through this replica"))
                .with_hint("name the entity in a pipeline whose other side is this replica")
        })
    }

    fn mirror(&self, entity: &str, ids: &[String]) -> Result<HashMap<String, Record>, Error> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 2)).collect();
            let mut params = vec![Value::Text(entity.to_owned())];
            params.extend(chunk.iter().map(|id| Value::Text(id.clone())));
            let rows = self.sql.query(
                &format!("SELECT key, fields, version, deleted FROM mirror WHERE entity = ?1 AND key IN ({})", placeholders.join(", ")),
                &params,
            )?;
            for row in rows.rows {
                let record = record(&row);
                found.insert(record.id.clone(), record);
            }
        }
        Ok(found)
    }
}

impl Connector for Replica {
    fn new(context: &Context) -> Result<Self, Error> {
        let settings: Settings = context.settings()?;
        let sql = Sql::connection(settings.connection.clone());
        Ok(Replica { settings, sql })
    }

    fn describe(&self) -> Result<Vec<EntityDef>, Error> {
        Ok(self
            .settings
            .entities
            .iter()
            .map(|(name, fields)| EntityDef {
                name: name.clone(),
                key: "key".into(),
                fields: fields.iter().map(|f| FieldDef { name: f.clone(), type_: FieldType::Text, nullable: true, read_only: false }).collect(),
                change_feed: true,
                soft_delete: true,
                writable: true,
                finds_by_origin: true,
            })
            .collect())
    }

    fn read(&mut self, entity: &str, cursor: Option<String>, limit: u32) -> Result<ReadBatch, Error> {
        self.check(entity)?;
        let after: i64 = cursor.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0);
        let rows = self.sql.query(
            "SELECT key, fields, version, deleted, seq FROM mirror WHERE entity = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            &[Value::Text(entity.to_owned()), Value::Integer(after), Value::Integer(i64::from(limit.max(1)))],
        )?;
        let has_more = rows.rows.len() == limit.max(1) as usize;
        let cursor = rows.rows.last().map(|row| text(&row[4])).or(cursor);
        Ok(ReadBatch { records: rows.rows.iter().map(|row| record(row)).collect(), cursor, has_more })
    }

    fn fetch(&mut self, entity: &str, ids: Vec<String>) -> Result<Vec<Record>, Error> {
        self.check(entity)?;
        let mut found = self.mirror(entity, &ids)?;
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    fn write(&mut self, entity: &str, changes: Vec<Change>) -> Result<Vec<Outcome>, Error> {
        self.check(entity)?;
        let keys: Vec<String> = changes.iter().filter_map(|c| c.target_id.clone()).collect();
        let known = self.mirror(entity, &keys)?;
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(changes.len());
        let mut statements = Vec::new();
        let mut written: Vec<(usize, String, String)> = Vec::new();
        for change in &changes {
            let key = change.target_id.clone().unwrap_or_else(|| format!("{}:{}", self.settings.prefix, change.origin));
            let current = known.get(&key);
            if let (Some(expected), Some(current)) = (&change.expected_version, current) {
                if current.version.as_ref() != Some(expected) {
                    outcomes.push(Some(Outcome::Conflict(current.clone())));
                    continue;
                }
            }
            let deleted = change.kind == ChangeKind::Delete;
            let mut fields: Map<String, Json> = current.map(|r| r.fields.iter().map(|f| (f.name.clone(), encode(&f.value))).collect()).unwrap_or_default();
            let mut sent = Map::new();
            for field in &change.fields {
                fields.insert(field.name.clone(), encode(&field.value));
                sent.insert(field.name.clone(), encode(&field.value));
            }
            let merged: Vec<Field> = fields.iter().filter_map(|(name, value)| Some(Field { name: name.clone(), value: decode(value)? })).collect();
            let version = version::version("o", &merged, deleted);
            let kind = if deleted { "delete" } else { "upsert" };
            statements.push(Statement {
                // `seen`: how far this host had applied the other's changes (the host's mark).
                sql: "INSERT INTO outbox (entity, key, kind, fields, origin, seen) VALUES (?1, ?2, ?3, ?4, ?5,
                      (SELECT coalesce(max(CAST(value AS INTEGER)), 0) FROM meta WHERE key = 'last_applied'))"
                    .into(),
                params: vec![
                    Value::Text(entity.to_owned()),
                    Value::Text(key.clone()),
                    Value::Text(kind.into()),
                    Value::Text(Json::Object(sent).to_string()),
                    Value::Text(change.origin.clone()),
                ],
            });
            // Which change last set each field here, for the host to tell a
            // concurrent change of the other host on import.
            for field in &change.fields {
                statements.push(Statement {
                    sql: "INSERT INTO local_fields (entity, key, field, number) VALUES (?1, ?2, ?3, (SELECT max(number) FROM outbox))
                          ON CONFLICT (entity, key, field) DO UPDATE SET number = excluded.number"
                        .into(),
                    params: vec![Value::Text(entity.to_owned()), Value::Text(key.clone()), Value::Text(field.name.clone())],
                });
            }
            // What was sent is the other side's state from now on; the feed
            // position stays, so it does not come back as a change.
            statements.push(Statement {
                sql: "INSERT INTO mirror (entity, key, fields, version, deleted, seq) VALUES (?1, ?2, ?3, ?4, ?5, 0)
                      ON CONFLICT (entity, key) DO UPDATE SET fields = excluded.fields, version = excluded.version, deleted = excluded.deleted"
                    .into(),
                params: vec![
                    Value::Text(entity.to_owned()),
                    Value::Text(key.clone()),
                    Value::Text(Json::Object(fields).to_string()),
                    Value::Text(version.clone()),
                    Value::Integer(i64::from(deleted)),
                ],
            });
            written.push((outcomes.len(), key, version));
            outcomes.push(None);
        }
        if !statements.is_empty() {
            // One transaction: the outbox and the mirror never disagree.
            for result in self.sql.execute(&statements, BatchMode::AllOrNothing)? {
                result?;
            }
        }
        for (slot, key, version) in written {
            outcomes[slot] = Some(Outcome::Applied(Applied { id: key, version: Some(version) }));
        }
        Ok(outcomes.into_iter().map(|o| o.expect("every change has an outcome")).collect())
    }
}

export_connector!(Replica);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_value_comes_back_as_it_went() {
        let values = [
            Value::Null,
            Value::Boolean(true),
            Value::Integer(-7),
            Value::Float(1.5),
            Value::Decimal("12.30".into()),
            Value::Text("Ada".into()),
            Value::Date("2026-12-02".into()),
            Value::Timestamp("2026-12-02T10:00:00Z".into()),
            Value::Json("{\"a\":1}".into()),
            Value::Bytes(vec![0, 255, 16]),
        ];
        for value in values {
            assert_eq!(decode(&encode(&value)), Some(value.clone()), "{value:?}");
        }
        assert_eq!(decode(&json!({ "colour": "red" })), None, "a kind this version does not know");
    }
}
