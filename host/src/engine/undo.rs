//! Taking back what a run wrote, and making it again (L5).
//!
//! `undo RUN` restores, on the side each of the run's updates wrote to, the
//! values the run replaced (from its history); `redo RUN` writes the run's
//! values again over the restored ones. A field changed again since is not
//! overwritten: it is listed as refused with its value now. The restored
//! records are then synced at once, so the other system returns to the same
//! values (through the mapper and the conflict policy, as any change). Each
//! undo and redo is a run of its own, with its history. Creates and deletes
//! are not taken back (listed with the reason).
//!
//! Who may: an admin, any run; the holder of a scope's lock, the runs of
//! the scope's pipelines; nobody while nothing is locked (as in the seed:
//! undo belongs to the lock holder).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Ctx, Engine, Mode, RunError, RunReport};
use crate::config::Side;
use crate::model::{Change, ChangeKind, Field, Outcome, Record, Value};
use crate::state::locks::{LockRow, UndoState};
use crate::state::{HistoryEntry, HistoryRow};

/// Who asks for an undo or a redo.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub admin: bool,
}

/// Undo (the values a run replaced) or redo (the values it wrote).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Undo,
    Redo,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Undo => "undo",
            Direction::Redo => "redo",
        }
    }
}

/// One field to restore on one record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FieldRestore {
    pub field: String,
    pub now: serde_json::Value,
    pub restored: serde_json::Value,
}

/// One record an undo or redo writes, or would.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordRestore {
    pub side: Side,
    pub id: String,
    pub label: Option<String>,
    pub fields: Vec<FieldRestore>,
    /// Fields left alone: changed again since, with their value now.
    pub refused: Vec<String>,
    /// What became of the write (empty in a dry run).
    pub outcome: Option<String>,
}

/// What an undo or redo did (or, dry, would do).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UndoReport {
    pub run_id: i64,
    pub pipeline: String,
    pub direction: Direction,
    pub dry_run: bool,
    pub records: Vec<RecordRestore>,
    /// Entries of the run not taken back (creates, deletes), with why.
    pub not_undone: Vec<String>,
    /// The run that recorded it (none in a dry run).
    pub by_run: Option<i64>,
}

/// Whether `actor` may undo or redo a run of a pipeline in `scope` (with its
/// lock, if held). Pure.
pub fn may_undo(actor: &Actor, pipeline: &str, scope: Option<&str>, lock: Option<&LockRow>) -> Result<(), String> {
    if actor.admin {
        return Ok(());
    }
    let Some(scope) = scope else {
        return Err(format!("pipeline `{pipeline}` is in no scope: only an admin can undo its runs"));
    };
    match lock {
        None => Err(format!("nothing is locked: undo and redo belong to the holder of scope `{scope}`'s lock; lock it first (`synchost locks take {scope}`)")),
        Some(lock) if lock.holder != actor.name => {
            Err(format!("scope `{scope}` is locked by {} since {}: only the holder (or an admin) can undo its runs", lock.holder, lock.since))
        }
        Some(_) => Ok(()),
    }
}

/// Two values the same for a person: numbers by value, the rest as JSON. Pure.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// A stored value back in the type the record holds the field in. Pure.
fn typed_like(json: &serde_json::Value, current: Option<&Value>) -> Value {
    match (json, current) {
        (serde_json::Value::Null, _) => Value::Null,
        (serde_json::Value::String(s), Some(Value::Date(_))) => Value::Date(s.clone()),
        (serde_json::Value::String(s), Some(Value::Timestamp(_))) => Value::Timestamp(s.clone()),
        (serde_json::Value::String(s), Some(Value::Decimal(_))) => Value::Decimal(s.clone()),
        (serde_json::Value::Number(n), Some(Value::Float(_))) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        (serde_json::Value::Number(n), Some(Value::Decimal(_))) => Value::Decimal(n.to_string()),
        (other, _) => Value::from_json(other),
    }
}

