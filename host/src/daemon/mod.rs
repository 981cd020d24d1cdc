//! The daemon: `synchost run`.
//!
//! A supervisor keeps the engine that serves (config, plugins, instances),
//! a task per pipeline, the scheduler's heartbeat in state (C10), and hot
//! reload (H5): on a change of the config file or a plugin file it names
//! (debounced), or on SIGHUP (`synchost reload`), it prepares the new
//! version beside the running one and, if everything loads and probes,
//! swaps it in. A pipeline the reload changed ends its current run after the
//! batch in flight (each batch is committed whole, so nothing is lost or
//! done twice) and starts the next on the new version at once; unchanged
//! pipelines are not interrupted. Every load and reload is recorded with its
//! outcome.
//!
//! - `schedule`: one pipeline's loop: schedule, backoff, resubmission.
//! - `reload`: reading the config again and building what it changes.
//! - `control`: how the admin API wakes a pipeline and takes its turn.
//! - `replicas`: unattended exchange of replica messages on their schedules.

mod control;
mod reload;
mod replicas;
mod schedule;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::watcher::{self, FileWatcher};
use crate::config::{ConfigDiff, LoadedConfig, PieceChange};
use crate::engine::Engine;
use crate::http::AdminContext;
use crate::state::now;
use crate::state::reloads::{ReloadOutcome, ReloadTrigger};

pub use control::Control;
pub use reload::{prepare, revision, serving_revision, Prepared, Reason};
pub use schedule::backoff;

/// How often the scheduler writes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// The version that serves: the engine, and which pipelines the reload that
/// built it added or changed (they start a run at once).
pub struct Serving {
    pub engine: Arc<Engine>,
    pub restarted: BTreeSet<String>,
}

/// Runs every pipeline on its schedule, reloading on changes, until
/// `shutdown` turns true; then lets each pipeline finish its current batch.
pub async fn run(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let state = engine.state.clone();
    let heartbeat = tokio::spawn(beat(engine.clone()));
    state.event("info", None, None, &format!("scheduler started (pid {})", std::process::id()), None)?;
    let (serving, watching) = watch::channel(Arc::new(Serving { engine: engine.clone(), restarted: BTreeSet::new() }));
    let control = Arc::new(Control::default());
    // Served while the endpoints are probed: /readyz says when that is done.
    serve_admin(&engine, AdminContext { serving: watching.clone(), control: control.clone() }, shutdown.clone()).await?;
    engine.probe_at_startup().await?;
    control.set_probed();
    let count = engine.config.config.pipelines.len();
    state.record_reload(ReloadTrigger::Start, ReloadOutcome::Loaded, &serving_revision(&engine), &format!("{count} pipeline(s)"), None)?;

    let mut loops: BTreeMap<String, JoinHandle<()>> = BTreeMap::new();
    for name in engine.config.config.pipelines.keys() {
        loops.insert(name.to_string(), tokio::spawn(schedule::pipeline_loop(watching.clone(), control.clone(), name.to_string(), shutdown.clone())));
    }
    // Replicas with a schedule exchange through their folders unattended (read at start).
    for (name, replica) in &engine.config.config.replicas {
        if replica.schedule.is_some() && (replica.folders.is_some() || replica.http.is_some() || replica.ftp.is_some()) {
            loops.insert(format!("replica {name}"), tokio::spawn(replicas::exchange_loop(watching.clone(), control.clone(), name.to_string(), shutdown.clone())));
        }
    }
    let (changed, mut changes) = mpsc::unbounded_channel();
    let mut files = match FileWatcher::new(changed) {
        Ok(files) => Some(files),
        Err(error) => {
            tracing::warn!("Cannot watch the config for changes ({error}); reload with `synchost reload` or SIGHUP");
            None
        }
    };
    watch_files(&mut files, &engine.config);
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    drop(engine);

    loop {
        let trigger = tokio::select! {
            _ = shutdown.changed() => break,
            Some(first) = changes.recv() => {
                let paths = watcher::settle(&mut changes, first, watcher::DEBOUNCE).await;
                tracing::info!(files = ?paths, "Files changed: reloading");
                ReloadTrigger::File
            }
            Some(()) = hangup.recv() => ReloadTrigger::Signal,
        };
        let current = serving.borrow().engine.clone();
        if let Some((engine, diff)) = reload_once(&current, trigger).await? {
            watch_files(&mut files, &engine.config);
            current.retire(diff.superseded_pipelines());
            for (name, change) in &diff.pipelines {
                let running = loops.get(name).is_some_and(|task| !task.is_finished());
                if *change == PieceChange::Added && !running {
                    loops.insert(name.clone(), tokio::spawn(schedule::pipeline_loop(watching.clone(), control.clone(), name.clone(), shutdown.clone())));
                }
            }
            serving.send_replace(Arc::new(Serving { engine, restarted: diff.restarted_pipelines() }));
        }
    }
    tracing::info!("Stopping: letting each pipeline finish its current batch");
    serving.borrow().engine.stop.store(true, Ordering::Relaxed);
    for task in loops.into_values() {
        let _ = task.await;
    }
    heartbeat.abort();
    state.event("info", None, None, "scheduler stopped", None)?;
    Ok(())
}

