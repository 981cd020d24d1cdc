//! `[pipelines.NAME]`: keep one entity of one endpoint in sync with one of another.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::values::{InstanceName, Schedule, Timeout};
use crate::model::{Record, Value};

/// One pipeline: left and right side, the field correspondence, conflict and
/// delete handling, schedule and retry.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The left side: an endpoint and one of its entities.
    pub left: SideConfig,
    /// The right side.
    pub right: SideConfig,
    /// The fields kept in sync, by their left name (C5). Fields not listed are never touched.
    pub fields: BTreeMap<String, FieldRule>,
    /// A mapper instance (a key of `[mappers]`) applied to records in left field
    /// names: left to right before renaming, right to left after renaming.
    #[schemars(with = "Option<InstanceName>")]
    pub mapper: Option<Spanned<InstanceName>>,
    /// What happens when a field changed on both sides since the last sync.
    /// Default: the policy of the pipeline's `data` category, else `manual`
    /// (parked for an admin, nothing is overwritten).
    pub conflict: Option<ConflictPolicy>,
    /// What kind of data the pipeline syncs (L1): `plan` (lockable; first
    /// writer wins, the later one is told to refresh), `actuals` (never
    /// locked; last writer wins, silently) or `other` (first writer wins,
    /// with a warning). Sets the default conflict policy of its fields and
    /// whether a scope lock holds their changes back; a field may say its own.
    pub data: Option<DataCategory>,
    /// A field on each side that takes synchost's notes to the people there
    /// (e.g. Redmine's `notes`, which becomes a journal entry; a plan task's
    /// `notes`): why their change lost to a first writer and must be
    /// refreshed (L1), that their change is held while someone holds the
    /// scope's lock (L2). Without it, both are in the history, the events
    /// and the dashboard only.
    #[serde(default)]
    pub notes: NoteFields,
    /// How deletes propagate. Default `soft`.
    #[serde(default)]
    pub deletes: DeletePolicy,
    /// How often the linked records of a side that keeps no tombstones
    /// (Redmine, a table without soft delete) are looked up to find those
    /// deleted there outright, which no change feed shows. Each look-up
    /// fetches every linked id of that side. Default `10m`; the first run of a
    /// host always looks.
    #[serde(default = "default_deletes_check")]
    #[schemars(with = "Option<Timeout>")]
    pub deletes_check: Timeout,
    /// Which side may create records on the other. Default both.
    #[serde(default)]
    pub create: Flow,
    /// When the pipeline runs: an interval from `1s`, or a cron expression
    /// (`cron:*/5 * * * *`, seconds field optional). Default `30s`.
    #[serde(default)]
    pub schedule: Schedule,
    /// Fields (left names) that must have a value for a record to be written.
    #[serde(default)]
    pub required: Vec<String>,
    /// Fields (left names) that identify the same record on both sides, e.g.
    /// `["email"]`. On a pipeline's first run (and on `sync --match`) records
    /// that exist on both sides with equal values (trimmed, case-insensitive)
    /// are linked instead of created again; their differences are then settled
    /// by the conflict policy. Empty (the default): no matching.
    #[serde(default)]
    pub match_on: Vec<String>,
    /// Records per read and write batch. Default 500.
    #[serde(default = "default_batch")]
    pub batch_size: u32,
    /// Retry of failed runs and resubmission of failed items.
    #[serde(default)]
    pub retry: RetryConfig,
    /// The category this pipeline is shown under in `status` (e.g. "master data").
    pub category: Option<String>,
    /// Changes flowing this way wait in the approval queue for a person's
    /// decision before they are written (P2).
    pub approval: Option<ApprovalConfig>,
}

/// The approval stage of a pipeline.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConfig {
    /// The direction whose changes need approval, e.g. `right-to-left` for
    /// the team's updates to the plan.
    pub direction: Flow,
    /// Approve every change at once: nothing waits. Default false.
    #[serde(default)]
    pub auto_approve: bool,
    /// A field of the changed (source) record that takes a note when a change
    /// is rejected: who rejected which values, and why (for Redmine issues,
    /// `notes`, which becomes a journal entry). Without it the rejection is
    /// only recorded in synchost.
    pub note_field: Option<String>,
    /// Fields (by their left name) whose changes are written at once, without
    /// approval: actuals such as the time spent, which nobody approves. The
    /// rest of the same change still waits.
    #[serde(default)]
    pub exempt: Vec<String>,
}

