//! The engine's commands: `run`, `sync`, `status`, `history`, `conflicts`,
//! `failed`, `messages`, `pause` and `resume`. They answer a person's
//! questions ("why did this value change?", "what is stuck and how do I fix
//! it?") from state, without reading logs.

use crate::admin::status::{half_deleted, StatusView};
use super::remote::{self, RunningHost};
use crate::cli::output::{say, tell};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{load_catalog, CommandError};
use crate::config::Side;
use crate::engine::{Engine, Mode, Resolution, RunError, RunReport};
use crate::model::Value;
use crate::state::lease::{self, LeaseError, WriterLease};
use crate::state::{HistoryEntry, State};

/// Loads config, plugins and state into an engine.
pub fn open_engine(config_path: &Path) -> Result<Engine, CommandError> {
    let (config, catalog) = load_catalog(config_path)?;
    let state = State::open(&config.state_path()).map_err(|e| CommandError::Other(e.into()))?;
    Ok(Engine::new(Arc::new(config), Arc::new(catalog), Arc::new(state)))
}

/// Loads the config and opens its state, for commands that only read state.
pub(super) fn open_state(config_path: &Path) -> Result<(crate::config::LoadedConfig, State), CommandError> {
    let config = crate::config::LoadedConfig::load(config_path).map_err(CommandError::Config)?;
    let state = State::open(&config.state_path()).map_err(state_error)?;
    Ok((config, state))
}

/// Opens the state for a command that only reads it (or makes an admin's
/// small change to it). It works while the config file has errors, as long
/// as the state it names can be found: that is when an admin needs
/// `reloads` and `messages` most.
pub(super) fn open_state_only(config_path: &Path) -> Result<State, CommandError> {
    match crate::config::LoadedConfig::load(config_path) {
        Ok(config) => State::open(&config.state_path()).map_err(state_error),
        Err(errors) => match crate::config::LoadedConfig::state_path_despite_errors(config_path).filter(|path| path.exists()) {
            Some(path) => {
                super::output::tell!("warning: {} has errors (`synchost check` lists them); showing the state it names", config_path.display());
                State::open(&path).map_err(state_error)
            }
            None => Err(CommandError::Config(errors)),
        },
    }
}

pub(super) fn run_error(error: RunError) -> CommandError {
    let mut message = error.to_string();
    if let Some(hint) = error.hint() {
        message.push_str(&format!("\n  = fix: {hint}"));
    }
    CommandError::Reported(message)
}

/// Takes the state store's writer lease for a command that writes to the
/// connected systems, or refuses, naming who holds it and what to do.
pub(super) fn writer_lease(engine: &Engine, command: &str, meanwhile: &str) -> Result<WriterLease, CommandError> {
    lease::acquire(&engine.config.data_dir(), command).map_err(|error| match error {
        LeaseError::Held(holder) => CommandError::Reported(format!(
            "{holder} is writing to this state store; only one writer at a time\n  = fix: {meanwhile}"
        )),
        other => CommandError::Other(other.into()),
    })
}

pub(super) fn state_error(error: crate::state::StateError) -> CommandError {
    CommandError::Other(error.into())
}

fn id_text(side: Option<&str>, id: Option<&str>) -> String {
    format!("{} {}", side.unwrap_or("?"), id.unwrap_or("(new)"))
}

/// One decision as a line (and its field changes below it).
pub fn print_entry(entry: &HistoryEntry) {
    let (source_id, target_id) = match entry.origin {
        Some(Side::Right) => (entry.right_id.as_deref(), entry.left_id.as_deref()),
        _ => (entry.left_id.as_deref(), entry.right_id.as_deref()),
    };
    let origin = entry.origin.map(Side::as_str);
    let target = entry.target.map(Side::as_str);
    match entry.target {
        Some(_) => say!(
            "  {:<8} {} <- {}   [{}]",
            entry.action,
            id_text(target, target_id),
            id_text(origin, source_id),
            entry.rule
        ),
        None => say!(
            "  {:<8} left {} / right {}   [{}]",
            entry.action,
            entry.left_id.as_deref().unwrap_or("-"),
            entry.right_id.as_deref().unwrap_or("-"),
            entry.rule
        ),
    }
    for (field, from, to) in &entry.fields {
        match from {
            Some(from) => say!("             {field}: {} -> {}", from.to_text(), to.to_text()),
            None => say!("             {field}: {}", to.to_text()),
        }
    }
    if let Some(message) = &entry.message {
        say!("             {message}");
    }
}