/// Starts the admin API if the config asks for it. A port it cannot take
/// does not stop syncing: the reason goes to the log and the event log.
async fn serve_admin(engine: &Engine, context: AdminContext, shutdown: watch::Receiver<bool>) -> Result<(), crate::state::StateError> {
    let settings = &engine.config.config.host.admin;
    if !settings.enabled {
        return Ok(());
    }
    let tls = match &settings.tls {
        None => None,
        Some(tls) => match crate::http::tls::server_config(&engine.config.resolve(&tls.cert), &engine.config.resolve(&tls.key)) {
            Ok(config) => Some(config),
            Err(error) => {
                tracing::error!("The admin API cannot serve HTTPS: {error}; syncing goes on without it");
                crate::state::lease::record_admin_address(&engine.config.data_dir(), None);
                engine.state.event("error", None, None, &format!("the admin API cannot serve HTTPS: {error}"), Some(&format!("{}, and start `synchost run` again", error.fix())))?;
                return Ok(());
            }
        },
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (message, hint) = match crate::http::start(settings.listen, tls, context, shutdown).await {
        Ok(address) => {
            tracing::info!(%address, "Admin API on {scheme}://{address}/api/v1 (make a token with `synchost tokens create USER`)");
            if let Err(error) = crate::http::issue_local_token(&engine.state, &engine.config.data_dir()) {
                tracing::warn!("Cannot leave a token for this host's command line: {error}; `synchost sync` and the like refuse while the host runs");
            }
            crate::state::lease::record_admin_address(&engine.config.data_dir(), Some(address));
            (format!("admin API listening on {scheme}://{address}"), None)
        }
        Err(error) => {
            tracing::error!("The admin API cannot listen on {}: {error}; syncing goes on without it", settings.listen);
            crate::state::lease::record_admin_address(&engine.config.data_dir(), None);
            (
                format!("the admin API cannot listen on {}: {error}", settings.listen),
                Some("set another address in [host.admin] listen (or enabled = false), and start `synchost run` again".to_owned()),
            )
        }
    };
    engine.state.event(if hint.is_some() { "error" } else { "info" }, None, None, &message, hint.as_deref())?;
    Ok(())
}

/// Writes the heartbeat every [`HEARTBEAT`], apart from reloads (a compile may take a while).
async fn beat(engine: Arc<Engine>) {
    let started = now();
    let host = crate::state::lease::host_name();
    let state = engine.state.clone();
    drop(engine);
    loop {
        if let Err(error) = state.beat(std::process::id(), &host, &started) {
            tracing::warn!("Could not write the scheduler heartbeat: {error}");
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

fn watch_files(files: &mut Option<FileWatcher>, config: &LoadedConfig) {
    if let Some(watcher) = files
        && let Err(error) = watcher.watch(watcher::watched_files(config))
    {
        tracing::warn!("Cannot watch the config's files for changes ({error}); reload with `synchost reload` or SIGHUP");
    }
}

/// One reload, recorded with its outcome: the new engine and its diff if
/// one is to be swapped in.
async fn reload_once(current: &Engine, trigger: ReloadTrigger) -> Result<Option<(Arc<Engine>, ConfigDiff)>, crate::state::StateError> {
    let state = &current.state;
    let started = std::time::Instant::now();
    match prepare(current).await {
        Prepared::Unchanged => {
            let revision = serving_revision(current);
            state.record_reload(trigger, ReloadOutcome::Unchanged, &revision, "nothing changed", None)?;
            tracing::info!(revision, "Reload: nothing changed");
            Ok(None)
        }
        Prepared::Rejected(reasons) => {
            let revision = serving_revision(current);
            let summary = format!("rejected, revision {revision} keeps serving: {}", reasons.first().map(|r| r.message.as_str()).unwrap_or(""));
            let detail = serde_json::to_value(&reasons).unwrap_or_default();
            state.record_reload(trigger, ReloadOutcome::Rejected, &revision, &summary, Some(&detail))?;
            for reason in &reasons {
                tracing::warn!(revision, "Reload rejected: {reason}");
            }
            let hint = reasons.first().and_then(|r| r.hint.clone());
            state.event("error", None, None, &format!("config reload {summary}"), hint.as_deref())?;
            Ok(None)
        }
        Prepared::Ready { engine, diff } => {
            let revision = serving_revision(&engine);
            let summary = diff.summary();
            let detail = serde_json::to_value(&diff).unwrap_or_default();
            state.record_reload(trigger, ReloadOutcome::Applied, &revision, &summary, Some(&detail))?;
            tracing::info!(revision, took_ms = started.elapsed().as_millis() as u64, "Reload applied: {summary}");
            state.event("info", None, None, &format!("config reloaded (revision {revision}): {summary}"), None)?;
            hold_possible_renames(&current.config, &engine, &diff)?;
            Ok(Some((Arc::from(engine), diff)))
        }
    }
}

/// Pipelines a reload removed, and pipelines it added with the same two
/// sides: each such pair, which is likely a rename.
pub fn possible_renames(diff: &ConfigDiff, old: &LoadedConfig, new: &LoadedConfig) -> Vec<(String, String)> {
    let sides = |config: &LoadedConfig, name: &str| {
        config.config.pipelines.iter().find(|(n, _)| n.as_str() == name).map(|(_, p)| {
            (p.left.endpoint.get_ref().to_string(), p.left.entity.clone(), p.right.endpoint.get_ref().to_string(), p.right.entity.clone())
        })
    };
    let of = |change: PieceChange| diff.pipelines.iter().filter(move |(_, c)| **c == change).map(|(name, _)| name);
    let mut pairs = Vec::new();
    for removed in of(PieceChange::Removed) {
        for added in of(PieceChange::Added) {
            if sides(old, removed).is_some() && sides(old, removed) == sides(new, added) {
                pairs.push((removed.clone(), added.clone()));
            }
        }
    }
    pairs
}

/// Keeps a pipeline that looks like a renamed one from syncing everything
/// again as new: it starts paused until an admin renames the old state to
/// it or resumes it to start fresh. Removed pipelines keep their state.
fn hold_possible_renames(old: &LoadedConfig, new: &Engine, diff: &ConfigDiff) -> Result<(), crate::state::StateError> {
    let state = &new.state;
    let renames = possible_renames(diff, old, &new.config);
    for (removed, added) in &renames {
        if state.pipeline_has_state(removed)? && !state.pipeline_has_state(added)? {
            state.set_paused(added, Some("reload"))?;
            let message = format!("pipeline `{added}` has the same sides as the removed `{removed}`: held paused so that it does not sync everything again as new");
            let hint = format!("take the old pipeline's links and cursors with `synchost pipelines rename {removed} {added}`, or start it fresh with `synchost resume {added}`");
            tracing::warn!("{message}; {hint}");
            state.event("warn", Some(added), None, &message, Some(&hint))?;
        }
    }
    for (name, _) in diff.pipelines.iter().filter(|(_, c)| **c == PieceChange::Removed) {
        if state.pipeline_has_state(name)? && !renames.iter().any(|(removed, _)| removed == name) {
            state.event(
                "info",
                Some(name),
                None,
                &format!("pipeline `{name}` removed from the config; its links and cursors are kept"),
                Some(&format!("put it back to go on where it stopped, or delete its state with `synchost pipelines forget {name}`")),
            )?;
        }
    }
    Ok(())
}