/// Per record the run wrote: (side, id) -> (label, field -> (from, to)), the
/// first `from` and the last `to` of each field. Creates and deletes are
/// listed apart. Pure.
#[allow(clippy::type_complexity)]
fn written_by(entries: &[HistoryRow], synced: &dyn Fn(Side, &str) -> bool) -> (BTreeMap<(Side, String), (Option<String>, BTreeMap<String, (serde_json::Value, serde_json::Value)>)>, Vec<String>) {
    let mut records: BTreeMap<(Side, String), (Option<String>, BTreeMap<String, (serde_json::Value, serde_json::Value)>)> = BTreeMap::new();
    let mut not_undone = Vec::new();
    for entry in entries {
        let Some(side) = entry.target.as_deref().and_then(Side::parse) else { continue };
        let id = match side {
            Side::Left => entry.left_id.clone(),
            Side::Right => entry.right_id.clone(),
        };
        let name = entry.label.clone().or(id.clone()).unwrap_or_default();
        match entry.action.as_str() {
            "update" | "undo" | "redo" => {}
            "create" => {
                not_undone.push(format!("{side} {name}: created by the run (creates are not taken back; delete it there if it should go)"));
                continue;
            }
            "delete" => {
                not_undone.push(format!("{side} {name}: deleted by the run (deletes are not taken back)"));
                continue;
            }
            _ => continue,
        }
        let Some(id) = id else { continue };
        let Some(fields) = entry.fields.as_object() else { continue };
        let record = records.entry((side, id)).or_insert_with(|| (entry.label.clone(), BTreeMap::new()));
        for (field, change) in fields {
            if !synced(side, field) {
                continue;
            }
            let (from, to) = (change["from"].clone(), change["to"].clone());
            record.1.entry(field.clone()).and_modify(|kept| kept.1 = to.clone()).or_insert((from, to));
        }
    }
    records.retain(|_, (_, fields)| !fields.is_empty());
    (records, not_undone)
}

impl Engine {
    /// Undoes or redoes a run; with `dry_run`, only says what it would do.
    pub async fn undo_run(&self, run_id: i64, direction: Direction, actor: &Actor, dry_run: bool) -> Result<UndoReport, RunError> {
        let refuse = |message: String, hint: &str| RunError::Setup { message, hint: hint.to_owned() };
        let pipeline = self.state.run_pipeline(run_id)?.ok_or_else(|| refuse(format!("there is no run {run_id}"), "list a pipeline's runs with `synchost runs PIPELINE`"))?;
        let scope = self.scope_of(&pipeline).map(|(name, _)| name.to_owned());
        let lock = match &scope {
            Some(scope) => self.state.scope_lock(scope)?,
            None => None,
        };
        may_undo(actor, &pipeline, scope.as_deref(), lock.as_ref()).map_err(|message| RunError::Forbidden { message, hint: "ask an admin, or the holder of the lock".into() })?;
        match (direction, self.state.undo_state(run_id)?) {
            (Direction::Undo, Some(UndoState::Undone)) => return Err(refuse(format!("run {run_id} is undone already"), &format!("make it again with `synchost redo {run_id}`"))),
            (Direction::Redo, None | Some(UndoState::Redone)) => return Err(refuse(format!("run {run_id} is not undone: there is nothing to redo"), &format!("take it back with `synchost undo {run_id}`"))),
            _ => {}
        }
        let mut ctx = self.context(&pipeline, if dry_run { Mode::DryRun } else { Mode::Apply }).await?;
        let synced = |side: Side, field: &str| ctx.config.fields.keys().any(|left| ctx.config.name_on(side, left) == field);
        let (written, not_undone) = written_by(&self.state.run_writes(run_id)?, &synced);
        let mut records = Vec::new();
        for side in [Side::Left, Side::Right] {
            let ids: Vec<String> = written.keys().filter(|(s, _)| *s == side).map(|(_, id)| id.clone()).collect();
            if ids.is_empty() {
                continue;
            }
            let current: BTreeMap<String, Record> = ctx.fetch(side, &ids).await?.into_iter().map(|r| (r.id.clone(), r)).collect();
            for id in ids {
                let (label, fields) = &written[&(side, id.clone())];
                records.push(restore_of(side, &id, label.clone(), fields, current.get(&id), direction));
            }
        }
        let mut report = UndoReport { run_id, pipeline: pipeline.clone(), direction, dry_run, records, not_undone, by_run: None };
        if dry_run {
            return Ok(report);
        }
        let by_run = self.state.begin_run(&pipeline, &format!("{} of run {run_id} by {}", direction.as_str(), actor.name))?;
        ctx.run_id = Some(by_run);
        ctx.undoing = true;
        let mut counts = RunReport { run_id: Some(by_run), ..RunReport::default() };
        let outcome = self.write_restores(&ctx, direction, run_id, &mut report, &mut counts).await;
        let error = outcome.as_ref().err().map(|e| (e.to_string(), e.hint()));
        self.state.finish_run(by_run, &counts.counts, error.as_ref().map(|(m, h)| (m.as_str(), h.as_deref())))?;
        outcome?;
        let state = if direction == Direction::Undo { UndoState::Undone } else { UndoState::Redone };
        self.state.record_undo(run_id, state, &actor.name, Some(by_run))?;
        let restored = report.records.iter().filter(|r| r.outcome.as_deref() == Some("restored")).count();
        self.state.event("info", Some(&pipeline), Some(by_run), &format!("run {run_id} {} by {}: {restored} records restored", if direction == Direction::Undo { "undone" } else { "redone" }, actor.name), None)?;
        report.by_run = Some(by_run);
        Ok(report)
    }