/// Decisions `sync` prints without `--verbose`: a big run is a summary.
const SHOWN: usize = 20;

fn print_report(pipeline: &str, report: &RunReport, dry_run: bool, all: bool) {
    let shown = if all { report.plan.len() } else { report.plan.len().min(SHOWN) };
    for entry in &report.plan[..shown] {
        print_entry(entry);
    }
    let more = (report.plan.len() - shown) as u64 + report.omitted;
    if more > 0 {
        let history = if dry_run { String::new() } else { format!(" (`synchost history {pipeline}` has every one)") };
        let more_hint = if report.plan.len() <= shown { String::new() } else { format!(", `--all` for the first {}", RunReport::KEPT) };
        say!("  ... and {more} more{history}{more_hint}");
    }
    let c = &report.counts;
    say!(
        "{}{pipeline}: read {} left, {} right; {} created, {} updated, {} deleted, {} conflicts, {} failed{}{}",
        if dry_run { "dry run, nothing changed. " } else { "" },
        c.read_left,
        c.read_right,
        c.created,
        c.updated,
        c.deleted,
        c.conflicts,
        c.failed,
        if c.queued > 0 { format!(", {} waiting for approval", c.queued) } else { String::new() }
            + &if c.held > 0 { format!(", {} held by a scope lock (`synchost locks list`)", c.held) } else { String::new() },
        report.run_id.map(|id| format!(" (run {id})")).unwrap_or_default()
    );
}

