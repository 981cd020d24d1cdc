//! The change-feed cursor: the last `updated_on` returned and the records
//! (id and version) returned with it. Redmine's timestamps have whole seconds,
//! so many records can share one: the ids make a page boundary inside a second
//! exact, and the versions (which carry a digest of the values) let a record
//! changed again within that same second through.

use serde::{Deserialize, Serialize};
use synchost_plugin_sdk::prelude::*;

#[derive(Default, Serialize, Deserialize)]
pub struct FeedCursor {
    #[serde(rename = "u")]
    pub updated_on: Option<String>,
    /// Returned at `updated_on`: (id, version).
    #[serde(default)]
    pub seen: Vec<(i64, String)>,
    /// Cursors written before versions were kept: ids only.
    #[serde(rename = "ids", default, skip_serializing)]
    pub seen_ids: Vec<i64>,
    /// When the last whole read started (seconds since 1970), for what the
    /// feed cannot see (time logged on issues).
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub swept_at: Option<u64>,
    /// Whether the last read reached the end of the feed.
    #[serde(rename = "e", default)]
    pub caught_up: bool,
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

    /// The cursor to read from at `now`: this one, or the start of the feed
    /// once `every` seconds have passed since the last whole read (only
    /// between passes, so a long read is never started over). Pure.
    pub fn or_whole_read(self, now: u64, every: u64) -> FeedCursor {
        let due = self.swept_at.is_none_or(|at| now.saturating_sub(at) >= every);
        if self.updated_on.is_none() || (self.caught_up && due) {
            return FeedCursor { swept_at: Some(now), ..FeedCursor::default() };
        }
        self
    }

    /// The records after the cursor: newer, or as new but not yet returned.
    pub fn unseen(&self, records: Vec<Record>) -> Vec<Record> {
        let Some(last) = &self.updated_on else { return records };
        records
            .into_iter()
            .filter(|r| {
                let (updated, id) = order_key(r);
                let version = r.version.clone().unwrap_or_default();
                updated > *last || (updated == *last && !self.seen_ids.contains(&id) && !self.seen.contains(&(id, version)))
            })
            .collect()
    }

    /// The batch to return (records in feed order) and the cursor after it.
    pub fn advance(self, records: Vec<Record>, has_more: bool) -> ReadBatch {
        let mut next = self;
        next.caught_up = !has_more;
        for record in &records {
            let (updated, id) = order_key(record);
            if next.updated_on.as_deref() != Some(updated.as_str()) {
                next.updated_on = Some(updated);
                next.seen.clear();
                next.seen_ids.clear();
            }
            next.seen.retain(|(seen, _)| *seen != id);
            next.seen.push((id, record.version.clone().unwrap_or_default()));
        }
        let cursor = next.updated_on.is_some().then(|| serde_json::to_string(&next).expect("a cursor serializes"));
        ReadBatch { records, cursor, has_more }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i64, updated_on: &str, version: &str) -> Record {
        let mut record = Record::new(id.to_string()).with("updated_on", Value::Timestamp(updated_on.into()));
        record.version = Some(version.into());
        record
    }

    #[test]
    fn a_record_changed_again_within_the_cursors_second_is_returned_again() {
        let first = FeedCursor::default().advance(vec![record(1, "2026-11-02T10:00:00Z", "a"), record(2, "2026-11-02T10:00:00Z", "b")], false);
        let cursor = FeedCursor::parse(first.cursor.as_deref()).unwrap();
        let again = cursor.unseen(vec![record(1, "2026-11-02T10:00:00Z", "a"), record(2, "2026-11-02T10:00:00Z", "c")]);
        assert_eq!(again.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["2"]);
    }

    #[test]
    fn the_feed_is_read_whole_again_between_passes_once_the_time_has_come() {
        let first = FeedCursor::default().or_whole_read(1000, 300);
        assert_eq!(first.swept_at, Some(1000));
        let read = first.advance(vec![record(1, "2026-11-02T10:00:00Z", "a")], true);
        let cursor = FeedCursor::parse(read.cursor.as_deref()).unwrap();
        // Due, but in the middle of a pass: it goes on.
        let cursor = cursor.or_whole_read(1400, 300);
        assert!(cursor.updated_on.is_some());
        let read = cursor.advance(vec![record(2, "2026-11-02T10:00:01Z", "b")], false);
        let cursor = FeedCursor::parse(read.cursor.as_deref()).unwrap();
        assert!(FeedCursor::parse(read.cursor.as_deref()).unwrap().or_whole_read(1200, 300).updated_on.is_some(), "not due yet");
        let again = cursor.or_whole_read(1400, 300);
        assert_eq!((again.updated_on, again.swept_at), (None, Some(1400)));
    }

    #[test]
    fn cursors_with_ids_only_still_skip_what_they_returned() {
        let cursor = FeedCursor::parse(Some(r#"{"u":"2026-11-02T10:00:00Z","ids":[1]}"#)).unwrap();
        let unseen = cursor.unseen(vec![record(1, "2026-11-02T10:00:00Z", "a"), record(3, "2026-11-02T10:00:00Z", "d")]);
        assert_eq!(unseen.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["3"]);
    }
}
