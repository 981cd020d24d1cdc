//! The sync engine: one run of a pipeline, as in the architecture notes.
//!
//! For each side in turn (left, then right), batch by batch:
//! 1. read changes since the side's cursor;
//! 2. join each record to its link and fetch the linked records of the other side;
//! 3. per field, compare each side with its base (the last values both agreed
//!    on, in each side's own names): changed on the source only flows, changed
//!    on both is a conflict for the field's policy;
//! 4. map (declared correspondence and the optional mapper plugin) and validate;
//!    a record that fails becomes a failed item with the reason and the fix;
//! 5. write to the other side in one batch, with an outcome per record;
//! 6. commit links, base values, the cursor, history, failed items and
//!    conflicts in one transaction.
//!
//! A crash before step 6 means the batch is read again from the old cursor:
//! updates are idempotent (the base comparison finds nothing left to do or
//! writes the same values), and a create is made at most once (`write`).
//!
//! Changes in a pipeline's approval direction are parked in the approval queue
//! at step 5 instead of written; decisions are carried out at the end of a run
//! (`approval`).
//!
//! - `plan`: what one source record means for the other side, and its outcome as state.
//! - `policy`: conflict policies.
//! - `resolve`: an admin's answer to a parked conflict, and resubmission of failed items.
//! - `approval`: the approval queue: parking changes, carrying out decisions.
//! - `outcomes`: a connector's outcomes checked before they become links.
//! - `isolate`: splitting a batch a plugin fails on, to fail only its records.
//! - `write`: writing a batch: crashes isolated, outcomes checked, creates at most once.
//! - `rehearsal`: dry runs, on a scratch state with simulated writes.
//! - `run`: one run's steps in order.
//! - `batch`: a batch of source records mapped, validated and planned.
//! - `presence`: records gone where no feed shows it (deleted outright, an id
//!   given to another record, deleted while a change was written).
//! - `reverts`: a save that puts back approved values, held for a decision.
//! - `shadow`: a candidate plugin version run beside the active one, writing nothing.
//! - `locks`: scope locks in a run: the holder's changes apply, others' are held back.
//! - `undo`: taking back what a run wrote, and making it again.

pub mod approval;
mod batch;
mod matching;
pub mod identity;
mod isolate;
pub mod locks;
mod outcomes;
pub mod policy;
mod probe;
mod plan;
mod presence;
mod references;
mod rehearsal;
mod resolve;
mod reverts;
mod run;
pub mod shadow;
pub mod undo;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing::Instrument;

use crate::catalog::{Catalog, Failure};
use crate::config::{Flow, LoadedConfig, PipelineConfig, Side};
use crate::model::{Change, Direction, EntityDef, Field, Mapped, Outcome, ReadBatch, Record, Value, Violation};
use crate::runtime::{CallError, Instance};
use crate::state::{Base, Commit, HistoryEntry, Link, RunCounts, State, StateError};
use plan::{broken_checks, fail_invalid, frozen_changes, plan_create, plan_delete, plan_update, record_outcome, scope_left};
use references::Reference;

pub use probe::ProbeResult;
pub use resolve::{MirrorDifference, Resolution};
pub use undo::{Actor, Direction as UndoDirection, UndoReport};
pub use locks::idle_past;

/// Whether a run changes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    /// Compute everything, write nothing: the history entries are the plan.
    DryRun,
}

/// Why a run could not be done. Item-level problems never end a run: they
/// become failed items; this is for whole-run failures (an endpoint down).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("there is no pipeline named `{0}`")]
    UnknownPipeline(String),
    #[error("{0}")]
    Instance(Failure),
    #[error("{0}")]
    Call(#[from] CallError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{message}")]
    Setup { message: String, hint: String },
    /// A target took part of a batch, then stopped answering.
    #[error("{message}")]
    Interrupted { message: String, hint: String },
    /// The host or an endpoint is not the one the pipeline synced with (T5).
    #[error("{message}")]
    Identity { message: String, hint: String },
    /// The person may not do this (force a lock open, undo a run).
    #[error("{message}")]
    Forbidden { message: String, hint: String },
}