/// `sync` while `synchost run` runs: the running host runs each pipeline
/// now, and this waits for each run to end and shows its counts.
async fn sync_through(host: &RunningHost, config: &Path, pipeline: Option<&str>) -> Result<(), CommandError> {
    let names: Vec<String> = match pipeline {
        Some(name) => vec![name.to_owned()],
        None => crate::config::LoadedConfig::load(config).map_err(CommandError::Config)?.config.pipelines.keys().map(ToString::to_string).collect(),
    };
    let me = remote::login_name();
    for name in names {
        let runs = format!("/api/v1/pipelines/{}/runs?limit=1", remote::segment(&name));
        let before = host.call(reqwest::Method::GET, &runs, None, &me).await?[0]["run_id"].as_i64().unwrap_or(0);
        host.call(reqwest::Method::POST, &format!("/api/v1/pipelines/{}/sync", remote::segment(&name)), None, &me).await?;
        tell!("{name}: the running host runs it now");
        let run = loop {
            let last = host.call(reqwest::Method::GET, &runs, None, &me).await?[0].clone();
            if last["run_id"].as_i64().unwrap_or(0) > before && !last["finished_at"].is_null() {
                break last;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let c = &run["counts"];
        let mut waiting = match c["queued"].as_u64().unwrap_or(0) {
            0 => String::new(),
            n => format!(", {n} waiting for approval"),
        };
        if let Some(held) = c["held"].as_u64().filter(|n| *n > 0) {
            waiting.push_str(&format!(", {held} held by a scope lock (`synchost locks list`)"));
        }
        say!(
            "{name}: read {} left, {} right; {} created, {} updated, {} deleted, {} conflicts, {} failed{waiting} (run {}, by the running host; `synchost history {name}` has the details)",
            c["read_left"], c["read_right"], c["created"], c["updated"], c["deleted"], c["conflicts"], c["failed"], run["run_id"]
        );
        if let Some(error) = run["error"].as_str() {
            return Err(CommandError::Reported(format!("{name}: {error}{}", run["hint"].as_str().map(|h| format!("\n  = fix: {h}")).unwrap_or_default())));
        }
    }
    Ok(())
}

/// `synchost trace PIPELINE [--minutes N]`
pub async fn trace(config: &Path, pipeline: &str, minutes: u64) -> Result<(), CommandError> {
    let host = RunningHost::find(config).ok_or_else(|| {
        CommandError::Reported(
            "no `synchost run` with its admin API runs on this config: verbose tracing changes a running host's log\n  = fix: start `synchost run`; for one run now, `synchost -v sync PIPELINE`".into(),
        )
    })?;
    let body = serde_json::json!({ "minutes": minutes });
    let answer = host.call(reqwest::Method::POST, &format!("/api/v1/pipelines/{}/trace", remote::segment(pipeline)), Some(body), &remote::login_name()).await?;
    say!("{}; the host's log has it", answer["message"].as_str().unwrap_or("traced"));
    Ok(())
}

/// `synchost sync PIPELINE [--dry-run]`
pub async fn sync(config: &Path, pipeline: Option<&str>, dry_run: bool, rematch: bool, all: bool) -> Result<(), CommandError> {
    if !dry_run && !rematch && let Some(host) = RunningHost::find(config) {
        return sync_through(&host, config, pipeline).await;
    }
    let mut engine = open_engine(config)?;
    // A dry run changes nothing, so it may run beside a writer.
    let _lease = if dry_run {
        None
    } else {
        Some(writer_lease(&engine, "sync", "the running host syncs every pipeline on its schedule; stop it to sync now, or use `sync --dry-run` beside it")?)
    };
    let names: Vec<String> = match pipeline {
        Some(name) => vec![name.to_owned()],
        None => engine.config.config.pipelines.keys().map(|k| k.to_string()).collect(),
    };
    let progress = indicatif::ProgressBar::new_spinner();
    // On a terminal only (indicatif draws nothing when stderr is not one).
    // "of N" and the time left appear once a connector tells a read's total.
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg}: {human_pos}{of} records read, {rate}, {elapsed}{left}")
            .expect("valid template")
            .with_key("rate", |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{}/s", indicatif::HumanCount(state.per_sec() as u64));
            })
            .with_key("of", |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                if let Some(total) = state.len() {
                    let _ = write!(out, " of {}", indicatif::HumanCount(total));
                }
            })
            .with_key("left", |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                if state.len().is_some() && state.pos() > 0 {
                    let _ = write!(out, ", about {} left", indicatif::HumanDuration(state.eta()));
                }
            }),
    );
    progress.enable_steady_tick(Duration::from_millis(120));
    engine.progress = Some(progress.clone());
    let mut failed = false;
    for name in names {
        let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
        match engine.run_with(&name, "manual", mode, rematch).await {
            Ok(report) => {
                progress.suspend(|| print_report(&name, &report, dry_run, all));
            }
            Err(error) => {
                failed = true;
                progress.suspend(|| tell!("{name}: {}", run_error(error).message()));
            }
        }
    }
    progress.finish_and_clear();
    if failed { Err(CommandError::Reported("some pipelines failed; see above, and `synchost status`".into())) } else { Ok(()) }
}

/// `synchost run`: the daemon, until Ctrl-C or SIGTERM.
pub async fn run(config: &Path) -> Result<(), CommandError> {
    let engine = Arc::new(open_engine(config)?);
    let _lease = writer_lease(&engine, "run", "stop the other one first, or give this config its own [host] data_dir")?;
    // A damaged store is reported before any work, not read as empty.
    engine.state.verify().map_err(state_error)?;
    say!(
        "synchost running {} pipeline(s); state in {}; Ctrl-C stops after the current batch; config changes are reloaded",
        engine.config.config.pipelines.len(),
        engine.state.path().display()
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match terminate.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        let _ = stop.send(true);
    });
    crate::daemon::run(engine, stopped).await.map_err(CommandError::Other)
}

