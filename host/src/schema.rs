//! The config's JSON Schema, generated from the config types.
//!
//! The checked-in copy is `schemas/synchost.schema.json`; a test fails when it
//! is out of date, and `synchost schema > schemas/synchost.schema.json` renews it.

/// The JSON Schema of `synchost.toml`, pretty-printed with a final newline.
pub fn config_schema_json() -> String {
    let schema = schemars::schema_for!(crate::config::Config);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
