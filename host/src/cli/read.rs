//! `synchost read ENDPOINT ENTITY`: read records through the connector plugin.

use crate::cli::output::{say};
use std::path::Path;

use super::{load_catalog, CommandError};
use crate::cli::output::{record_json, records_table};

pub async fn run(
    config: &Path,
    endpoint: &str,
    entity: &str,
    since: Option<&str>,
    limit: u32,
    json: bool,
) -> Result<(), CommandError> {
    let (_, catalog) = load_catalog(config)?;
    let instance = catalog.instance(endpoint).map_err(CommandError::Failure)?;
    let batch = instance.read(entity, since, limit).await.map_err(CommandError::Call)?;
    if json {
        let out = serde_json::json!({
            "endpoint": endpoint,
            "entity": entity,
            "records": batch.records.iter().map(record_json).collect::<Vec<_>>(),
            "cursor": batch.cursor,
            "has_more": batch.has_more,
        });
        say!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialize"));
    } else {
        if batch.records.is_empty() {
            say!("no changes");
        } else {
            say!("{}", records_table(&batch.records));
        }
        say!();
        say!("{} record(s){}", batch.records.len(), if batch.has_more { ", more waiting" } else { "" });
        if let Some(cursor) = &batch.cursor {
            say!("next: synchost read {endpoint} {entity} --since '{cursor}'");
        }
    }
    Ok(())
}