/// `synchost status [--json]`
pub async fn status(config: &Path, json: bool) -> Result<(), CommandError> {
    let (config, state) = open_state(config)?;
    let view = crate::admin::status::view(&config, &state).map_err(state_error)?;
    let StatusView { scheduler_running, writer, heartbeat, serving, last_reload, failed, conflicts, approvals, pipelines: rows, replicas, scopes } = &view;
    let scheduler_alive = *scheduler_running;
    if json {
        say!("{}", serde_json::to_string_pretty(&view.to_json()).expect("JSON values serialize"));
        return Ok(());
    }
    match (&writer, &heartbeat) {
        (Some(w), h) if scheduler_alive => say!(
            "scheduler: running (pid {} on {}, since {}{})",
            w.pid,
            w.host,
            w.since,
            h.as_ref().map(|h| format!(", last heartbeat {}", h.beat_at)).unwrap_or_default()
        ),
        (_, Some(h)) => say!("scheduler: NOT RUNNING (last heartbeat {}): nothing syncs until `synchost run` is started", h.beat_at),
        (_, None) => say!("scheduler: NOT RUNNING (never started): nothing syncs until `synchost run` is started"),
    }
    if let Some(serving) = &serving {
        let how = if serving.outcome == crate::state::reloads::ReloadOutcome::Loaded { "at start" } else { "on reload" };
        say!("config: revision {} loaded {how} at {}", serving.revision, serving.at);
    }
    if let Some(last) = last_reload.as_ref().filter(|last| serving.as_ref().is_none_or(|s| s.id != last.id)) {
        say!("last reload: {} at {}: {} (`synchost reloads` has the details)", last.outcome.as_str(), last.at, last.summary);
    }
    if let Some(w) = writer.as_ref().filter(|w| w.command != "run") {
        say!("writing now: {w}");
    }
    let mut categories: Vec<String> = rows.iter().map(|r| r["category"].as_str().unwrap_or("").to_owned()).collect();
    categories.sort();
    categories.dedup();
    for category in categories {
        say!("\n{category}:");
        for row in rows.iter().filter(|r| r["category"] == category.as_str()) {
            let stalled = if row["stalled"] == true { " STALLED" } else { "" };
            say!("  {:<24} {}{stalled}", row["pipeline"].as_str().unwrap_or(""), row["summary"].as_str().unwrap_or(""));
            if let Some(last) = row["last_run"].as_object() {
                let c = &last["counts"];
                say!(
                    "  {:<24} last run {} at {}: {} created, {} updated, {} deleted, {} conflicts, {} failed",
                    "", last["status"].as_str().unwrap_or(""), last["at"].as_str().unwrap_or(""), c["created"], c["updated"], c["deleted"], c["conflicts"], c["failed"]
                );
            }
            let waiting = match row["waiting_for_approval"].as_u64().unwrap_or(0) {
                0 => String::new(),
                n => format!("{n} waiting for approval, "),
            };
            say!(
                "  {:<24} {} links, {} failed items, {} open conflicts, {waiting}{}",
                "", row["links"], row["failed_items"], row["open_conflicts"], row["schedule"].as_str().unwrap_or("")
            );
            if let Some(hint) = row["hint"].as_str() {
                say!("  {:<24} fix: {hint}", "");
            }
            // Per item: what failed, why, and what to do about it (T2).
            let items = row["items"].as_array().map(Vec::as_slice).unwrap_or_default();
            for item in items.iter().take(ITEMS_SHOWN) {
                say!(
                    "  {:<24} {} {} {}: {}: {}",
                    "",
                    item["result"].as_str().unwrap_or(""),
                    item["side"].as_str().unwrap_or(""),
                    item["record"].as_str().unwrap_or(""),
                    item["error"].as_str().unwrap_or(""),
                    item["detail"].as_str().unwrap_or("")
                );
                if let Some(fix) = item["fix"].as_str() {
                    say!("  {:<24}   fix: {fix}", "");
                }
            }
            if items.len() > ITEMS_SHOWN {
                say!("  {:<24} ... and {} more (`synchost failed list {}`)", "", items.len() - ITEMS_SHOWN, row["pipeline"].as_str().unwrap_or(""));
            }
        }
    }
    if !replicas.is_empty() {
        say!("\nreplicas:");
    }
    for replica in replicas {
        let name = replica["replica"].as_str().unwrap_or("");
        if let Some(error) = replica["error"].as_str() {
            say!("  {name:<24} {error}");
            continue;
        }
        say!(
            "  {name:<24} {} with `{}`, this host {}s; {} change(s) kept for resending",
            replica["kind"].as_str().unwrap_or(""),
            replica["peer"].as_str().unwrap_or(""),
            replica["role"].as_str().unwrap_or("").trim_end_matches("er"),
            replica["kept_changes"]
        );
        if let Some(last) = replica["activity"].as_array().and_then(|a| a.last()) {
            say!("  {:<24} last: {} {}", "", last["at"].as_str().unwrap_or(""), last["message"].as_str().unwrap_or(""));
            if let Some(fix) = last["fix"].as_str().filter(|_| last["level"] == "error") {
                say!("  {:<24}   fix: {fix}", "");
            }
        }
    }
    if !scopes.is_empty() {
        say!("\nscopes:");
        super::locks::print_scopes(scopes);
    }
    if !failed.is_empty() {
        say!("\nfailed items: {} (see `synchost failed list`)", failed.len());
    }
    if !conflicts.is_empty() {
        say!("open conflicts: {} (see `synchost conflicts list`)", conflicts.len());
    }
    if !approvals.is_empty() {
        say!("waiting for approval: {} (see `synchost approvals list`)", approvals.len());
    }
    Ok(())
}

