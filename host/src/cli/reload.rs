//! `synchost reload`, `synchost reloads`, and `synchost pipelines`: hot
//! reload for admins, and a pipeline's state when the config no longer names
//! it, or names it otherwise.

use std::path::Path;
use std::time::{Duration, Instant};

use super::admin::{open_state, open_state_only, state_error};
use super::output::say;
use super::CommandError;
use crate::config::LoadedConfig;
use crate::state::lease;
use crate::state::reloads::{ReloadOutcome, ReloadRow, RenameError};

/// How long `synchost reload` waits for the host's answer: compiling a
/// changed plugin and probing its connections take a while.
const ANSWER_WAIT: Duration = Duration::from_secs(120);

/// `synchost reload`: asks the running host to read its config again now
/// (SIGHUP) and prints the outcome.
pub async fn reload(config_path: &Path) -> Result<(), CommandError> {
    let config = LoadedConfig::load(config_path).map_err(|errors| {
        CommandError::Reported(format!("{errors}\nnothing was sent: the running host keeps its config until the file is valid"))
    })?;
    let holder = lease::holder(&config.data_dir()).filter(|holder| holder.command == "run").ok_or_else(|| {
        CommandError::Reported(format!(
            "no `synchost run` is running for {}\n  = fix: start it with `synchost run`; it reads the config when it starts",
            config.path.display()
        ))
    })?;
    if holder.host != lease::host_name() {
        return Err(CommandError::Reported(format!(
            "the host serving this config runs on {}, not here\n  = fix: run `synchost reload` there, or save the config: it watches the file",
            holder.host
        )));
    }
    let state = crate::state::State::open(&config.state_path()).map_err(state_error)?;
    let before = state.reloads(1).map_err(state_error)?.first().map_or(0, |r| r.id);
    let pid = rustix::process::Pid::from_raw(holder.pid as i32).ok_or_else(|| CommandError::Reported(format!("the lease names pid {}", holder.pid)))?;
    rustix::process::kill_process(pid, rustix::process::Signal::HUP)
        .map_err(|e| CommandError::Reported(format!("cannot signal {holder}: {e}\n  = fix: run `synchost reload` as the user the host runs as")))?;
    let started = Instant::now();
    loop {
        // The answer to this signal, not a reload the file watcher started meanwhile.
        let answers = state.reloads_after(before).map_err(state_error)?;
        if let Some(answer) = answers.iter().rev().find(|r| r.trigger == "signal").or(answers.last()) {
            print_reload(answer, true);
            return match answer.outcome {
                ReloadOutcome::Rejected => Err(CommandError::Reported("the reload was rejected; the running version keeps serving".into())),
                _ => Ok(()),
            };
        }
        if started.elapsed() > ANSWER_WAIT {
            return Err(CommandError::Reported(format!(
                "{holder} did not answer within {} s\n  = fix: see `synchost reloads` in a while, and the host's log",
                ANSWER_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_reload(row: &ReloadRow, detail: bool) {
    say!("{} {:<9} {:<6} revision {}  {}", row.at, row.outcome.as_str(), row.trigger, row.revision, row.summary);
    if !detail || row.outcome != ReloadOutcome::Rejected {
        return;
    }
    for reason in row.detail.as_ref().and_then(|d| d.as_array()).into_iter().flatten() {
        say!("  - {}", reason["message"].as_str().unwrap_or(""));
        if let Some(hint) = reason["hint"].as_str() {
            say!("    fix: {hint}");
        }
    }
}

/// `synchost reloads [--limit N] [--json]`: the configs the host loaded, newest first.
pub fn reloads(config: &Path, limit: u32, json: bool) -> Result<(), CommandError> {
    let state = open_state_only(config)?;
    let rows = state.reloads(limit).map_err(state_error)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(());
    }
    if rows.is_empty() {
        say!("no reloads: `synchost run` records the config it starts with and each reload");
    }
    for row in &rows {
        print_reload(row, true);
    }
    Ok(())
}

/// Refuses to touch a pipeline's state while the config names it, or while a run of it is under way.
fn not_serving(config: &LoadedConfig, state: &crate::state::State, name: &str, what: &str) -> Result<(), CommandError> {
    if config.config.pipelines.keys().any(|k| k.as_str() == name) {
        return Err(CommandError::Reported(format!(
            "pipeline `{name}` is in {}: its state is in use\n  = fix: remove it from the config (or rename it there) first, then {what}",
            config.path.display()
        )));
    }
    let running = state.runs(name, 1).map_err(state_error)?.first().is_some_and(|run| run.status == "running");
    if running && lease::holder(&config.data_dir()).is_some() {
        return Err(CommandError::Reported(format!(
            "a run of `{name}` is under way\n  = fix: wait until the host has applied the config without `{name}` (`synchost reloads`), then {what}"
        )));
    }
    Ok(())
}

/// `synchost pipelines list`: the config's pipelines, and state kept for pipelines it no longer names.
pub fn list(config: &Path) -> Result<(), CommandError> {
    let (config, state) = open_state(config)?;
    let kept = state.pipelines_with_state().map_err(state_error)?;
    for name in config.config.pipelines.keys() {
        let links = state.link_count(name.as_str()).map_err(state_error)?;
        say!("{:<24} in the config, {links} link(s)", name.as_str());
    }
    for name in kept.iter().filter(|name| !config.config.pipelines.keys().any(|k| k.as_str() == name.as_str())) {
        let links = state.link_count(name).map_err(state_error)?;
        say!("{name:<24} not in the config, state kept: {links} link(s) (`synchost pipelines forget {name}` deletes it)");
    }
    Ok(())
}

/// `synchost pipelines forget NAME`
pub fn forget(config: &Path, name: &str) -> Result<(), CommandError> {
    let (config, state) = open_state(config)?;
    not_serving(&config, &state, name, &format!("forget `{name}`"))?;
    if !state.pipeline_has_state(name).map_err(state_error)? {
        return Err(CommandError::Reported(format!("no pipeline named `{name}` has state here\n  = fix: see `synchost pipelines list`")));
    }
    let links = state.forget_pipeline(name).map_err(state_error)?;
    say!("forgot `{name}`: {links} link(s), its cursors, history and queues deleted");
    Ok(())
}

/// `synchost pipelines rename OLD NEW`
pub fn rename(config: &Path, old: &str, new: &str) -> Result<(), CommandError> {
    let (config, state) = open_state(config)?;
    not_serving(&config, &state, old, &format!("rename `{old}`"))?;
    state.rename_pipeline(old, new).map_err(|error| match error {
        RenameError::NoState(_) => CommandError::Reported(format!("{error}\n  = fix: see `synchost pipelines list`")),
        RenameError::Taken(_) => CommandError::Reported(format!(
            "{error}: it has synced on its own\n  = fix: `synchost pipelines forget {new}` first if its state is to go, or keep both"
        )),
        RenameError::State(error) => state_error(error),
    })?;
    state.event("info", Some(new), None, &format!("state of `{old}` renamed to `{new}`"), None).map_err(state_error)?;
    say!("`{new}` has the links, cursors, history and queues of `{old}`");
    Ok(())
}
