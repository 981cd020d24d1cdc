//! A mapper built against the frozen plugin API 0.3.0 (`schemas/wit/since_v0.3.0`)
//! with wit-bindgen alone: it maps in one call and validates in another, as
//! 0.3 had it. Left to right it upper-cases `name`; a name that is empty
//! after mapping breaks its one rule.

// Built for wasm32 only: a native build of the workspace leaves it empty.
#[cfg(target_arch = "wasm32")]
mod plugin {
    wit_bindgen::generate!({
        world: "mapper-plugin",
        path: "../../../schemas/wit/since_v0.3.0",
    });

    use exports::synchost::plugin::mapper::{Direction, Guest, Mapped, Violation};
    use synchost::plugin::types::{Problem, Record, Value};

    struct Shout;

    impl Guest for Shout {
        fn map_records(direction: Direction, records: Vec<Record>) -> Result<Vec<Mapped>, Problem> {
            Ok(records
                .into_iter()
                .map(|mut record| {
                    if direction == Direction::LeftToRight {
                        for field in &mut record.fields {
                            if let Value::Text(text) = &field.value {
                                field.value = Value::Text(text.to_uppercase());
                            }
                        }
                    }
                    Mapped::Ok(record)
                })
                .collect())
        }

        fn validate_records(_direction: Direction, records: Vec<Record>) -> Result<Vec<Vec<Violation>>, Problem> {
            Ok(records
                .iter()
                .map(|record| match record.fields.iter().find(|f| f.name == "name").map(|f| &f.value) {
                    Some(Value::Text(name)) if !name.trim().is_empty() => Vec::new(),
                    _ => vec![Violation { field: Some("name".into()), message: "a name is required".into(), hint: Some("give the record a name".into()) }],
                })
                .collect())
        }
    }

    export!(Shout);

    // The host reads these before it compiles the component.
    #[unsafe(link_section = "synchost:api-version")]
    #[used]
    static API_VERSION: [u8; 5] = *b"0.3.0";

    #[unsafe(link_section = "synchost:plugin-kind")]
    #[used]
    static PLUGIN_KIND: [u8; 6] = *b"mapper";
}