/// Items listed per pipeline in `status`; the rest are counted.
const ITEMS_SHOWN: usize = 10;

/// `synchost history PIPELINE [ID]`
pub fn history(config: &Path, pipeline: &str, record: Option<&str>, limit: u32, json: bool) -> Result<(), CommandError> {
    let state = open_state_only(config)?;
    let rows = state.history(pipeline, record, limit).map_err(state_error)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&rows).expect("JSON values serialize"));
        return Ok(());
    }
    if rows.is_empty() {
        say!("no history for {pipeline}{}", record.map(|r| format!(" record {r}")).unwrap_or_default());
    }
    for row in rows.iter().rev() {
        // A batch of creates names how many, not one record.
        let records = match (row.records, &row.left_id, &row.right_id) {
            (Some(count), None, None) => format!("{count} records"),
            _ => format!("left {} / right {}", row.left_id.as_deref().unwrap_or("-"), row.right_id.as_deref().unwrap_or("-")),
        };
        say!(
            "{} run {:<4} {:<8} {records}{}{}  [{}]",
            row.at,
            row.run_id.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            row.action,
            row.label.as_deref().map(|l| format!(" {l:?}")).unwrap_or_default(),
            match (&row.origin, &row.target) {
                (Some(o), Some(t)) => format!(", {o} -> {t}"),
                _ => String::new(),
            },
            row.rule
        );
        if let Some(fields) = row.fields.as_object() {
            for (name, change) in fields {
                match change.get("from").filter(|v| !v.is_null()) {
                    Some(from) => say!("      {name}: {from} -> {}", change["to"]),
                    None => say!("      {name}: {}", change["to"]),
                }
            }
        }
        if let Some(message) = &row.message {
            say!("      {message}");
        }
    }
    Ok(())
}

/// `synchost conflicts list [PIPELINE]`
pub fn conflicts_list(config: &Path, pipeline: Option<&str>, all: bool) -> Result<(), CommandError> {
    let (loaded, state) = open_state(config)?;
    let rows = state.conflicts(pipeline, !all).map_err(state_error)?;
    // A delete against a later edit that left the pair half-deleted is a
    // conflict too, settled by hand.
    let mut half = Vec::new();
    for name in loaded.config.pipelines.keys().map(|n| n.as_str()).filter(|n| pipeline.is_none_or(|p| p == *n)) {
        half.extend(state.half_deleted_links(name).map_err(state_error)?.into_iter().map(|link| (name.to_owned(), link)));
    }
    for (name, link) in &half {
        let create = loaded.config.pipelines.iter().find(|(n, _)| n.as_str() == name).map(|(_, p)| p.create).unwrap_or_default();
        let (deleted, kept, fix) = half_deleted(name, create, link);
        say!("half-deleted {name:<20} left {} / right {}: deleted on the {deleted} side only; the {kept} record is kept and its edits do not sync", link.left_id, link.right_id);
        say!("      fix: {fix}");
    }
    if rows.is_empty() {
        say!("no {}conflicts of fields", if all { "" } else { "open " });
    }
    for c in rows {
        say!(
            "#{:<4} {:<20} left {} / right {}  field `{}`: left {} | right {}  ({}{})",
            c.id,
            c.pipeline,
            c.left_id,
            c.right_id,
            c.field,
            c.left_value.to_text(),
            c.right_value.to_text(),
            c.status,
            c.resolution.map(|r| format!(": {r} by {}", c.resolved_by.unwrap_or_default())).unwrap_or_default()
        );
    }
    say!("resolve with: synchost conflicts resolve ID --take left|right   or   --value VALUE");
    Ok(())
}