impl RunError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RunError::UnknownPipeline(_) => Some("see the [pipelines] of the config, or `synchost status`".into()),
            RunError::Instance(failure) => failure.hint.clone(),
            RunError::Call(error) => error.hint(),
            RunError::State(_) => Some("check that the data folder is writable and the disk not full".into()),
            RunError::Setup { hint, .. } | RunError::Interrupted { hint, .. } | RunError::Identity { hint, .. } | RunError::Forbidden { hint, .. } => Some(hint.clone()),
        }
    }

    /// Whether the run may succeed later without a change by anyone (T3).
    pub fn retryable(&self) -> bool {
        match self {
            RunError::Call(error) => error.retryable(),
            RunError::State(_) | RunError::Interrupted { .. } => true,
            _ => false,
        }
    }
}

/// What a run did (or, in a dry run, would do).
#[derive(Debug, Default)]
pub struct RunReport {
    pub run_id: Option<i64>,
    pub counts: RunCounts,
    /// The first decisions, in order ([`RunReport::KEPT`] at most, so that a
    /// run's memory does not grow with the table): what was (or would be)
    /// created, updated, deleted, which conflicts and how they were resolved.
    /// Every one is in the history.
    pub plan: Vec<HistoryEntry>,
    /// Decisions not kept in `plan`.
    pub omitted: u64,
}

impl RunReport {
    /// Decisions a report keeps.
    pub const KEPT: usize = 1000;

    /// Keeps decisions up to [`RunReport::KEPT`] and counts the rest.
    pub fn note(&mut self, entries: impl IntoIterator<Item = HistoryEntry>) {
        for entry in entries {
            if self.plan.len() < Self::KEPT {
                self.plan.push(entry);
            } else {
                self.omitted += 1;
            }
        }
    }
}

/// The sync engine of one host.
pub struct Engine {
    pub config: Arc<LoadedConfig>,
    pub catalog: Arc<Catalog>,
    pub state: Arc<State>,
    /// Set on shutdown: runs stop before their next batch (each batch is committed whole).
    pub stop: Arc<AtomicBool>,
    /// Shows batches as they are done, on a terminal.
    pub progress: Option<indicatif::ProgressBar>,
    /// Pipelines whose failed items should go again soon: a pipeline they
    /// reference linked new records, which may be what they were missing.
    /// Shared with the engine a reload builds.
    resubmit_requested: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Pipelines a reload changed or removed: their runs on this engine end
    /// after the batch in flight, and the next starts on the new engine.
    retired: std::sync::Mutex<std::collections::HashSet<String>>,
    /// What system each endpoint's connector said answers, and when it was asked.
    systems: identity::Systems,
}

/// A pipeline resolved for one run.
pub(crate) struct Ctx<'a> {
    pub name: &'a str,
    pub config: &'a PipelineConfig,
    pub left: &'a Instance,
    pub right: &'a Instance,
    pub left_def: EntityDef,
    pub right_def: EntityDef,
    pub mapper: Option<&'a Instance>,
    /// Fields that hold ids of records other pipelines sync (see `references`).
    pub references: Vec<Reference>,
    pub run_id: Option<i64>,
    /// Conflicts parked in this run (link, field): the other side's pass sees
    /// the same conflict and must not count or record it again.
    pub parked: std::sync::Mutex<std::collections::HashSet<(i64, String)>>,
    /// Conflicts already open before this run: kept up to date, not recorded again.
    pub open: std::collections::HashSet<(i64, String)>,
    /// Records the run wrote to while they held a change of their own: their
    /// version moved, so their own change may now sort before the cursor (when
    /// the two systems' clocks disagree). They are compared again before the run ends.
    pub recheck: std::sync::Mutex<Vec<(Side, String)>>,
    /// In a dry run, the writes it would make (`rehearsal`).
    pub overlay: Option<rehearsal::Overlay>,
    /// The lock in force on the pipeline's scope (`locks`).
    pub lock: std::sync::Mutex<Option<locks::ActiveLock>>,
    /// An undo or redo carries restored values over: no lock holds them back.
    pub undoing: bool,
}