impl ApprovalConfig {
    /// Whether changes read on `source` wait for approval.
    pub fn applies_to(&self, source: Side) -> bool {
        !self.auto_approve && self.direction != Flow::Both && self.direction.allows(source)
    }
}

fn default_deletes_check() -> Timeout {
    Timeout(std::time::Duration::from_secs(600))
}

fn default_batch() -> u32 {
    500
}

/// An endpoint and one of its entities.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SideConfig {
    /// A key of `[endpoints]`.
    #[schemars(with = "InstanceName")]
    pub endpoint: Spanned<InstanceName>,
    /// One of the endpoint's entities.
    pub entity: String,
    /// Only records with these field values are synced from this side (its
    /// scope), e.g. `{ publish = true }` for the tasks flagged for publishing.
    /// A record outside it is not created on the other side; a linked record
    /// that leaves it fails with a hint to set the value back (what was
    /// published stays published); a record created on this side gets these
    /// values. Pipelines that share an entity tell their records apart by it.
    #[serde(default, rename = "where")]
    pub scope: BTreeMap<String, ScopeValue>,
    /// Conditions every record from this side must meet before it is synced,
    /// per field (e.g. `assignments = { at_most = 1, hint = "..." }`); a
    /// record that breaks one fails with all its violations and the hints.
    #[serde(default)]
    pub checks: BTreeMap<String, FieldCheck>,
}

impl SideConfig {
    /// Whether a record is in this side's scope (`where`).
    pub fn in_scope(&self, record: &Record) -> bool {
        self.scope.iter().all(|(field, wanted)| record.get(field).is_some_and(|value| wanted.matches(value)))
    }
}

/// A value in a scope (`where`): a boolean, a number or a text.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ScopeValue {
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(String),
}

impl ScopeValue {
    pub fn to_value(&self) -> Value {
        match self {
            ScopeValue::Boolean(b) => Value::Boolean(*b),
            ScopeValue::Integer(i) => Value::Integer(*i),
            ScopeValue::Float(f) => Value::Float(*f),
            ScopeValue::Text(t) => Value::Text(t.clone()),
        }
    }

    /// Numbers compare by value, texts with dates and timestamps by their text.
    pub fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (ScopeValue::Boolean(a), Value::Boolean(b)) => a == b,
            (ScopeValue::Integer(a), Value::Integer(b)) => a == b,
            (ScopeValue::Integer(_) | ScopeValue::Float(_), Value::Integer(_) | Value::Float(_) | Value::Decimal(_)) => {
                self.to_value().as_f64() == value.as_f64()
            }
            (ScopeValue::Text(a), Value::Text(b) | Value::Date(b) | Value::Timestamp(b) | Value::Decimal(b)) => a == b,
            _ => false,
        }
    }
}

/// A condition on one field of every record from a side.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldCheck {
    /// The value is a number no greater than this.
    pub at_most: Option<f64>,
    /// The value is empty (none, or an empty text). Default false.
    #[serde(default)]
    pub empty: bool,
    /// What the user should do about a record that breaks the check.
    pub hint: String,
}

impl FieldCheck {
    /// Why `value` of `field` breaks this check, if it does.
    pub fn broken_by(&self, field: &str, value: Option<&Value>) -> Option<String> {
        let value = value.unwrap_or(&Value::Null);
        let blank = matches!(value, Value::Null) || matches!(value, Value::Text(t) if t.is_empty());
        if self.empty && !blank {
            return Some(format!("`{field}` must be empty, but is {}", value.to_text()));
        }
        match (self.at_most, value.as_f64()) {
            (Some(limit), Some(number)) if number > limit => Some(format!("`{field}` is {}, at most {limit} is allowed", value.to_text())),
            (Some(limit), None) if !blank => Some(format!("`{field}` should be a number at most {limit}, but is {}", value.to_text())),
            _ => None,
        }
    }
}