    /// Writes the restores, records them, and syncs the restored records to the other side.
    async fn write_restores(&self, ctx: &Ctx<'_>, direction: Direction, run_id: i64, report: &mut UndoReport, run: &mut RunReport) -> Result<(), RunError> {
        for side in [Side::Left, Side::Right] {
            let chosen: Vec<usize> = (0..report.records.len()).filter(|&i| report.records[i].side == side && !report.records[i].fields.is_empty()).collect();
            if chosen.is_empty() {
                continue;
            }
            let current: BTreeMap<String, Record> =
                ctx.fetch(side, &chosen.iter().map(|&i| report.records[i].id.clone()).collect::<Vec<_>>()).await?.into_iter().map(|r| (r.id.clone(), r)).collect();
            let changes: Vec<Change> = chosen
                .iter()
                .map(|&i| {
                    let record = &report.records[i];
                    let now = current.get(&record.id);
                    Change {
                        origin: format!("{}/{}/{run_id}", ctx.name, direction.as_str()),
                        target_id: Some(record.id.clone()),
                        expected_version: now.and_then(|r| r.version.clone()),
                        kind: ChangeKind::Upsert,
                        repeated: false,
                        on_behalf_of: None,
                        fields: record.fields.iter().map(|f| Field { name: f.field.clone(), value: typed_like(&f.restored, now.and_then(|r| r.get(&f.field))) }).collect(),
                    }
                })
                .collect();
            let outcomes = ctx.write(side, &changes).await?;
            let mut commit = crate::state::Commit::default();
            let mut applied = Vec::new();
            for (&i, outcome) in chosen.iter().zip(outcomes) {
                let record = &mut report.records[i];
                record.outcome = Some(match &outcome {
                    Outcome::Applied(done) => {
                        applied.push(done.id.clone());
                        "restored".to_owned()
                    }
                    Outcome::Conflict(_) => "not written: the record changed while it was being restored".to_owned(),
                    Outcome::Rejected(problem) => format!("not written: {}: {}", problem.code, problem.message),
                });
                if !matches!(outcome, Outcome::Applied(_)) {
                    continue;
                }
                run.counts.updated += 1;
                let (left_id, right_id) = match side {
                    Side::Left => (Some(record.id.clone()), None),
                    Side::Right => (None, Some(record.id.clone())),
                };
                commit.history.push(HistoryEntry {
                    left_id,
                    right_id,
                    action: if direction == Direction::Undo { "undo" } else { "redo" },
                    target: Some(side),
                    origin: None,
                    fields: record.fields.iter().map(|f| (f.field.clone(), Some(Value::from_json(&f.now)), Value::from_json(&f.restored))).collect(),
                    rule: format!("{} of run {run_id}", direction.as_str()),
                    message: (!record.refused.is_empty()).then(|| format!("left alone, changed since the run: {}", record.refused.join(", "))),
                    label: record.label.clone(),
                });
            }
            self.state.apply(ctx.name, ctx.run_id, &commit)?;
            // The restored values reach the other system as any change does.
            if !applied.is_empty() {
                let records = ctx.fetch(side, &applied).await?;
                let plan = self.plan_batch(ctx, side, &records).await?;
                self.finish_batch(ctx, side, plan, run).await?;
            }
        }
        Ok(())
    }
}