impl Ctx<'_> {
    pub fn instance(&self, side: Side) -> &Instance {
        match side {
            Side::Left => self.left,
            Side::Right => self.right,
        }
    }

    pub fn entity(&self, side: Side) -> &str {
        match side {
            Side::Left => &self.config.left.entity,
            Side::Right => &self.config.right.entity,
        }
    }

    /// The pipeline's settings for one side (endpoint, entity, scope, checks).
    pub fn side(&self, side: Side) -> &crate::config::SideConfig {
        match side {
            Side::Left => &self.config.left,
            Side::Right => &self.config.right,
        }
    }

    pub fn def(&self, side: Side) -> &EntityDef {
        match side {
            Side::Left => &self.left_def,
            Side::Right => &self.right_def,
        }
    }

    /// The origin a change carries: which pipeline, side and record it comes
    /// from. The target stores it to make a create idempotent, so it must be
    /// the same on every attempt. A record with a birth mark has it in its
    /// origin: a record that took a deleted one's id (Redmine reuses them) is
    /// another record, never found as the one the first create made.
    pub fn origin(&self, side: Side, record: &crate::model::Record) -> String {
        match &record.born {
            Some(born) => format!("{}/{side}/{}@{born}", self.name, record.id),
            None => format!("{}/{side}/{}", self.name, record.id),
        }
    }

    /// Records changed since `cursor` on one side (in a dry run, as its writes left them).
    pub async fn read(&self, side: Side, cursor: Option<&str>) -> Result<ReadBatch, CallError> {
        let batch = self.instance(side).read(self.entity(side), cursor, self.config.batch_size).await?;
        Ok(self.shown(side, batch))
    }

    /// Starts reading the page after `cursor` as a task of its own (on
    /// another core); what it returns goes through [`Ctx::shown`].
    pub fn read_ahead(&self, side: Side, cursor: Option<String>) -> tokio::task::JoinHandle<Result<ReadBatch, CallError>> {
        let (instance, entity, limit) = (self.instance(side).clone(), self.entity(side).to_owned(), self.config.batch_size);
        tokio::spawn(async move { instance.read(&entity, cursor.as_deref(), limit).await })
    }

    /// A page as the run sees it: in a dry run, as its writes left the records.
    pub fn shown(&self, side: Side, mut batch: ReadBatch) -> ReadBatch {
        if let Some(overlay) = &self.overlay {
            batch.records = overlay.show(side, std::mem::take(&mut batch.records));
        }
        batch
    }

    /// The current state of records of one side (in a dry run, as its writes left them).
    pub async fn fetch(&self, side: Side, ids: &[String]) -> Result<Vec<Record>, CallError> {
        // An id kept for a record that is gone is no id of the system's: it
        // is not asked for, and so found missing.
        let ids: Vec<String> = ids.iter().filter(|id| !presence::is_retired_id(id)).cloned().collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let records = self.instance(side).fetch(self.entity(side), &ids).await?;
        Ok(match &self.overlay {
            Some(overlay) => overlay.show(side, records),
            None => records,
        })
    }

    /// Writes changes to one side; a dry run only simulates them.
    pub async fn write(&self, side: Side, changes: &[Change]) -> Result<Vec<Outcome>, CallError> {
        match &self.overlay {
            Some(overlay) => Ok(overlay.write(side, changes)),
            None => self.instance(side).write(self.entity(side), changes).await,
        }
    }

    /// The synced fields: (left name, rule), without those switched off.
    pub fn rules(&self) -> impl Iterator<Item = (&str, &crate::config::FieldRule)> {
        self.config.fields.iter().filter(|(_, r)| r.direction != Flow::Off).map(|(n, r)| (n.as_str(), r))
    }
}

/// Whether a failed plugin call may be caused by one record of the batch: the
/// plugin crashed or hit a limit or budget (as opposed to an outage, which
/// fails the run).
fn isolable(error: &CallError) -> bool {
    matches!(
        error,
        CallError::Trap { .. } | CallError::MemoryLimit { .. } | CallError::OutputTooLarge { .. } | CallError::OverBudget { .. }
    )
}


