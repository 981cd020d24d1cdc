//! A connector built against the frozen plugin API 0.3.0 (`schemas/wit/since_v0.3.0`)
//! with wit-bindgen alone, as a vendor's plugin released for 0.3 was: the
//! host must run it beside plugins of the current API.
//!
//! It keeps `items (id, name)` in the SQL connection `db` it is granted: a
//! full scan by id, versions that are the name itself, creates with an id of
//! its own.

// Built for wasm32 only: a native build of the workspace leaves it empty.
#[cfg(target_arch = "wasm32")]
mod plugin {
    wit_bindgen::generate!({
        world: "connector-plugin",
        path: "../../../schemas/wit/since_v0.3.0",
    });

    use exports::synchost::plugin::connector::{Applied, Change, ChangeKind, EntityNeed, Guest, Outcome, ReadBatch};
    use synchost::plugin::sql::{self, BatchMode, Statement};
    use synchost::plugin::types::{EntityDef, Field, FieldDef, FieldType, Problem, Record, Value};

    const DB: &str = "db";

    struct Items;

    fn problem(code: &str, message: String) -> Problem {
        Problem { code: code.into(), message, hint: None, retryable: false }
    }

    fn text(value: &Value) -> String {
        match value {
            Value::Text(text) => text.clone(),
            Value::Integer(i) => i.to_string(),
            _ => String::new(),
        }
    }

    fn record(row: &[Value]) -> Record {
        let name = text(&row[1]);
        Record {
            id: text(&row[0]),
            version: Some(name.clone()),
            deleted: false,
            fields: vec![Field { name: "name".into(), value: Value::Text(name) }],
            born: None,
        }
    }

    fn check(entity: &str) -> Result<(), Problem> {
        if entity == "items" { Ok(()) } else { Err(problem("unknown-entity", format!("no entity `{entity}`"))) }
    }

    fn applied(row: Option<&Vec<Value>>) -> Outcome {
        match row {
            Some(row) => Outcome::Applied(Applied { id: text(&row[0]), version: Some(text(&row[1])) }),
            None => Outcome::Rejected(problem("not-found", "the item is gone".into())),
        }
    }

    impl Guest for Items {
        fn describe() -> Result<Vec<EntityDef>, Problem> {
            let field = |name: &str, read_only| FieldDef { name: name.into(), type_: FieldType::Text, nullable: true, read_only };
            Ok(vec![EntityDef {
                name: "items".into(),
                key: "id".into(),
                fields: vec![field("id", true), field("name", false)],
                change_feed: false,
                soft_delete: false,
                writable: true,
                finds_by_origin: false,
            }])
        }

        fn probe(needs: Vec<EntityNeed>) -> Result<Vec<Problem>, Problem> {
            Ok(needs.iter().filter_map(|n| check(&n.entity).err()).collect())
        }

        fn read(entity: String, cursor: Option<String>, limit: u32) -> Result<ReadBatch, Problem> {
            check(&entity)?;
            let after = Value::Text(cursor.unwrap_or_default());
            let rows = sql::query(DB, "SELECT id, name FROM items WHERE id > ?1 ORDER BY id LIMIT ?2", &[after, Value::Integer(i64::from(limit))])?.rows;
            let has_more = rows.len() == limit as usize;
            let cursor = rows.last().map(|row| text(&row[0]));
            Ok(ReadBatch { records: rows.iter().map(|row| record(row)).collect(), cursor, has_more })
        }

        fn fetch(entity: String, ids: Vec<String>) -> Result<Vec<Record>, Problem> {
            check(&entity)?;
            let mut found = Vec::new();
            for id in ids {
                found.extend(sql::query(DB, "SELECT id, name FROM items WHERE id = ?1", &[Value::Text(id)])?.rows.iter().map(|row| record(row)));
            }
            Ok(found)
        }

        fn write(entity: String, changes: Vec<Change>) -> Result<Vec<Outcome>, Problem> {
            check(&entity)?;
            let statements: Vec<Statement> = changes
                .iter()
                .map(|change| {
                    let name = change.fields.iter().find(|f| f.name == "name").map_or(Value::Null, |f| f.value.clone());
                    match (change.kind, &change.target_id) {
                        (ChangeKind::Delete, Some(id)) => {
                            Statement { sql: "DELETE FROM items WHERE id = ?1 RETURNING id, name".into(), params: vec![Value::Text(id.clone())] }
                        }
                        (ChangeKind::Upsert, Some(id)) => Statement {
                            sql: "UPDATE items SET name = ?2 WHERE id = ?1 RETURNING id, name".into(),
                            params: vec![Value::Text(id.clone()), name],
                        },
                        (_, None) => Statement {
                            sql: "INSERT INTO items (id, name) VALUES ('i-' || lower(hex(randomblob(6))), ?1) RETURNING id, name".into(),
                            params: vec![name],
                        },
                    }
                })
                .collect();
            let results = sql::execute(DB, &statements, BatchMode::EachAlone)?;
            Ok(results
                .into_iter()
                .map(|result| match result {
                    Ok(executed) => applied(executed.returned.first()),
                    Err(problem) => Outcome::Rejected(problem),
                })
                .collect())
        }
    }

    export!(Items);

    // The host reads these before it compiles the component.
    #[unsafe(link_section = "synchost:api-version")]
    #[used]
    static API_VERSION: [u8; 5] = *b"0.3.0";

    #[unsafe(link_section = "synchost:plugin-kind")]
    #[used]
    static PLUGIN_KIND: [u8; 9] = *b"connector";
}
