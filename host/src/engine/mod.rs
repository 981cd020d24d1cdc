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
//! - `presence`: finding records deleted outright where no feed shows it.
//! - `reverts`: a save that puts back approved values, held for a decision.

mod approval;
mod matching;
mod isolate;
mod outcomes;
pub mod policy;
mod probe;
mod plan;
mod presence;
mod references;
mod rehearsal;
mod resolve;
mod reverts;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing::Instrument;

use crate::catalog::{Catalog, Failure};
use crate::config::{Flow, LoadedConfig, PipelineConfig, Side};
use crate::runtime::bindings::{Change, Direction, EntityDef, Field, Mapped, Outcome, Record, Value, Violation};
use crate::runtime::{CallError, Instance};
use crate::state::{Base, Commit, HistoryEntry, Link, RunCounts, State, StateError};
use plan::{broken_checks, fail_invalid, frozen_changes, plan_create, plan_delete, plan_update, record_outcome, scope_left};
use references::Reference;

pub use probe::ProbeResult;
pub use resolve::{MirrorDifference, Resolution};

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
}

impl RunError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RunError::UnknownPipeline(_) => Some("see the [pipelines] of the config, or `synchost status`".into()),
            RunError::Instance(failure) => failure.hint.clone(),
            RunError::Call(error) => error.hint(),
            RunError::State(_) => Some("check that the data folder is writable and the disk not full".into()),
            RunError::Setup { hint, .. } | RunError::Interrupted { hint, .. } => Some(hint.clone()),
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
    /// Every decision, in order: what was (or would be) created, updated,
    /// deleted, which conflicts and how they were resolved.
    pub plan: Vec<HistoryEntry>,
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
    resubmit_requested: std::sync::Mutex<std::collections::HashSet<String>>,
    /// When each pipeline side's linked records were last looked up (`presence`).
    presence_checked: std::sync::Mutex<HashMap<(String, Side), std::time::Instant>>,
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
    pub fn origin(&self, side: Side, record: &crate::runtime::bindings::Record) -> String {
        match &record.born {
            Some(born) => format!("{}/{side}/{}@{born}", self.name, record.id),
            None => format!("{}/{side}/{}", self.name, record.id),
        }
    }

    /// Records changed since `cursor` on one side (in a dry run, as its writes left them).
    pub async fn read(&self, side: Side, cursor: Option<&str>) -> Result<crate::runtime::bindings::ReadBatch, CallError> {
        let mut batch = self.instance(side).read(self.entity(side), cursor, self.config.batch_size).await?;
        if let Some(overlay) = &self.overlay {
            batch.records = overlay.show(side, std::mem::take(&mut batch.records));
        }
        Ok(batch)
    }

    /// The current state of records of one side (in a dry run, as its writes left them).
    pub async fn fetch(&self, side: Side, ids: &[String]) -> Result<Vec<Record>, CallError> {
        // An id kept for a record that is gone is no id of the system's: it
        // is not asked for, and so found missing.
        let ids: Vec<String> = ids.iter().filter(|id| !is_retired_id(id)).cloned().collect();
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

/// Maps and validates records through the mapper plugin.
async fn map_and_validate(mapper: &Instance, source: Side, records: &[Record]) -> Result<Vec<Result<Record, Vec<Violation>>>, CallError> {
    let mut results: Vec<Result<Record, Vec<Violation>>> = mapper
        .map(direction(source), records)
        .await?
        .into_iter()
        .map(|m| match m {
            Mapped::Ok(record) => Ok(record),
            Mapped::Invalid(violations) => Err(violations),
        })
        .collect();
    let valid: Vec<Record> = results.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
    let found = if valid.is_empty() { Vec::new() } else { mapper.validate(direction(source), &valid).await? };
    let mut found = found.into_iter();
    for result in &mut results {
        if result.is_ok() {
            let violations = found.next().unwrap_or_default();
            if !violations.is_empty() {
                *result = Err(violations);
            }
        }
    }
    Ok(results)
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

/// A history entry saying why a linked record's change went nowhere.
/// Whether an update found its target deleted meanwhile (between the read
/// and the write), where the edit wins over the delete and the record can
/// be made anew there: a delete and an edit at once, as `plan_delete` settles
/// them when it sees both. Pure.
fn gone_while_written(ctx: &Ctx<'_>, source: Side, pending: &Pending, outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Rejected(problem) if problem.code == "not-found")
        && pending.link.is_some()
        && pending.change.target_id.is_some()
        && pending.change.kind == crate::runtime::bindings::ChangeKind::Upsert
        && ctx.config.deletes != crate::config::DeletePolicy::Ignore
        && ctx.config.create.allows(source)
}

/// The edited record is made anew on the side that deleted it: unlinked,
/// and driven through the next run as a new record.
fn made_anew(source: Side, pending: Pending, plan: &mut BatchPlan) {
    let target = source.other();
    let link = pending.link.expect("checked by gone_while_written");
    plan.counts.conflicts += 1;
    plan.commit.history.push(HistoryEntry {
        action: "conflict",
        target: None,
        fields: Vec::new(),
        rule: format!("the {source} edit wins over the {target} delete"),
        message: Some(format!("the {target} record {} was deleted while this change was written; the record is made anew on the {target} side", link.id_on(target))),
        ..pending.history
    });
    plan.commit.unlinks.push(link.link_id);
    plan.commit.queued_intents.push((source, pending.source_id));
}

/// The id a link keeps for a record that is gone while a new record took
/// its id: never an id of the system, so never looked up. Pure.
pub(super) fn retired_id(id: &str, born: &str) -> String {
    format!("{id} (gone, born {born})")
}

/// Whether an id is one kept for a record that is gone (`retired_id`). Pure.
pub(super) fn is_retired_id(id: &str) -> bool {
    id.ends_with(')') && id.contains(" (gone, born ")
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

impl Engine {
    /// A source record deleted while a change of its waits for approval:
    /// the approval is withdrawn (nobody can approve a change of a record
    /// that is gone), with a history entry.
    fn withdraw_pending_approval(&self, ctx: &Ctx<'_>, source: Side, record: &Record, plan: &mut BatchPlan) -> Result<(), RunError> {
        let Some(pending) = self.state.pending_approval(ctx.name, source, &record.id)? else { return Ok(()) };
        plan.commit.withdrawn_approvals.push((source, record.id.clone()));
        let (left_id, right_id) = side_ids(source, &record.id, pending.target_id.as_deref());
        plan.commit.history.push(HistoryEntry {
            left_id,
            right_id,
            action: "withdraw",
            target: Some(source.other()),
            origin: Some(source),
            fields: Vec::new(),
            rule: "approval".into(),
            message: Some(format!("approval {} withdrawn: the {source} record was deleted while its change waited ({})", pending.id, pending.summary)),
        });
        Ok(())
    }
}

/// The decisions for one batch of source records.
#[derive(Default)]
struct BatchPlan {
    pending: Vec<Pending>,
    /// Writes back to the source side (mirror fields), with their history.
    reverse: Vec<(Change, HistoryEntry)>,
    commit: Commit,
    counts: RunCounts,
}

impl Engine {
    pub fn new(config: Arc<LoadedConfig>, catalog: Arc<Catalog>, state: Arc<State>) -> Self {
        Engine { config, catalog, state, stop: Arc::new(AtomicBool::new(false)), progress: None, resubmit_requested: Default::default(), presence_checked: Default::default() }
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

    /// One run of a pipeline: both sides, every batch, until no changes are waiting.
    pub async fn run(&self, name: &str, trigger: &str, mode: Mode) -> Result<RunReport, RunError> {
        self.run_with(name, trigger, mode, false).await
    }

    /// One run; with `rematch`, records existing on both sides are matched by
    /// the pipeline's `match_on` fields first, even when links exist already.
    pub async fn run_with(&self, name: &str, trigger: &str, mode: Mode, rematch: bool) -> Result<RunReport, RunError> {
        if mode == Mode::DryRun && !self.state.is_scratch() {
            // Rehearsed on a copy of the state (see `rehearsal`).
            let scratch = Engine::new(self.config.clone(), self.catalog.clone(), Arc::new(self.state.scratch_copy()?));
            let mut report = scratch.run_once(name, trigger, mode, rematch).await?;
            report.run_id = None;
            return Ok(report);
        }
        self.run_once(name, trigger, mode, rematch).await
    }

    async fn run_once(&self, name: &str, trigger: &str, mode: Mode, rematch: bool) -> Result<RunReport, RunError> {
        let mut ctx = match self.context(name, mode).await {
            Ok(ctx) => ctx,
            // An endpoint that cannot even describe itself fails the run too: the
            // pipeline shows degraded with the reason, and is retried (T3).
            Err(error) if !matches!(error, RunError::UnknownPipeline(_)) => {
                let (message, hint) = (error.to_string(), error.hint());
                self.state.record_failure(name, &message, hint.as_deref())?;
                self.state.event("error", Some(name), None, &format!("run could not start: {message}"), hint.as_deref())?;
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        ctx.run_id = Some(self.state.begin_run(name, trigger)?);
        // Spans are attached to the futures (not entered across awaits), so the
        // runs of pipelines that share a thread never bleed into each other's logs.
        let span = tracing::info_span!("run", pipeline = name, run = ctx.run_id, trigger);
        let mut report = RunReport { run_id: ctx.run_id, ..RunReport::default() };
        let outcome = async {
            self.finish_intents(&ctx, false, &mut report).await?;
            // Records the other side could not take for a passing reason
            // go again as soon as their backoff allows, in every run.
            let due = self.transient_failures_due(&ctx)?;
            if !due.is_empty() {
                self.resubmit_items(&ctx, &due, &mut report).await?;
            }
            // A pipeline that creates nothing links by matching alone: what
            // appeared on both sides since (a person added later) is linked
            // on every run.
            let links_only_by_matching = ctx.config.create == Flow::Off;
            if !ctx.config.match_on.is_empty() && (rematch || links_only_by_matching || self.state.link_count(name)? == 0) {
                self.match_existing(&ctx, &mut report).await?;
            }
            for side in [Side::Left, Side::Right] {
                self.sync_side(&ctx, side, &mut report).await?;
            }
            self.recheck(&ctx, &mut report).await?;
            self.find_vanished(&ctx, &mut report).await?;
            // Records this run queued (an edit that won over a delete, to be
            // made anew on the other side) go now, not a run later.
            self.finish_intents(&ctx, true, &mut report).await?;
            self.carry_out_decisions(&ctx, &mut report).await?;
            Ok::<(), RunError>(())
        }
        .instrument(span)
        .await;
        if let Some(run_id) = ctx.run_id {
            let error = outcome.as_ref().err().map(|e| (e.to_string(), e.hint()));
            self.state.finish_run(run_id, &report.counts, error.as_ref().map(|(m, h)| (m.as_str(), h.as_deref())))?;
            let summary = format!(
                "run {run_id}: {} created, {} updated, {} deleted, {} conflicts, {} failed{}",
                report.counts.created,
                report.counts.updated,
                report.counts.deleted,
                report.counts.conflicts,
                report.counts.failed,
                if report.counts.queued > 0 { format!(", {} waiting for approval", report.counts.queued) } else { String::new() }
            );
            match &error {
                None => {
                    self.state.record_success(name)?;
                    let quiet = RunCounts { read_left: report.counts.read_left, read_right: report.counts.read_right, ..Default::default() };
                    if report.counts != quiet {
                        self.state.event("info", Some(name), Some(run_id), &summary, None)?;
                    }
                }
                Some((message, hint)) => {
                    self.state.record_failure(name, message, hint.as_deref())?;
                    self.state.event("error", Some(name), Some(run_id), &format!("run failed: {message}"), hint.as_deref())?;
                }
            }
        }
        outcome.map(|()| report)
    }

    /// Drives creates a crash left between their write and their commit: the
    /// source records go through the engine again and each create is sent
    /// again marked repeated, so the target finds the record made the first
    /// time by its origin (or, where it cannot, it becomes a failed item to
    /// check; see `write`). Queued records (one an admin unlinked because its
    /// counterpart was deleted, a pair linked by hand) go through the same way.
    async fn finish_intents(&self, ctx: &Ctx<'_>, only_queued: bool, report: &mut RunReport) -> Result<(), RunError> {
        let intents = self.state.intents(ctx.name, only_queued)?;
        for side in [Side::Left, Side::Right] {
            let ids: Vec<String> = intents.iter().filter(|(s, _)| *s == side).map(|(_, id)| id.clone()).collect();
            if ids.is_empty() {
                continue;
            }
            tracing::info!(pipeline = ctx.name, side = side.as_str(), count = ids.len(), "Driving records whose create a crash interrupted or that wait to be made anew");
            let records = ctx.fetch(side, &ids).await?;
            let mut plan = self.plan_batch(ctx, side, &records).await?;
            // Intents whose source is gone, or that need no create any more,
            // are done; the creates finish theirs once their outcome is known.
            let creating: std::collections::HashSet<&str> = plan.pending.iter().filter(|p| p.link.is_none()).map(|p| p.source_id.as_str()).collect();
            let done: Vec<(Side, String)> = ids.iter().filter(|id| !creating.contains(id.as_str())).map(|id| (side, id.clone())).collect();
            plan.commit.finished_intents.extend(done);
            self.finish_batch(ctx, side, plan, report).await?;
        }
        Ok(())
    }

    /// Compares again the records this run wrote to while they held changes of
    /// their own (see `Ctx::recheck`), whatever their position in the change feed.
    async fn recheck(&self, ctx: &Ctx<'_>, report: &mut RunReport) -> Result<(), RunError> {
        // Each round can only add records of the other side; two rounds settle it.
        for _ in 0..2 {
            let pending: Vec<(Side, String)> = std::mem::take(&mut *ctx.recheck.lock().unwrap_or_else(|e| e.into_inner()));
            if pending.is_empty() {
                return Ok(());
            }
            for side in [Side::Left, Side::Right] {
                let mut ids: Vec<String> = pending.iter().filter(|(s, _)| *s == side).map(|(_, id)| id.clone()).collect();
                ids.sort();
                ids.dedup();
                if ids.is_empty() {
                    continue;
                }
                let records = ctx.fetch(side, &ids).await?;
                let plan = self.plan_batch(ctx, side, &records).await?;
                self.finish_batch(ctx, side, plan, report).await?;
            }
        }
        Ok(())
    }

    /// Reads one side's changes batch by batch and processes them.
    async fn sync_side(&self, ctx: &Ctx<'_>, side: Side, report: &mut RunReport) -> Result<(), RunError> {
        let full_scan = !ctx.def(side).change_feed;
        // A full scan starts from the beginning every run; a change feed from its cursor.
        let mut cursor = if full_scan { None } else { self.state.cursor(ctx.name, side)? };
        loop {
            if self.stop.load(Ordering::Relaxed) {
                tracing::info!(pipeline = ctx.name, "Stopped between batches");
                return Ok(());
            }
            let span = tracing::debug_span!("batch", side = side.as_str());
            let batch = async {
                let batch = ctx.read(side, cursor.as_deref()).await?;
                match side {
                    Side::Left => report.counts.read_left += batch.records.len() as u64,
                    Side::Right => report.counts.read_right += batch.records.len() as u64,
                }
                if let Some(progress) = &self.progress {
                    progress.inc(batch.records.len() as u64);
                    progress.set_message(format!("{} {side}", ctx.name));
                }
                let mut plan = self.plan_batch(ctx, side, &batch.records).await?;
                if !full_scan {
                    plan.commit.cursor = Some((side, batch.cursor.clone()));
                }
                self.finish_batch(ctx, side, plan, report).await?;
                Ok::<_, RunError>(batch)
            }
            .instrument(span)
            .await?;
            cursor = batch.cursor;
            if !batch.has_more || batch.records.is_empty() {
                return Ok(());
            }
        }
    }

    /// Writes a batch's planned changes and commits what happened.
    async fn finish_batch(&self, ctx: &Ctx<'_>, source: Side, mut plan: BatchPlan, report: &mut RunReport) -> Result<(), RunError> {
        let target = source.other();
        self.hold_reverts_of_approvals(ctx, source, &mut plan)?;
        self.park_for_approval(ctx, source, &mut plan)?;
        let outcomes: Vec<Outcome> =
            if plan.pending.is_empty() { Vec::new() } else { self.write_pending(ctx, source, &mut plan.pending, &mut plan.commit).await? };
        // A change the target could not take for now (it went down mid-batch):
        // the batch is committed as far as it went, then the run fails, so the
        // pipeline shows degraded and is retried; the change is a failed item
        // that goes again once the target is back.
        let interrupted = outcomes.iter().find_map(|o| match o {
            Outcome::Rejected(problem) if problem.retryable => Some(problem.clone()),
            _ => None,
        });
        for (pending, outcome) in std::mem::take(&mut plan.pending).into_iter().zip(outcomes) {
            if let (false, Outcome::Applied(applied)) = (pending.target_in_sync, &outcome) {
                ctx.recheck.lock().unwrap_or_else(|e| e.into_inner()).push((target, applied.id.clone()));
            }
            if gone_while_written(ctx, source, &pending, &outcome) {
                made_anew(source, pending, &mut plan);
                continue;
            }
            record_outcome(&mut plan.commit, &mut plan.counts, source, pending, outcome);
        }
        if !plan.reverse.is_empty() {
            // What the target took is committed before anything else can fail:
            // a failed write-back must not send the batch's creates again.
            let written = std::mem::take(&mut plan.commit);
            self.state.apply(ctx.name, ctx.run_id, &written)?;
            report.plan.extend(written.history);
            let changes: Vec<Change> = plan.reverse.iter().map(|(c, _)| c.clone()).collect();
            let outcomes = ctx.write(source, &changes).await?;
            for ((_, mut history), outcome) in plan.reverse.into_iter().zip(outcomes) {
                if let Outcome::Rejected(problem) = &outcome {
                    history.action = "fail";
                    history.message = Some(format!("{}: {}", problem.code, problem.message));
                    plan.counts.failed += 1;
                }
                plan.commit.history.push(history);
            }
        }
        report.counts.created += plan.counts.created;
        report.counts.updated += plan.counts.updated;
        report.counts.deleted += plan.counts.deleted;
        report.counts.conflicts += plan.counts.conflicts;
        report.counts.failed += plan.counts.failed;
        report.counts.queued += plan.counts.queued;
        if !plan.commit.is_empty() {
            self.state.apply(ctx.name, ctx.run_id, &plan.commit)?;
        }
        report.plan.append(&mut plan.commit.history);
        match interrupted {
            Some(problem) => Err(RunError::Interrupted {
                message: format!("the {target} side stopped taking changes: {}: {}", problem.code, problem.message),
                hint: problem.hint.unwrap_or_else(|| "the run is retried; the changes not written are resubmitted".into()),
            }),
            None => Ok(()),
        }
    }

    /// Maps source records to the synced fields in left (canonical) names,
    /// through the mapper if there is one, and validates them.
    async fn map_batch(&self, ctx: &Ctx<'_>, source: Side, records: &[&Record]) -> Result<Vec<Result<BTreeMap<String, Value>, Vec<Violation>>>, RunError> {
        let canonical: Vec<Record> = records
            .iter()
            .map(|r| Record {
                id: r.id.clone(),
                version: r.version.clone(),
                deleted: r.deleted,
                born: r.born.clone(),
                fields: ctx
                    .rules()
                    .filter_map(|(left, _)| {
                        r.get(ctx.config.name_on(source, left)).map(|v| Field { name: left.to_owned(), value: v.clone() })
                    })
                    .collect(),
            })
            .collect();
        let results: Vec<Result<Record, Vec<Violation>>> = match ctx.mapper {
            // A mapper that crashes or hangs on some records fails only those
            // (H1): mapping changes nothing outside, so a batch may be
            // called again in parts, timeouts included.
            Some(mapper) if !canonical.is_empty() => {
                let splittable = |error: &CallError| isolable(error) || matches!(error, CallError::Timeout { .. });
                isolate::bisect(canonical.len(), splittable, |part| map_and_validate(mapper, source, &canonical[part]))
                    .await?
                    .into_iter()
                    .map(|result| {
                        result.unwrap_or_else(|error| {
                            tracing::warn!(pipeline = ctx.name, "Mapper failed on a record: {error}");
                            Err(vec![Violation { field: None, message: error.to_string(), hint: error.hint() }])
                        })
                    })
                    .collect()
            }
            _ => canonical.iter().cloned().map(Ok).collect(),
        };
        // Every rule is checked, so that a record reports all its violations
        // at once: the mapper's, required fields, then references (checked on
        // the mapped values, or the record's own when the mapper refused it).
        let mut checked: Vec<(BTreeMap<String, Value>, Vec<Violation>)> = results
            .into_iter()
            .zip(&canonical)
            .map(|(result, input)| match result {
                Ok(record) => (record.fields.into_iter().map(|f| (f.name, f.value)).collect(), Vec::new()),
                Err(violations) => (input.fields.iter().map(|f| (f.name.clone(), f.value.clone())).collect(), violations),
            })
            .collect();
        for (values, violations) in &mut checked {
            // NaN is not equal to itself and infinities have no JSON form:
            // such a value would look changed on every run, or be stored as
            // something else. The record fails, saying so.
            for (name, value) in values.iter() {
                if let Value::Float(f) = value
                    && !f.is_finite()
                {
                    violations.push(Violation {
                        field: Some(name.clone()),
                        message: format!("`{name}` is {f}, which cannot be compared or kept exactly"),
                        hint: Some(format!("store a number or nothing (NULL) in `{name}` on the {source} side")),
                    });
                }
            }
            for field in &ctx.config.required {
                if values.get(field).is_none_or(|v| v.is_empty()) && !violations.iter().any(|v| v.field.as_deref() == Some(field.as_str())) {
                    violations.push(Violation {
                        field: Some(field.clone()),
                        message: format!("`{field}` is required by pipeline `{}` but empty", ctx.name),
                        hint: Some(format!("fill in `{field}` on the {source} side")),
                    });
                }
            }
        }
        if !ctx.references.is_empty() {
            let target = source.other();
            let types: HashMap<String, crate::runtime::bindings::FieldType> =
                ctx.def(target).fields.iter().map(|f| (f.name.clone(), f.type_)).collect();
            let names: HashMap<String, String> =
                ctx.references.iter().map(|r| (r.field.clone(), ctx.config.name_on(target, &r.field).to_owned())).collect();
            self.translate_references(&ctx.references, source, &types, &names, &mut checked).await?;
        }
        let results = checked.into_iter().map(|(values, violations)| if violations.is_empty() { Ok(values) } else { Err(violations) }).collect();
        Ok(results)
    }

    /// Decides what each source record means for the other side.
    async fn plan_batch(&self, ctx: &Ctx<'_>, source: Side, records: &[Record]) -> Result<BatchPlan, RunError> {
        let target = source.other();
        let mut plan = BatchPlan::default();
        // Records whose id a new record took (see below).
        let mut gone: Vec<Record> = Vec::new();
        // The newest state of each record wins if a batch holds it twice.
        let mut latest: Vec<&Record> = Vec::with_capacity(records.len());
        let mut position: HashMap<&str, usize> = HashMap::with_capacity(records.len());
        for record in records {
            match position.get(record.id.as_str()) {
                Some(&i) => latest[i] = record,
                None => {
                    position.insert(&record.id, latest.len());
                    latest.push(record);
                }
            }
        }
        let ids: Vec<String> = latest.iter().map(|r| r.id.clone()).collect();
        let mut links = self.state.links_by_ids(ctx.name, source, &ids)?;
        // Birth marks are kept once seen. Another one under a linked id is
        // another record: the one linked is gone (a delete, by the policy; its
        // link keeps another id) and this one is new.
        for record in &latest {
            let Some(born) = &record.born else { continue };
            match links.get(&record.id).and_then(|l| l.born_on(source)) {
                // Known already: nothing to store.
                Some(linked) if linked == born => continue,
                Some(linked) => {
                    let kept = retired_id(&record.id, linked);
                    let link = links.remove(&record.id).expect("looked up above");
                    plan.commit.retired.push((link.link_id, source, kept.clone()));
                    links.insert(kept.clone(), link.with_id_on(source, kept.clone()));
                    gone.push(Record { id: kept, version: None, deleted: true, fields: Vec::new(), born: None });
                }
                None => {}
            }
            plan.commit.births.push((source, record.id.clone(), born.clone()));
        }
        latest.extend(gone.iter());
        // A record still at the version of the last sync is unchanged since (most
        // often the echo of the engine's own write): nothing to compare.
        latest.retain(|r| {
            let synced = links.get(&r.id).and_then(|l| l.version_on(source));
            r.version.is_none() || synced != r.version.as_deref()
        });
        let remaining: std::collections::HashSet<&str> = latest.iter().map(|r| r.id.as_str()).collect();
        let links: HashMap<String, Link> = links.into_iter().filter(|(id, _)| remaining.contains(id.as_str())).collect();
        let link_ids: Vec<i64> = links.values().map(|l| l.link_id).collect();
        let bases = self.state.base_of(&link_ids)?;
        let counterpart_ids: Vec<String> = links.values().map(|l| l.id_on(target).to_owned()).collect();
        let counterparts: HashMap<String, Record> = if counterpart_ids.is_empty() {
            HashMap::new()
        } else {
            ctx.fetch(target, &counterpart_ids).await?.into_iter().map(|r| (r.id.clone(), r)).collect()
        };
        let live: Vec<&Record> = latest.iter().copied().filter(|r| !r.deleted).collect();
        let mapped = self.map_batch(ctx, source, &live).await?;
        let mut mapped: HashMap<&str, Result<BTreeMap<String, Value>, Vec<Violation>>> =
            live.iter().map(|r| r.id.as_str()).zip(mapped).collect();

        let approval_side = ctx.config.approval.as_ref().is_some_and(|a| a.applies_to(source));
        for record in latest {
            if record.deleted && approval_side {
                self.withdraw_pending_approval(ctx, source, record, &mut plan)?;
            }
            let link = links.get(&record.id);
            let empty = Base::default();
            let base = link.and_then(|l| bases.get(&l.link_id)).unwrap_or(&empty);
            let counterpart = link.and_then(|l| counterparts.get(l.id_on(target)));
            match (link, record.deleted) {
                (None, true) => {}
                (None, false) => {
                    if !ctx.config.create.allows(source) || !ctx.side(source).in_scope(record) {
                        continue;
                    }
                    let broken = broken_checks(ctx, source, record);
                    match mapped.remove(record.id.as_str()) {
                        Some(Ok(values)) if broken.is_empty() => plan_create(ctx, source, record, &values, &mut plan),
                        Some(Ok(_)) => fail_invalid(source, record, None, broken, &mut plan),
                        Some(Err(mut violations)) => {
                            violations.extend(broken);
                            fail_invalid(source, record, None, violations, &mut plan)
                        }
                        None => {}
                    }
                }
                // Deleted on the other side only (kept here by a decision):
                // an edit of the kept record does not sync, and says so.
                (Some(link), false) if link.state == target.deleted_state() => {
                    plan.commit.history.push(skip_entry(
                        source,
                        &record.id,
                        link.id_on(target),
                        "deleted on one side",
                        format!(
                            "the {target} record was deleted and this one kept, so its edits do not sync; to bring it back on the {target} side: {}`synchost links unlink {} {}`, then sync",
                            if ctx.config.create.allows(source) { String::new() } else { format!("allow creates from the {source} side ([pipelines.{}] create), ", ctx.name) },
                            ctx.name,
                            record.id
                        ),
                    ));
                }
                (Some(link), _) if link.state != "active" => {}
                (Some(link), true) => plan_delete(ctx, source, record, link, base, counterpart, &mut plan),
                (Some(link), false) => {
                    // What a linked record may not do: change a frozen field,
                    // leave the scope, break a check.
                    let mut held = frozen_changes(ctx, source, record, base);
                    held.extend(scope_left(ctx, source, record));
                    held.extend(broken_checks(ctx, source, record));
                    match (mapped.remove(record.id.as_str()), counterpart) {
                        // Deleted outright on the other side: decided as that
                        // side's delete (this record's edit since the last sync
                        // wins, and it is made anew there; otherwise the
                        // delete goes by the delete policy).
                        (_, None) => {
                            let gone = Record { id: link.id_on(target).to_owned(), version: None, deleted: true, fields: Vec::new(), born: None };
                            plan_delete(ctx, target, &gone, link, base, Some(record), &mut plan);
                        }
                        // The other side deleted it: its tombstone decides (with the
                        // delete policy and the conflict policy) in that side's pass.
                        (Some(Ok(_)), Some(counterpart)) if counterpart.deleted => {}
                        (Some(Ok(values)), Some(counterpart)) if held.is_empty() => {
                            plan_update(ctx, source, record, link, base, counterpart, &values, &mut plan)
                        }
                        (Some(Ok(_)), Some(_)) => fail_invalid(source, record, Some(link), held, &mut plan),
                        (Some(Err(mut violations)), Some(_)) => {
                            violations.extend(held);
                            fail_invalid(source, record, Some(link), violations, &mut plan)
                        }
                        (None, Some(_)) => {}
                    }
                }
            }
        }
        Ok(plan)
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_id_is_told_from_every_id_a_system_gives() {
        let kept = retired_id("6063", "2026-12-01T23:49:01Z");
        assert!(is_retired_id(&kept));
        assert!(!is_retired_id("6063") && !is_retired_id("a (b)") && !is_retired_id("entries/right/6063"));
    }
}