/// How one field is kept in sync.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// The field's name on the right side. Default: the same as on the left.
    pub right: Option<String>,
    /// Which way changes flow (C2). Default `both`.
    #[serde(default)]
    pub direction: Flow,
    /// The conflict policy of this field, overriding the pipeline's (and its
    /// category's).
    pub conflict: Option<ConflictPolicy>,
    /// This field's kind of data, overriding the pipeline's `data` (e.g. the
    /// time spent on a planned task is `actuals`).
    pub data: Option<DataCategory>,
    /// For the `mirror` policy: where each side keeps the other side's value.
    pub mirror: Option<MirrorFields>,
    /// The field holds the id of a record that this other pipeline syncs (e.g.
    /// an entry's `project_id` and pipeline `projects`): the id is translated to
    /// the linked record's id on the other side. A record whose reference has no
    /// link yet fails with a hint saying what to create or map, and is
    /// resubmitted when that pipeline links new records.
    pub references: Option<String>,
    /// Once the record is linked, this field may not change on either side
    /// (e.g. a task's publish flag and work item type after it was published):
    /// a change fails the record with a hint to set the value back. Default false.
    #[serde(default)]
    pub frozen: bool,
}

/// Kinds of data, each with its own rule for concurrent edits (L1), as a
/// scheduling tool settles them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DataCategory {
    /// Schedules, tasks, assignments: lockable by a scope lock; unlocked,
    /// the first writer wins and the later one is told to refresh.
    Plan,
    /// Time spent, progress: never locked; the last writer wins, silently.
    Actuals,
    /// Other project information: the first writer wins, with a warning.
    Other,
}

impl DataCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            DataCategory::Plan => "plan",
            DataCategory::Actuals => "actuals",
            DataCategory::Other => "other",
        }
    }

    /// The policy a field of this kind gets unless it names one.
    pub fn default_policy(self) -> ConflictPolicy {
        match self {
            DataCategory::Plan | DataCategory::Other => ConflictPolicy::FirstWriterWins,
            DataCategory::Actuals => ConflictPolicy::LastWriterWins,
        }
    }

    /// Whether a scope lock holds back changes of this kind.
    pub fn lockable(self) -> bool {
        self == DataCategory::Plan
    }
}

/// The fields that take synchost's notes, per side.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteFields {
    /// A field of the left entity.
    pub left: Option<String>,
    /// A field of the right entity.
    pub right: Option<String>,
}

impl NoteFields {
    pub fn on(&self, side: Side) -> Option<&str> {
        match side {
            Side::Left => self.left.as_deref(),
            Side::Right => self.right.as_deref(),
        }
    }
}

/// Which way changes flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// Both ways.
    #[default]
    Both,
    /// Only from left to right (export only, seen from the left).
    LeftToRight,
    /// Only from right to left.
    RightToLeft,
    /// Not synced.
    Off,
}

impl Flow {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Both => "both",
            Flow::LeftToRight => "left-to-right",
            Flow::RightToLeft => "right-to-left",
            Flow::Off => "off",
        }
    }

    /// Whether changes on `from` flow to the other side.
    pub fn allows(self, from: Side) -> bool {
        matches!((self, from), (Flow::Both, _) | (Flow::LeftToRight, Side::Left) | (Flow::RightToLeft, Side::Right))
    }
}

/// A side of a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
}

impl Side {
    /// The state of a link whose record on this side was deleted while the
    /// other side's was kept.
    pub fn deleted_state(self) -> &'static str {
        match self {
            Side::Left => "left-deleted",
            Side::Right => "right-deleted",
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }

    pub fn parse(text: &str) -> Option<Side> {
        match text {
            "left" => Some(Side::Left),
            "right" => Some(Side::Right),
            _ => None,
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens when a field changed on both sides since the last sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// The left value wins.
    LeftWins,
    /// The right value wins.
    RightWins,
    /// The record changed last wins (by the records' own timestamps; left on a tie).
    LastWriterWins,
    /// The record changed first wins; the later change is rejected with a
    /// warning that its side must refresh (L1).
    FirstWriterWins,
    /// Each side keeps its own value; the other side's value is written to the
    /// field's `mirror` fields (two sets of books, P10).
    Mirror,
    /// Parked in the conflict queue until an admin picks a side or a value.
    #[default]
    Manual,
}

impl ConflictPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::LeftWins => "left-wins",
            ConflictPolicy::RightWins => "right-wins",
            ConflictPolicy::LastWriterWins => "last-writer-wins",
            ConflictPolicy::FirstWriterWins => "first-writer-wins",
            ConflictPolicy::Mirror => "mirror",
            ConflictPolicy::Manual => "manual",
        }
    }
}

