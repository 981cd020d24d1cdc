//! A connector built against the frozen plugin API 0.4.0 (`schemas/wit/since_v0.4.0`)
//! with wit-bindgen alone, as a vendor's plugin released for 0.4 was: the
//! host must run it beside plugins of the current API. Records cross as
//! pages; a write names its fields once.
//!
//! It keeps `items (id, name)` in the SQL connection `db` it is granted: a
//! full scan by id, versions that are the name itself, creates with an id of
//! its own.

// Built for wasm32 only: a native build of the workspace leaves it empty.
#[cfg(target_arch = "wasm32")]
mod plugin {
    wit_bindgen::generate!({
        world: "connector-plugin",
        path: "../../../schemas/wit/since_v0.4.0",
    });

    use exports::synchost::plugin::connector::{Applied, Change, ChangeKind, EntityNeed, Guest, Outcome, ReadBatch};
    use synchost::plugin::sql::{self, BatchMode, Statement};
    use synchost::plugin::types::{EntityDef, FieldDef, FieldType, Page, Problem, Row, Value};

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

    fn page(rows: &[Vec<Value>]) -> Page {
        let rows = rows
            .iter()
            .map(|row| {
                let name = text(&row[1]);
                Row { id: text(&row[0]), version: Some(name.clone()), deleted: false, born: None, values: vec![Some(Value::Text(name))] }
            })
            .collect();
        Page { fields: vec!["name".into()], rows }
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
            Ok(ReadBatch { records: page(&rows), cursor, has_more, total: None })
        }

        fn fetch(entity: String, ids: Vec<String>) -> Result<Page, Problem> {
            check(&entity)?;
            let mut found = Vec::new();
            for id in ids {
                found.extend(sql::query(DB, "SELECT id, name FROM items WHERE id = ?1", &[Value::Text(id)])?.rows);
            }
            Ok(page(&found))
        }

        fn write(entity: String, fields: Vec<String>, changes: Vec<Change>) -> Result<Vec<Outcome>, Problem> {
            check(&entity)?;
            let name_slot = fields.iter().position(|f| f == "name");
            let statements: Vec<Statement> = changes
                .iter()
                .map(|change| {
                    let name = name_slot.and_then(|slot| change.values[slot].clone()).unwrap_or(Value::Null);
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
    static API_VERSION: [u8; 5] = *b"0.4.0";

    #[unsafe(link_section = "synchost:plugin-kind")]
    #[used]
    static PLUGIN_KIND: [u8; 9] = *b"connector";
}