/// What restoring one record means: per field, the value to write when the
/// record still holds what the run (or the undo) left there; otherwise the
/// field is refused with its value now. Pure.
fn restore_of(
    side: Side,
    id: &str,
    label: Option<String>,
    fields: &BTreeMap<String, (serde_json::Value, serde_json::Value)>,
    current: Option<&Record>,
    direction: Direction,
) -> RecordRestore {
    let mut restore = RecordRestore { side, id: id.to_owned(), label, fields: Vec::new(), refused: Vec::new(), outcome: None };
    let Some(current) = current else {
        restore.refused.push("the record is gone".to_owned());
        return restore;
    };
    for (field, (from, to)) in fields {
        let (expected, restored) = match direction {
            Direction::Undo => (to, from),
            Direction::Redo => (from, to),
        };
        let now = current.get(field).map_or(serde_json::Value::Null, Value::to_json);
        if same(&now, restored) {
            continue;
        }
        if same(&now, expected) {
            restore.fields.push(FieldRestore { field: field.clone(), now, restored: restored.clone() });
        } else {
            restore.refused.push(format!("{field} (changed since the run: now {now}, the run left {expected})"));
        }
    }
    restore
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lock(holder: &str) -> LockRow {
        LockRow {
            scope: "replan".into(),
            holder: holder.into(),
            endpoint: "plan".into(),
            since: "2026-12-02T10:00:00Z".into(),
            last_activity: "2026-12-02T10:00:00Z".into(),
            how: crate::state::locks::LockHow::Lock,
        }
    }

    #[test]
    fn only_the_holder_or_an_admin_undoes_and_nobody_while_nothing_is_locked() {
        let hana = Actor { name: "hana".into(), admin: false };
        let admin = Actor { name: "root".into(), admin: true };
        assert!(may_undo(&hana, "tasks", Some("replan"), Some(&lock("hana"))).is_ok());
        assert!(may_undo(&hana, "tasks", Some("replan"), Some(&lock("lee"))).unwrap_err().contains("locked by lee"));
        assert!(may_undo(&hana, "tasks", Some("replan"), None).unwrap_err().contains("nothing is locked"));
        assert!(may_undo(&hana, "tasks", None, None).unwrap_err().contains("only an admin"));
        assert!(may_undo(&admin, "tasks", Some("replan"), None).is_ok());
    }

    #[test]
    fn a_field_changed_since_the_run_is_refused_not_overwritten() {
        let record = Record {
            id: "7".into(),
            version: None,
            deleted: false,
            fields: vec![Field { name: "due_date".into(), value: Value::Date("2026-11-09".into()) }, Field { name: "estimated_hours".into(), value: Value::Float(30.0) }],
            born: None,
        };
        let fields = BTreeMap::from([
            ("due_date".to_owned(), (json!("2026-11-04"), json!("2026-11-06"))),
            ("estimated_hours".to_owned(), (json!(24.0), json!(30))),
        ]);
        let undo = restore_of(Side::Right, "7", None, &fields, Some(&record), Direction::Undo);
        assert_eq!(undo.fields.len(), 1);
        assert_eq!((undo.fields[0].field.as_str(), &undo.fields[0].restored), ("estimated_hours", &json!(24.0)));
        assert!(undo.refused[0].starts_with("due_date (changed since the run"), "{:?}", undo.refused);
        // Typed as the record holds it.
        assert_eq!(typed_like(&json!("2026-11-04"), record.get("due_date")), Value::Date("2026-11-04".into()));
        assert_eq!(typed_like(&json!(24), record.get("estimated_hours")), Value::Float(24.0));
    }

    #[test]
    fn a_run_that_wrote_a_field_twice_restores_its_first_value() {
        let entry = |action: &str, from: i64, to: i64| HistoryRow {
            id: 1,
            run_id: Some(1),
            at: String::new(),
            left_id: Some("1".into()),
            right_id: Some("7".into()),
            action: action.into(),
            target: Some("right".into()),
            origin: Some("left".into()),
            fields: json!({ "estimated_hours": { "from": from, "to": to }, "notes": { "from": null, "to": "synchost: ..." } }),
            rule: String::new(),
            message: None,
            label: Some("Cabling".into()),
            records: None,
        };
        let mut created = entry("create", 0, 1);
        created.right_id = Some("8".into());
        let (written, not_undone) = written_by(&[entry("update", 24, 30), entry("update", 30, 32), created], &|_, field| field != "notes");
        assert_eq!(written[&(Side::Right, "7".to_owned())].1["estimated_hours"], (json!(24), json!(32)));
        assert!(!written[&(Side::Right, "7".to_owned())].1.contains_key("notes"));
        assert_eq!(not_undone.len(), 1);
    }
}