/// Where each side keeps the other side's value: under the `mirror` policy,
/// or always (two sets of books).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MirrorFields {
    /// A field on the left that receives the right's value.
    pub left: Option<String>,
    /// A field on the right that receives the left's value.
    pub right: Option<String>,
    /// Two sets of books ("keep both"): every change of the other side's value
    /// goes to the mirror field, and a side with a mirror field keeps its own
    /// value in the field itself once the record exists (a new record starts
    /// with the other side's value in both). E.g. the team's estimate stays
    /// in Redmine's `estimated_hours` while the plan's goes to `Plan work`.
    /// Default false: the mirror fields are written only when both sides
    /// changed the field (the `mirror` conflict policy).
    #[serde(default)]
    pub always: bool,
}

/// How deletes propagate (C8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeletePolicy {
    /// A tombstone on one side becomes a tombstone on the other, when both
    /// entities have soft delete; otherwise the delete is recorded, not propagated.
    #[default]
    Soft,
    /// A tombstone on one side deletes the other's record, soft or hard.
    Hard,
    /// Deletes are recorded, never propagated.
    Ignore,
}

/// Retry of failed runs and resubmission of failed items (T3, P4).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// First wait after a failed run; doubles each time, with jitter. Default `5s`.
    #[serde(default = "first_backoff")]
    pub backoff: Timeout,
    /// Longest wait between attempts. Default `5m`.
    #[serde(default = "max_backoff")]
    pub max_backoff: Timeout,
    /// How often failed items are resubmitted. Default `1h`.
    #[serde(default = "resubmit")]
    pub resubmit: Timeout,
    /// A pipeline with no successful run within this many periods is `stalled`. Default 5.
    #[serde(default = "stalled_after")]
    pub stalled_after: u32,
}

fn first_backoff() -> Timeout {
    Timeout(std::time::Duration::from_secs(5))
}
fn max_backoff() -> Timeout {
    Timeout(std::time::Duration::from_secs(300))
}
fn resubmit() -> Timeout {
    Timeout(std::time::Duration::from_secs(3600))
}
fn stalled_after() -> u32 {
    5
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { backoff: first_backoff(), max_backoff: max_backoff(), resubmit: resubmit(), stalled_after: stalled_after() }
    }
}

impl PipelineConfig {
    /// The right-side name of a field given by its left name.
    pub fn right_name<'a>(&'a self, left: &'a str) -> &'a str {
        self.fields.get(left).and_then(|rule| rule.right.as_deref()).unwrap_or(left)
    }

    /// A field's name on one side.
    pub fn name_on<'a>(&'a self, side: Side, left: &'a str) -> &'a str {
        match side {
            Side::Left => left,
            Side::Right => self.right_name(left),
        }
    }

    /// The field that keeps the other side's value of `left` on `side`.
    pub fn mirror_field(&self, left: &str, side: Side) -> Option<&str> {
        let mirror = self.fields.get(left)?.mirror.as_ref()?;
        match side {
            Side::Left => mirror.left.as_deref(),
            Side::Right => mirror.right.as_deref(),
        }
    }

    /// The mirror field of `left` on `side` when it is kept `always` (two sets of books).
    pub fn books_mirror(&self, left: &str, side: Side) -> Option<&str> {
        self.fields.get(left)?.mirror.as_ref().filter(|m| m.always)?;
        self.mirror_field(left, side)
    }

    /// The conflict policy of a field.
    /// A field's conflict policy: its own, its own category's, the
    /// pipeline's, the pipeline category's, else `manual`.
    pub fn policy_of(&self, left: &str) -> ConflictPolicy {
        let rule = self.fields.get(left);
        rule.and_then(|r| r.conflict)
            .or_else(|| rule.and_then(|r| r.data).map(DataCategory::default_policy))
            .unwrap_or_else(|| self.record_policy())
    }

    /// The pipeline's own policy (for a whole record: a delete against an edit).
    pub fn record_policy(&self) -> ConflictPolicy {
        self.conflict.or_else(|| self.data.map(DataCategory::default_policy)).unwrap_or_default()
    }

    /// A field's kind of data, if the field or the pipeline says.
    pub fn category_of(&self, left: &str) -> Option<DataCategory> {
        self.fields.get(left).and_then(|rule| rule.data).or(self.data)
    }

    /// Whether a scope lock holds back changes of this field: everything but
    /// actuals and other project information.
    pub fn lockable(&self, left: &str) -> bool {
        self.category_of(left).is_none_or(DataCategory::lockable)
    }
}
