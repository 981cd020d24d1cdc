//! A connector's outcomes, checked before they become links.
//!
//! A link must pair one record with one record. An outcome that says a
//! change was applied without naming the record, that gives two new records
//! the same id, or that gives a new record the id of a record already linked
//! to another, would break that: such an outcome fails its own change (a
//! failed item naming the connector) and the rest of the batch commits.

use std::collections::HashSet;

use crate::model::{Change, Outcome, Problem};

/// The ids of new records the connector reports, for looking up links.
pub fn created_ids<'a>(changes: &[Change], outcomes: &'a [Outcome]) -> Vec<&'a str> {
    changes
        .iter()
        .zip(outcomes)
        .filter_map(|(change, outcome)| match (change.target_id.as_deref(), outcome) {
            (None, Outcome::Applied(applied)) => Some(applied.id.as_str()),
            _ => None,
        })
        .collect()
}

/// `outcomes` with each one that cannot become a link turned into a
/// rejection naming `connector`. `linked` holds the ids (among the created
/// ones) already linked to a record in this pipeline. Pure.
pub fn checked(connector: &str, changes: &[Change], outcomes: Vec<Outcome>, linked: &HashSet<String>) -> Vec<Outcome> {
    let mut created: HashSet<String> = HashSet::new();
    changes
        .iter()
        .zip(outcomes)
        .map(|(change, outcome)| {
            let Outcome::Applied(applied) = &outcome else { return outcome };
            let refuse = |message: String| {
                Outcome::Rejected(Problem {
                    code: "bad-outcome".into(),
                    message,
                    hint: Some(format!(
                        "a bug in the connector of `{connector}`: report it to its vendor; check the target for the record (origin {}) before retrying",
                        change.origin
                    )),
                    retryable: false,
                })
            };
            if applied.id.trim().is_empty() {
                return refuse(format!("`{connector}` reported the change applied but named no record id"));
            }
            if change.target_id.is_none() {
                if linked.contains(&applied.id) {
                    return refuse(format!(
                        "`{connector}` gave the new record id `{}`, which is already linked to another record",
                        applied.id
                    ));
                }
                if !created.insert(applied.id.clone()) {
                    return refuse(format!("`{connector}` gave the same id `{}` to two new records of one batch", applied.id));
                }
            }
            outcome
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Applied, ChangeKind};

    fn create(origin: &str) -> Change {
        Change { origin: origin.into(), target_id: None, expected_version: None, kind: ChangeKind::Upsert, fields: Vec::new(), repeated: false, on_behalf_of: None }
    }

    fn applied(id: &str) -> Outcome {
        Outcome::Applied(Applied { id: id.into(), version: None })
    }

    fn rejected(outcome: &Outcome) -> Option<&str> {
        match outcome {
            Outcome::Rejected(problem) => Some(problem.message.as_str()),
            _ => None,
        }
    }

    #[test]
    fn empty_duplicate_and_already_linked_ids_fail_only_their_change() {
        let changes = [create("l/1"), create("l/2"), create("l/3"), create("l/4"), create("l/5")];
        let outcomes = vec![applied("7"), applied(""), applied("7"), applied("9"), applied("8")];
        let linked: HashSet<String> = ["9".to_owned()].into();
        let checked = checked("copy", &changes, outcomes, &linked);
        assert_eq!(rejected(&checked[0]), None);
        assert!(rejected(&checked[1]).unwrap().contains("named no record id"));
        assert!(rejected(&checked[2]).unwrap().contains("same id `7`"));
        assert!(rejected(&checked[3]).unwrap().contains("already linked"));
        assert_eq!(rejected(&checked[4]), None);
    }

    #[test]
    fn updates_keep_their_ids() {
        let mut update = create("l/1");
        update.target_id = Some("9".into());
        let linked: HashSet<String> = ["9".to_owned()].into();
        let checked = checked("copy", &[update], vec![applied("9")], &linked);
        assert_eq!(rejected(&checked[0]), None);
    }
}