/// `synchost approvals list [PIPELINE] [--all]`
pub fn approvals_list(config: &Path, pipeline: Option<&str>, all: bool, json: bool) -> Result<(), CommandError> {
    let state = open_state_only(config)?;
    let rows = state.approvals(pipeline, all).map_err(state_error)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&rows).expect("JSON values serialize"));
        return Ok(());
    }
    if rows.is_empty() {
        say!("{}", if all { "the approval queue is empty" } else { "no changes waiting for approval" });
    }
    for a in &rows {
        let decision = match (&a.decided_by, &a.outcome) {
            (Some(by), Some(outcome)) => format!("  [{} by {by}; {outcome}]", a.status),
            (Some(by), None) => format!("  [{} by {by}]", a.status),
            _ => String::new(),
        };
        let named = a.label.as_deref().map(|label| format!(" \"{label}\"")).unwrap_or_default();
        say!("#{:<7} {:<20} {} record {}{named}: {}{decision}", format!("{}@{}", a.id, a.revision), a.pipeline, a.side, a.source_id, a.summary);
    }
    if rows.iter().any(|a| a.status == "pending") {
        say!("decide with: synchost approvals approve ID@REVISION...   or   synchost approvals reject ID@REVISION... --comment TEXT");
    }
    Ok(())
}

/// `synchost approvals show ID`
pub fn approvals_show(config: &Path, id: i64) -> Result<(), CommandError> {
    let state = open_state_only(config)?;
    let a = state.approval(id).map_err(state_error)?.ok_or_else(|| CommandError::Reported(format!("there is no approval {id}; list them with `synchost approvals list --all`")))?;
    let named = a.label.as_deref().map(|label| format!(" \"{label}\"")).unwrap_or_default();
    say!("approval {}@{}: pipeline {}, from the {} record {}{named} (revision {})", a.id, a.revision, a.pipeline, a.side, a.source_id, a.revision);
    say!("  target:    {}", a.target_id.as_deref().unwrap_or("a new record"));
    say!("  change:    {}", a.summary);
    say!("  submitted: {}", a.submitted_at);
    say!("  status:    {}", a.status);
    if let Some(by) = &a.decided_by {
        say!("  decided:   by {by} at {}{}", a.decided_at.as_deref().unwrap_or(""), a.comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default());
    }
    if let Some(outcome) = &a.outcome {
        say!("  outcome:   {outcome}{}", if a.applied_at.is_none() { " (not carried out yet)" } else { "" });
    }
    Ok(())
}

/// An approval as the command line names it: `ID` or `ID@REVISION`.
fn approval_ref(text: &str) -> Result<(i64, Option<i64>), CommandError> {
    let bad = || CommandError::Reported(format!("`{text}` is not an approval: write ID or ID@REVISION, as `synchost approvals list` shows"));
    match text.split_once('@') {
        Some((id, revision)) => Ok((id.parse().map_err(|_| bad())?, Some(revision.parse().map_err(|_| bad())?))),
        None => Ok((text.parse().map_err(|_| bad())?, None)),
    }
}

