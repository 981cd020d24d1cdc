//! One run of a pipeline, in order: creates a crash left unfinished, failed
//! items due again, matching, each side's changes batch by batch, the
//! records written while they held changes of their own, deletes that left no
//! trace, records to be made anew, and the approval decisions.

use super::*;

impl Engine {
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

    pub(super) async fn run_once(&self, name: &str, trigger: &str, mode: Mode, rematch: bool) -> Result<RunReport, RunError> {
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
            self.scope_lock_at_start(&ctx, &mut report).await?;
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
                "run {run_id}: {} created, {} updated, {} deleted, {} conflicts, {} failed{}{}",
                report.counts.created,
                report.counts.updated,
                report.counts.deleted,
                report.counts.conflicts,
                report.counts.failed,
                if report.counts.queued > 0 { format!(", {} waiting for approval", report.counts.queued) } else { String::new() },
                if report.counts.held > 0 { format!(", {} held by a scope lock", report.counts.held) } else { String::new() }
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
    pub(super) async fn finish_intents(&self, ctx: &Ctx<'_>, only_queued: bool, report: &mut RunReport) -> Result<(), RunError> {
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
    pub(super) async fn recheck(&self, ctx: &Ctx<'_>, report: &mut RunReport) -> Result<(), RunError> {
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
    pub(super) async fn sync_side(&self, ctx: &Ctx<'_>, side: Side, report: &mut RunReport) -> Result<(), RunError> {
        let full_scan = !ctx.def(side).change_feed;
        // A full scan starts from the beginning every run; a change feed from its cursor.
        let mut cursor = if full_scan { None } else { self.state.cursor(ctx.name, side)? };
        // The next page is read (on another core) while this one is mapped,
        // written and committed: a read has no effects, and the cursor it
        // starts from is the one this page's read returned.
        let mut next_page: Option<tokio::task::JoinHandle<Result<ReadBatch, CallError>>> = None;
        if let Some(progress) = &self.progress {
            // Each side's pass counts on its own, against its own total if known.
            progress.reset();
            progress.unset_length();
        }
        loop {
            if self.stopping(ctx.name) {
                tracing::info!(pipeline = ctx.name, "Stopped between batches");
                return Ok(());
            }
            let span = tracing::debug_span!("batch", side = side.as_str());
            let batch = async {
                let batch = match next_page.take() {
                    Some(read) => ctx.shown(side, read.await.map_err(|e| RunError::Setup {
                        message: format!("reading the next page of the {side} side failed: {e}"),
                        hint: "the run is retried".into(),
                    })??),
                    None => ctx.read(side, cursor.as_deref()).await?,
                };
                if batch.has_more && !batch.records.is_empty() {
                    next_page = Some(ctx.read_ahead(side, batch.cursor.clone()));
                }
                tracing::debug!(records = batch.records.len(), more = batch.has_more, cursor = ?batch.cursor, "Read a page");
                match side {
                    Side::Left => report.counts.read_left += batch.records.len() as u64,
                    Side::Right => report.counts.read_right += batch.records.len() as u64,
                }
                if let Some(progress) = &self.progress {
                    show_progress(progress, ctx.name, side, &batch);
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
    pub(super) async fn finish_batch(&self, ctx: &Ctx<'_>, source: Side, mut plan: BatchPlan, report: &mut RunReport) -> Result<(), RunError> {
        let target = source.other();
        self.hold_reverts_of_approvals(ctx, source, &mut plan)?;
        self.apply_scope_lock(ctx, source, &mut plan)?;
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
            if presence::gone_while_written(ctx, source, &pending, &outcome) {
                presence::made_anew(source, pending, &mut plan);
                continue;
            }
            record_outcome(&mut plan.commit, &mut plan.counts, source, pending, outcome);
        }
        if !plan.reverse.is_empty() {
            // What the target took is committed before anything else can fail:
            // a failed write-back must not send the batch's creates again.
            let written = std::mem::take(&mut plan.commit);
            self.state.apply(ctx.name, ctx.run_id, &written)?;
            report.note(written.history);
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
        report.counts.held += plan.counts.held;
        if !plan.commit.is_empty() {
            self.state.apply(ctx.name, ctx.run_id, &plan.commit)?;
        }
        if ctx.overlay.is_none() {
            // Each warning reaches the dashboard's event log; a flood is summed up.
            const SHOWN: usize = 20;
            for warning in plan.warnings.iter().take(SHOWN) {
                self.state.event("warn", Some(ctx.name), ctx.run_id, warning, Some("the losing side refreshes, then makes its change again if it still matters"))?;
            }
            if plan.warnings.len() > SHOWN {
                self.state.event("warn", Some(ctx.name), ctx.run_id, &format!("{} more changes lost to a first writer (see the history)", plan.warnings.len() - SHOWN), None)?;
            }
        }
        report.note(std::mem::take(&mut plan.commit.history));
        match interrupted {
            Some(problem) => Err(RunError::Interrupted {
                message: format!("the {target} side stopped taking changes: {}: {}", problem.code, problem.message),
                hint: problem.hint.unwrap_or_else(|| "the run is retried; the changes not written are resubmitted".into()),
            }),
            None => Ok(()),
        }
    }
}

/// Moves the progress display on by one page; a page that knows how many
/// records the whole read returns turns it into a bar with the time left.
fn show_progress(progress: &indicatif::ProgressBar, pipeline: &str, side: Side, batch: &ReadBatch) {
    if let Some(total) = batch.total {
        progress.set_length(progress.position() + total);
    }
    progress.inc(batch.records.len() as u64);
    progress.set_message(format!("{pipeline} {side}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(records: usize, total: Option<u64>) -> ReadBatch {
        let record = Record { id: "1".into(), version: None, deleted: false, fields: Vec::new(), born: None };
        ReadBatch { records: vec![record; records], cursor: None, has_more: true, total }
    }

    #[test]
    fn a_read_that_knows_its_total_shows_a_bar_with_the_time_left() {
        let progress = indicatif::ProgressBar::hidden();
        show_progress(&progress, "copy", Side::Left, &page(1000, Some(2500)));
        assert_eq!((progress.position(), progress.length()), (1000, Some(2500)));
        // Later pages do not count again.
        show_progress(&progress, "copy", Side::Left, &page(1000, None));
        assert_eq!((progress.position(), progress.length()), (2000, Some(2500)));
        assert_eq!(progress.message(), "copy left");
    }

    #[test]
    fn a_read_without_a_total_only_counts() {
        let progress = indicatif::ProgressBar::hidden();
        show_progress(&progress, "copy", Side::Right, &page(10, None));
        assert_eq!((progress.position(), progress.length()), (10, None));
    }
}
