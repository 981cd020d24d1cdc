//! A mapper built against the frozen plugin API 0.4.0 (`schemas/wit/since_v0.4.0`)
//! with wit-bindgen alone: records come as a page and are mapped and checked
//! in one call, as 0.4 had it. Left to right it upper-cases `name`; a name
//! that is empty after mapping breaks its one rule.

// Built for wasm32 only: a native build of the workspace leaves it empty.
#[cfg(target_arch = "wasm32")]
mod plugin {
    wit_bindgen::generate!({
        world: "mapper-plugin",
        path: "../../../schemas/wit/since_v0.4.0",
    });

    use exports::synchost::plugin::mapper::{Direction, Guest, Mapped, Violation};
    use synchost::plugin::types::{Field, Page, Problem, Record, Value};

    struct Shout;

    impl Guest for Shout {
        fn map_records(direction: Direction, records: Page) -> Result<Vec<Mapped>, Problem> {
            let names = records.fields;
            Ok(records
                .rows
                .into_iter()
                .map(|row| {
                    let fields: Vec<Field> = names
                        .iter()
                        .zip(row.values)
                        .filter_map(|(name, value)| value.map(|value| Field { name: name.clone(), value }))
                        .map(|field| match (&field.value, direction) {
                            (Value::Text(text), Direction::LeftToRight) => Field { value: Value::Text(text.to_uppercase()), ..field },
                            _ => field,
                        })
                        .collect();
                    match fields.iter().find(|f| f.name == "name").map(|f| &f.value) {
                        Some(Value::Text(name)) if !name.trim().is_empty() => {
                            Mapped::Ok(Record { id: row.id, version: row.version, deleted: row.deleted, fields, born: row.born })
                        }
                        _ => Mapped::Invalid(vec![Violation { field: Some("name".into()), message: "a name is required".into(), hint: Some("give the record a name".into()) }]),
                    }
                })
                .collect())
        }
    }

    export!(Shout);

    // The host reads these before it compiles the component.
    #[unsafe(link_section = "synchost:api-version")]
    #[used]
    static API_VERSION: [u8; 5] = *b"0.4.0";

    #[unsafe(link_section = "synchost:plugin-kind")]
    #[used]
    static PLUGIN_KIND: [u8; 6] = *b"mapper";
}
