//! `synchost locks` (list, take, release, log) and `synchost undo|redo RUN`:
//! scope locks, the changes they hold back, and taking runs back (L2-L5).
//! Through the running host's API when one runs (it carries them out in
//! its pipelines' turns); else on the state directly. The host's command
//! line acts with an admin's rights, in the name of `--by`.

use std::path::Path;

use serde_json::{json, Value};

use super::admin::{open_engine, open_state, run_error, state_error};
use super::output::say;
use super::remote::{segment, RunningHost};
use super::CommandError;
use crate::engine::{Actor, UndoDirection, UndoReport};
use crate::state::lease::{self, LeaseError};

/// Prints each scope: who holds it, since when, what it holds back.
pub fn print_scopes(scopes: &[Value]) {
    for scope in scopes {
        let name = scope["scope"].as_str().unwrap_or("");
        let pipelines: Vec<&str> = scope["pipelines"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let lock = &scope["lock"];
        let state = if lock.is_null() {
            "unlocked".to_owned()
        } else {
            format!(
                "LOCKED by {} since {} ({}, from `{}`; last change {}; released after {} idle)",
                lock["holder"].as_str().unwrap_or(""),
                lock["since"].as_str().unwrap_or(""),
                lock["how"].as_str().unwrap_or(""),
                lock["endpoint"].as_str().unwrap_or(""),
                lock["last_activity"].as_str().unwrap_or(""),
                scope["idle_timeout"].as_str().unwrap_or("")
            )
        };
        say!("  {name:<24} {state}; pipelines {}", pipelines.join(", "));
        let held = scope["held"].as_array().map(Vec::as_slice).unwrap_or_default();
        for change in held {
            say!(
                "  {:<24}   held {} {} {}: {} (since {})",
                "",
                change["pipeline"].as_str().unwrap_or(""),
                change["side"].as_str().unwrap_or(""),
                change["label"].as_str().or(change["source_id"].as_str()).unwrap_or(""),
                change["summary"].as_str().unwrap_or(""),
                change["held_at"].as_str().unwrap_or("")
            );
        }
    }
}

/// `synchost locks list [--json]`
pub fn list(config_path: &Path, json: bool) -> Result<(), CommandError> {
    let (config, state) = open_state(config_path)?;
    let scopes = crate::admin::status::scopes_view(&config, &state).map_err(state_error)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&scopes).unwrap_or_default());
    } else if scopes.is_empty() {
        say!("no scopes: declare one under [scopes.NAME] (docs/locks.md)");
    } else {
        print_scopes(&scopes);
    }
    Ok(())
}

/// `synchost locks log [SCOPE]`
pub fn log(config_path: &Path, scope: Option<&str>, limit: u32) -> Result<(), CommandError> {
    let (_, state) = open_state(config_path)?;
    for row in state.lock_log(scope, limit).map_err(state_error)?.iter().rev() {
        let holder = row.holder.as_deref().map(|h| format!(" (holder {h})")).unwrap_or_default();
        say!("{} {:<10} {:<14} by {}{holder}: {}", row.at, row.scope, row.action, row.by, row.why);
    }
    Ok(())
}

/// `synchost locks take SCOPE [--endpoint E]` and `synchost locks release SCOPE [--why TEXT]`
pub async fn take_or_release(config_path: &Path, scope: &str, take: bool, endpoint: Option<&str>, why: Option<&str>, by: &str) -> Result<(), CommandError> {
    let action = if take { "lock" } else { "unlock" };
    if let Some(host) = RunningHost::find(config_path) {
        let answer = host.call(reqwest::Method::POST, &format!("/api/v1/scopes/{}/{action}", segment(scope)), Some(json!({ "endpoint": endpoint, "why": why })), by).await?;
        say!("{}", answer["message"].as_str().unwrap_or(action));
        return Ok(());
    }
    let engine = open_engine(config_path)?;
    let message = if take {
        let row = engine.take_lock(scope, by, endpoint).map_err(run_error)?;
        format!("scope `{scope}` is locked by {} since {}", row.holder, row.since)
    } else {
        engine.release_lock(scope, by, true, why).map_err(run_error)?
    };
    say!("{message}");
    Ok(())
}

/// `synchost undo RUN` / `synchost redo RUN` [--dry-run]
pub async fn undo(config_path: &Path, run: i64, direction: UndoDirection, dry_run: bool, by: &str) -> Result<(), CommandError> {
    let engine = open_engine(config_path)?;
    let report = match lease::acquire(&engine.config.data_dir(), direction.as_str()) {
        Ok(_lease) => engine.undo_run(run, direction, &Actor { name: by.to_owned(), admin: true }, dry_run).await.map_err(run_error)?,
        Err(LeaseError::Held(holder)) => match RunningHost::find(config_path) {
            Some(host) => {
                let answer = host.call(reqwest::Method::POST, &format!("/api/v1/runs/{run}/{}", direction.as_str()), Some(json!({ "dry_run": dry_run })), by).await?;
                serde_json::from_value(answer).map_err(|e| CommandError::Reported(format!("the running host answered in a form this command does not read: {e}")))?
            }
            None => return Err(CommandError::Reported(format!("{holder} writes this state and serves no admin API\n  = fix: stop it, or start it with [host.admin] listen"))),
        },
        Err(other) => return Err(CommandError::Other(other.into())),
    };
    print_undo(&report);
    Ok(())
}

fn print_undo(report: &UndoReport) {
    let verb = report.direction.as_str();
    let head = if report.dry_run { format!("{verb} of run {} (dry run: nothing written)", report.run_id) } else { format!("{verb} of run {}", report.run_id) };
    say!("{head}, pipeline {}:", report.pipeline);
    if report.records.iter().all(|r| r.fields.is_empty() && r.refused.is_empty()) {
        say!("  nothing to restore: every value the run wrote is as it was {}", if verb == "undo" { "before it" } else { "after it" });
    }
    for record in &report.records {
        let name = record.label.clone().unwrap_or_else(|| record.id.clone());
        for field in &record.fields {
            say!("  {} {name}: {} {} -> {}", record.side, field.field, field.now, field.restored);
        }
        for refused in &record.refused {
            say!("  {} {name}: NOT restored: {refused}", record.side);
        }
        if let Some(outcome) = record.outcome.as_deref().filter(|o| *o != "restored") {
            say!("  {} {name}: {outcome}", record.side);
        }
    }
    for line in &report.not_undone {
        say!("  not taken back: {line}");
    }
    if let Some(by_run) = report.by_run {
        say!("recorded as run {by_run}; the restored values were carried to the other side");
    }
}