/// `synchost approvals approve|reject ID[@REVISION]...`
pub async fn approvals_decide(config: &Path, ids: &[String], approve: bool, by: &str, comment: Option<&str>) -> Result<(), CommandError> {
    let ids: Vec<(i64, Option<i64>)> = ids.iter().map(|id| approval_ref(id)).collect::<Result<_, _>>()?;
    let engine = open_engine(config)?;
    let verb = if approve { "approved" } else { "rejected" };
    match lease::acquire(&engine.config.data_dir(), "approvals") {
        Ok(_lease) => {
            for (id, revision) in ids {
                let outcome = engine.decide_approval(id, revision, approve, by, comment).await.map_err(run_error)?;
                say!("approval {id}: {verb} by {by}; {outcome}");
            }
        }
        // The running host is the one writer: it carries the decision out.
        Err(LeaseError::Held(holder)) => match RunningHost::find(config) {
            Some(host) => {
                let action = if approve { "approve" } else { "reject" };
                for (id, revision) in ids {
                    let body = serde_json::json!({ "comment": comment, "revision": revision });
                    let answer = host.call(reqwest::Method::POST, &format!("/api/v1/approvals/{id}/{action}"), Some(body), by).await?;
                    say!("{}", answer["message"].as_str().unwrap_or(verb));
                }
            }
            // A host without its API (the port taken, or turned off) still carries decisions out on its runs.
            None => {
                for (id, revision) in ids {
                    engine.record_decision(id, revision, approve, by, comment).map_err(run_error)?;
                    say!("approval {id}: {verb} by {by}; {holder} carries it out on the pipeline's next run");
                }
            }
        },
        Err(other) => return Err(CommandError::Other(other.into())),
    }
    Ok(())
}

/// Reads a value typed on the command line: a number, true/false, null, or text.
pub fn parse_value(text: &str) -> Value {
    if text == "null" {
        Value::Null
    } else if let Ok(i) = text.parse::<i64>() {
        Value::Integer(i)
    } else if let Ok(f) = text.parse::<f64>() {
        Value::Float(f)
    } else if let Ok(b) = text.parse::<bool>() {
        Value::Boolean(b)
    } else {
        Value::Text(text.to_owned())
    }
}

/// `synchost conflicts resolve ID --take SIDE | --value VALUE`
pub async fn conflicts_resolve(config: &Path, id: i64, take: Option<&str>, value: Option<&str>, by: &str) -> Result<(), CommandError> {
    let resolution = match (take, value) {
        (Some(side), None) => Resolution::Take(Side::parse(side).ok_or_else(|| CommandError::Reported(format!("--take {side}: say left or right")))?),
        (None, Some(value)) => Resolution::Value(parse_value(value)),
        _ => return Err(CommandError::Reported("say --take left|right, or --value VALUE".into())),
    };
    if let Some(host) = RunningHost::find(config) {
        let body = match (take, value) {
            (Some(side), _) => serde_json::json!({ "take": side }),
            (_, Some(value)) => serde_json::json!({ "value": parse_value(value).to_json() }),
            _ => unreachable!("checked above"),
        };
        let answer = host.call(reqwest::Method::POST, &format!("/api/v1/conflicts/{id}/resolve"), Some(body), by).await?;
        say!("conflict {id} resolved: {} (by the running host)", answer["message"].as_str().unwrap_or(""));
        return Ok(());
    }
    let engine = open_engine(config)?;
    let _lease = writer_lease(&engine, "conflicts resolve", "stop the running host, resolve, and start it again")?;
    let answer = engine.resolve_conflict(id, resolution, by).await.map_err(run_error)?;
    say!("conflict {id} resolved: {answer}");
    Ok(())
}

/// `synchost failed list [PIPELINE]`
pub fn failed_list(config: &Path, pipeline: Option<&str>, json: bool) -> Result<(), CommandError> {
    let state = open_state_only(config)?;
    let rows = state.failed(pipeline).map_err(state_error)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&rows).expect("JSON values serialize"));
        return Ok(());
    }
    if rows.is_empty() {
        say!("no failed items");
    }
    for f in rows {
        let named = f.label.as_deref().map(|label| format!(" \"{label}\"")).unwrap_or_default();
        say!(
            "#{:<4} {:<20} {} record {}{named}: {} ({}; {} attempt(s), last {})",
            f.id, f.pipeline, f.side, f.source_id, f.reason, f.code, f.attempts, f.last_failed_at
        );
        if let Some(hint) = &f.hint {
            say!("      fix: {hint}");
        }
    }
    Ok(())
}