/// Every field a pipeline names must exist on its entity; a typo would
/// otherwise just never sync. A left-to-right field may be made by the mapper.
fn check_fields(name: &str, config: &PipelineConfig, left: &EntityDef, right: &EntityDef, has_mapper: bool) -> Result<(), RunError> {
    let missing = |def: &EntityDef, field: &str| !def.fields.iter().any(|f| f.name == field);
    let mut problems = Vec::new();
    for (left_name, rule) in &config.fields {
        if rule.direction == Flow::Off {
            continue;
        }
        let derived = has_mapper && rule.direction == Flow::LeftToRight;
        if missing(left, left_name) && !derived {
            problems.push(format!("`{left_name}` is not a field of the left entity `{}`", left.name));
        }
        let right_name = config.right_name(left_name);
        if missing(right, right_name) {
            problems.push(format!("`{right_name}` is not a field of the right entity `{}`", right.name));
        }
        if let Some(mirror) = &rule.mirror {
            for (def, field) in [(left, &mirror.left), (right, &mirror.right)] {
                if let Some(field) = field.as_deref().filter(|f| missing(def, f)) {
                    problems.push(format!("mirror field `{field}` is not a field of `{}`", def.name));
                }
            }
        }
    }
    for (side, def) in [(&config.left, left), (&config.right, right)] {
        for field in side.scope.keys().chain(side.checks.keys()).filter(|f| missing(def, f)) {
            problems.push(format!("`{field}` (in `where` or `checks`) is not a field of `{}`", def.name));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let names = |def: &EntityDef| def.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ");
    Err(RunError::Setup {
        message: format!("pipeline `{name}`: {}", problems.join("; ")),
        hint: format!(
            "correct [pipelines.{name}.fields]; left fields: {}; right fields: {}",
            names(left),
            names(right)
        ),
    })
}

fn side_ids(side: Side, source_id: &str, target_id: Option<&str>) -> (Option<String>, Option<String>) {
    let (s, t) = (Some(source_id.to_owned()), target_id.map(str::to_owned));
    match side {
        Side::Left => (s, t),
        Side::Right => (t, s),
    }
}

fn skip_entry(source: Side, record_id: &str, target_id: &str, rule: &str, message: String) -> HistoryEntry {
    let (left_id, right_id) = side_ids(source, record_id, Some(target_id));
    HistoryEntry {
        left_id,
        right_id,
        action: "skip",
        target: Some(source.other()),
        origin: Some(source),
        fields: Vec::new(),
        rule: rule.into(),
        message: Some(message),
        label: None,
    }
}

fn direction(source: Side) -> Direction {
    match source {
        Side::Left => Direction::LeftToRight,
        Side::Right => Direction::RightToLeft,
    }
}

/// A write planned for the target side, with what to commit once it is applied.
#[derive(Clone)]
struct Pending {
    source_id: String,
    source_version: Option<String>,
    link: Option<Link>,
    change: Change,
    history: HistoryEntry,
    /// Base values to store for the source side (source names).
    base_source: Vec<(String, Value)>,
    /// Base values to store for the target side (target names).
    base_target: Vec<(String, Value)>,
    link_state: Option<&'static str>,
    /// Whether the target held nothing unsynced when it was fetched, so that the
    /// version our write leaves can be remembered as synced. When it did, its
    /// own change must still be read and compared in its side's pass.
    target_in_sync: bool,
    /// What a person calls the source record, for a failed item.
    label: Option<String>,
}


/// The decisions for one batch of source records.
#[derive(Default)]
struct BatchPlan {
    pending: Vec<Pending>,
    /// Writes back to the source side (mirror fields), with their history.
    reverse: Vec<(Change, HistoryEntry)>,
    commit: Commit,
    counts: RunCounts,
    /// Refresh warnings for the losing sides of conflicts (L1), for the event log.
    warnings: Vec<String>,
}

impl Engine {
    pub fn new(config: Arc<LoadedConfig>, catalog: Arc<Catalog>, state: Arc<State>) -> Self {
        Engine {
            config,
            catalog,
            state,
            stop: Arc::new(AtomicBool::new(false)),
            progress: None,
            resubmit_requested: Default::default(),
            retired: Default::default(),
            systems: Default::default(),
        }
    }

    /// The engine of a reloaded config: the same state, shutdown flag and
    /// pending resubmissions as this one.
    pub fn successor(&self, config: Arc<LoadedConfig>, catalog: Arc<Catalog>) -> Self {
        Engine {
            config,
            catalog,
            state: self.state.clone(),
            stop: self.stop.clone(),
            progress: None,
            resubmit_requested: self.resubmit_requested.clone(),
            retired: Default::default(),
            systems: Default::default(),
        }
    }

    /// Ends the runs of these pipelines on this engine after their batch in flight.
    pub fn retire(&self, pipelines: impl IntoIterator<Item = String>) {
        self.retired.lock().unwrap_or_else(|e| e.into_inner()).extend(pipelines);
    }

    /// Whether a run of `pipeline` should stop before its next batch: the
    /// host is stopping, or a reload changed the pipeline.
    pub fn stopping(&self, pipeline: &str) -> bool {
        self.stop.load(Ordering::Relaxed) || self.retired.lock().unwrap_or_else(|e| e.into_inner()).contains(pipeline)
    }

    /// The pipelines with fields that reference `name` (`references = "name"`).
    pub fn referencing(&self, name: &str) -> Vec<String> {
        self.config
            .config
            .pipelines
            .iter()
            .filter(|(_, p)| p.fields.values().any(|rule| rule.references.as_deref() == Some(name)))
            .map(|(n, _)| n.to_string())
            .collect()
    }

    /// Asks the scheduler to resubmit these pipelines' failed items after their next run.
    pub fn request_resubmit(&self, pipelines: impl IntoIterator<Item = String>) {
        self.resubmit_requested.lock().unwrap_or_else(|e| e.into_inner()).extend(pipelines);
    }

    /// Whether a resubmission of `name` was requested (and clears the request).
    pub fn take_resubmit_request(&self, name: &str) -> bool {
        self.resubmit_requested.lock().unwrap_or_else(|e| e.into_inner()).remove(name)
    }

    pub(crate) fn pipeline(&self, name: &str) -> Result<&PipelineConfig, RunError> {
        self.config
            .config
            .pipelines
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, p)| p)
            .ok_or_else(|| RunError::UnknownPipeline(name.to_owned()))
    }

    /// Resolves a pipeline's instances and entities for a run.
    pub(crate) async fn context<'a>(&'a self, name: &'a str, mode: Mode) -> Result<Ctx<'a>, RunError> {
        let config = self.pipeline(name)?;
        self.confirm_identities(config.left.endpoint.get_ref().as_str(), config.right.endpoint.get_ref().as_str()).await?;
        let left = self.catalog.instance(config.left.endpoint.get_ref().as_str()).map_err(RunError::Instance)?;
        let right = self.catalog.instance(config.right.endpoint.get_ref().as_str()).map_err(RunError::Instance)?;
        let mapper = match &config.mapper {
            Some(m) => Some(self.catalog.instance(m.get_ref().as_str()).map_err(RunError::Instance)?),
            None => None,
        };
        let find = |defs: Vec<EntityDef>, side: Side, entity: &str, endpoint: &Instance| {
            let names: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
            defs.into_iter().find(|d| d.name == entity).ok_or_else(|| RunError::Setup {
                message: format!("pipeline `{name}`: the {side} endpoint `{}` has no entity `{entity}`", endpoint.name()),
                hint: format!("its entities are: {}", names.join(", ")),
            })
        };
        let left_def = find(left.describe().await?, Side::Left, &config.left.entity, left)?;
        let right_def = find(right.describe().await?, Side::Right, &config.right.entity, right)?;
        check_fields(name, config, &left_def, &right_def, mapper.is_some())?;
        let references = self.references(name, config)?;
        let pairs = config.fields.iter().map(|(left, _)| (left.clone(), config.right_name(left).to_owned())).collect();
        // A frozen field's message names the value it had.
        let kept = config.fields.iter().filter(|(_, rule)| rule.frozen).map(|(left, _)| left.clone()).collect();
        self.state.register_fields(name, pairs, kept);
        let open = self.state.conflicts(Some(name), true)?.into_iter().map(|c| (c.link_id, c.field)).collect();
        Ok(Ctx {
            name,
            config,
            left,
            right,
            left_def,
            right_def,
            mapper,
            references,
            run_id: None,
            parked: Default::default(),
            open,
            recheck: Default::default(),
            overlay: (mode == Mode::DryRun).then(Default::default),
            lock: Default::default(),
            undoing: false,
        })
    }

    /// Checks that a pipeline can run: both endpoints describe its entities and
    /// every field it names exists. Returns a one-line summary, and warnings
    /// about what works but not as well as it could.
    pub async fn check_pipeline(&self, name: &str) -> Result<(String, Vec<String>), RunError> {
        let ctx = self.context(name, Mode::DryRun).await?;
        let summary = format!(
            "{}.{} <-> {}.{}: {} fields, {}",
            ctx.left.name(),
            ctx.left_def.name,
            ctx.right.name(),
            ctx.right_def.name,
            ctx.rules().count(),
            ctx.config.schedule
        );
        let warnings = [Side::Left, Side::Right]
            .into_iter()
            .filter(|source| ctx.config.create.allows(*source) && !ctx.def(source.other()).finds_by_origin)
            .map(|source| {
                let target = source.other();
                format!(
                    "new {source} records are created in {}.{}, which cannot find a record by its origin: a create cut short (the host killed, a timeout) is not sent again but becomes a failed item to check; give the entity a place for the origin where its connector has one (sql-table: origin = \"COLUMN\"; redmine: origin_field, for issues and time entries), or let creates flow the other way only",
                    ctx.instance(target).name(),
                    ctx.def(target).name
                )
            })
            .collect();
        Ok((summary, warnings))
    }

}
