//! The change-feed cursor: the last `updated_on` returned and the ids returned
//! with it. Redmine's timestamps have whole seconds, so many records can share
//! one; the ids make a page boundary inside a second exact.

use serde::{Deserialize, Serialize};
use synchost_plugin_sdk::prelude::*;

#[derive(Default, Serialize, Deserialize)]
pub struct FeedCursor {
    #[serde(rename = "u")]
    pub updated_on: Option<String>,
    #[serde(rename = "ids", default)]
    pub seen: Vec<i64>,
}

/// A record's place in the feed: its `updated_on`, then its id.
pub fn order_key(record: &Record) -> (String, i64) {
    let updated = record.fields.iter().find(|f| f.name == "updated_on").and_then(|f| match &f.value {
        Value::Timestamp(t) | Value::Text(t) => Some(t.clone()),
        _ => None,
    });
    (updated.unwrap_or_default(), record.id.parse().unwrap_or(0))
}

impl FeedCursor {
    pub fn parse(cursor: Option<&str>) -> Result<FeedCursor, Error> {
        match cursor {
            None => Ok(FeedCursor::default()),
            Some(text) => serde_json::from_str(text).map_err(|e| {
                Error::new("bad-cursor", format!("the stored cursor `{text}` is not a redmine cursor: {e}"))
                    .with_hint("reset the pipeline's cursor so that it reads from the start")
            }),
        }
    }

    /// The records after the cursor: newer, or as new but not yet returned.
    pub fn unseen(&self, records: Vec<Record>) -> Vec<Record> {
        let Some(last) = &self.updated_on else { return records };
        records
            .into_iter()
            .filter(|r| {
                let (updated, id) = order_key(r);
                updated > *last || (updated == *last && !self.seen.contains(&id))
            })
            .collect()
    }

    /// The batch to return (records in feed order) and the cursor after it.
    pub fn advance(self, records: Vec<Record>, has_more: bool) -> ReadBatch {
        let mut next = self;
        for record in &records {
            let (updated, id) = order_key(record);
            if next.updated_on.as_deref() != Some(updated.as_str()) {
                next.updated_on = Some(updated);
                next.seen.clear();
            }
            next.seen.push(id);
        }
        let cursor = next.updated_on.is_some().then(|| serde_json::to_string(&next).expect("a cursor serializes"));
        ReadBatch { records, cursor, has_more }
    }
}