/// `synchost failed retry PIPELINE [ID...]`
pub async fn failed_retry(config: &Path, pipeline: &str, ids: &[i64]) -> Result<(), CommandError> {
    if let Some(host) = RunningHost::find(config) {
        let body = serde_json::json!({ "ids": (!ids.is_empty()).then_some(ids) });
        let answer = host.call(reqwest::Method::POST, &format!("/api/v1/pipelines/{}/failed/retry", remote::segment(pipeline)), Some(body), &remote::login_name()).await?;
        say!("{pipeline}: {} (by the running host)", answer["message"].as_str().unwrap_or("retried"));
        return Ok(());
    }
    let engine = open_engine(config)?;
    let _lease = writer_lease(&engine, "failed retry", "the running host resubmits failed items by itself (every retry.resubmit, and when what they wait for is linked); stop it to retry now")?;
    let report = engine.resubmit_failed(pipeline, (!ids.is_empty()).then_some(ids), "manual resubmit").await.map_err(run_error)?;
    print_report(pipeline, &report, false, false);
    Ok(())
}

/// `synchost messages [--since WHEN]`: the latest sync events (P12).
pub fn messages(config: &Path, since: Option<&str>, limit: u32) -> Result<(), CommandError> {
    let state = open_state_only(config)?;
    let since = match since {
        None => None,
        Some(text) => Some(match humantime::parse_duration(text) {
            Ok(ago) => (chrono::Utc::now() - chrono::Duration::from_std(ago).unwrap_or_default())
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            Err(_) => text.to_owned(),
        }),
    };
    let rows = state.events(since.as_deref(), limit).map_err(state_error)?;
    if rows.is_empty() {
        say!("no messages");
    }
    for e in rows {
        let repeats = match (&e.last_at, e.repeats) {
            (Some(last), n) if n > 1 => format!(" ({n} times, last at {last})"),
            _ => String::new(),
        };
        say!("{} {:<5} {:<20} {}{repeats}", e.at, e.level, e.pipeline.as_deref().unwrap_or("host"), e.message);
        if let Some(hint) = e.hint {
            say!("      fix: {hint}");
        }
    }
    Ok(())
}

/// `synchost pause PIPELINE --by NAME` / `synchost resume PIPELINE`
pub async fn pause(config: &Path, pipeline: &str, by: Option<&str>) -> Result<(), CommandError> {
    if let Some(host) = RunningHost::find(config) {
        let (action, who) = match by {
            Some(by) => ("pause", by.to_owned()),
            None => ("resume", remote::login_name()),
        };
        let answer = host.call(reqwest::Method::POST, &format!("/api/v1/pipelines/{}/{action}", remote::segment(pipeline)), None, &who).await?;
        say!("{}", answer["message"].as_str().unwrap_or(action));
        return Ok(());
    }
    let config = crate::config::LoadedConfig::load(config).map_err(CommandError::Config)?;
    if !config.config.pipelines.keys().any(|k| k.as_str() == pipeline) {
        return Err(CommandError::Reported(format!("there is no pipeline named `{pipeline}`")));
    }
    let state = State::open(&config.state_path()).map_err(state_error)?;
    state.set_paused(pipeline, by).map_err(state_error)?;
    let message = match by {
        Some(by) => format!("{pipeline} paused by {by}"),
        None => format!("{pipeline} resumed"),
    };
    state.event("info", Some(pipeline), None, &message, None).map_err(state_error)?;
    say!("{message}");
    Ok(())
}

impl CommandError {
    fn message(&self) -> String {
        match self {
            CommandError::Reported(m) => m.clone(),
            other => format!("{other:?}"),
        }
    }
}

/// `synchost mirror diff PIPELINE`: where the two sets of books disagree (P10).
pub async fn mirror_diff(config: &Path, pipeline: &str) -> Result<(), CommandError> {
    let engine = open_engine(config)?;
    let differences = engine.mirror_diff(pipeline).await.map_err(run_error)?;
    if differences.is_empty() {
        say!("{pipeline}: the mirrored fields agree on every linked item");
    }
    for d in &differences {
        say!(
            "left {} / right {}  `{}`: left {} | right {}",
            d.left_id,
            d.right_id,
            d.field,
            d.left_value.to_text(),
            d.right_value.to_text()
        );
    }
    Ok(())
}
