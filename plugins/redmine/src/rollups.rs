//! A parent issue's roll-ups: Redmine derives a parent's dates, done ratio
//! and priority from its subtasks (Administration > Settings > Issue
//! tracking > "Parent tasks attributes", derived by default). Those values
//! are Redmine's arithmetic, not anyone's change: they are left out of a
//! parent's record when read, so they never arrive as the team's edits, and
//! left out of what is sent to a parent, where Redmine would ignore them.

use std::collections::BTreeSet;

use synchost_plugin_sdk::prelude::*;

use crate::entities::Kind;

/// The fields Redmine derives for a parent issue with its default settings.
pub const REDMINE_DEFAULT: &[&str] = &["start_date", "due_date", "done_ratio", "priority_id"];

/// Which issue fields are derived on parents: the endpoint's
/// `derived_parent_fields`, or Redmine's default.
pub fn derived_fields(setting: Option<&[String]>) -> Result<Vec<String>, Error> {
    let Some(names) = setting else { return Ok(REDMINE_DEFAULT.iter().map(|s| (*s).to_owned()).collect()) };
    for name in names {
        if !REDMINE_DEFAULT.contains(&name.as_str()) && name != "estimated_hours" {
            return Err(Error::settings(format!("derived_parent_fields names `{name}`, which Redmine never derives for a parent issue"))
                .with_hint("list some of: start_date, due_date, done_ratio, priority_id, estimated_hours (or [] when every parent attribute is independent)"));
        }
    }
    Ok(names.to_vec())
}

/// A parent issue's record without its derived fields, versioned anew.
pub fn without_derived(record: Record, derived: &[String]) -> Record {
    let mut record = record;
    record.fields.retain(|f| !derived.contains(&f.name));
    Kind::Issues.reversion(record)
}

/// Leaves the derived fields out of the records that are parents.
pub fn strip_parents(records: Vec<Record>, parents: &BTreeSet<String>, derived: &[String]) -> Vec<Record> {
    records.into_iter().map(|r| if parents.contains(&r.id) { without_derived(r, derived) } else { r }).collect()
}

/// Whether a record read through this connector is a parent's: its derived
/// fields were left out (every other issue record has every field).
pub fn is_stripped_parent(record: &Record, derived: &[String]) -> bool {
    !derived.is_empty() && derived.iter().all(|name| record.get(name).is_none())
}

/// Refuses a change that would set a derived field of parent issue `id`
/// (Redmine ignores it without an error; the host does not send one, as the
/// parent's record leaves the field out).
pub fn refuse_derived(fields: &[Field], derived: &[String], id: &str) -> Result<(), Error> {
    let asked: Vec<&str> = fields.iter().map(|f| f.name.as_str()).filter(|name| derived.iter().any(|d| d == name)).collect();
    if asked.is_empty() {
        return Ok(());
    }
    Err(Error::new("derived", format!("issue {id} is a parent: Redmine derives its {} from its subtasks and would not keep a value", asked.join(", ")))
        .with_hint("change the subtasks instead, or make the attribute independent (Administration > Settings > Issue tracking > Parent tasks attributes) and set the endpoint's derived_parent_fields to match"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parents_derived_fields_are_left_out_and_known_by_their_absence() {
        let derived = derived_fields(None).unwrap();
        let issue = Record::new("7").with("subject", "Rooms").with("due_date", Value::Date("2026-12-20".into())).with("done_ratio", 60i64).with("start_date", Value::Null).with("priority_id", 2i64);
        assert!(!is_stripped_parent(&issue, &derived));
        let parents: BTreeSet<String> = ["7".to_owned()].into();
        let stripped = strip_parents(vec![issue.clone(), Record::new("8").with("due_date", Value::Null)], &parents, &derived);
        assert_eq!(stripped[0].get("subject"), Some(&Value::Text("Rooms".into())));
        assert!(stripped[0].get("due_date").is_none() && stripped[0].get("done_ratio").is_none());
        assert!(is_stripped_parent(&stripped[0], &derived));
        assert!(stripped[1].get("due_date").is_some(), "a leaf keeps its own values");
        let fields = vec![Field { name: "due_date".into(), value: Value::Null }, Field { name: "subject".into(), value: "New".into() }];
        assert!(refuse_derived(&fields, &derived, "7").unwrap_err().problem().message.contains("derives its due_date"));
        assert!(refuse_derived(&fields[1..], &derived, "7").is_ok());
    }

    #[test]
    fn only_fields_redmine_can_derive_are_accepted() {
        assert_eq!(derived_fields(Some(&["due_date".to_owned()])).unwrap(), vec!["due_date".to_owned()]);
        assert!(derived_fields(Some(&[])).unwrap().is_empty());
        let error = derived_fields(Some(&["subject".to_owned()])).unwrap_err();
        assert!(error.problem().message.contains("subject"));
    }
}
