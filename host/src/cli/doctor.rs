//! `synchost doctor`: why syncing stopped or lags, and what to do, in one
//! report: everything `check` checks (the config, every plugin, every
//! granted connection, the permissions each pipeline needs), then how the
//! host runs: the scheduler, the config it serves, each pipeline's health,
//! whether it stalled, and the items that wait for a person.

use std::path::Path;

use super::admin::{open_state, state_error};
use super::check::{self, Report};
use super::output::say;
use super::CommandError;
use crate::admin::status::StatusView;
use crate::state::reloads::ReloadOutcome;

/// Failed items listed per pipeline before the rest are counted.
const REASONS_SHOWN: usize = 3;

pub async fn run(config_path: &Path) -> Result<(), CommandError> {
    let mut report = Report { problems: 0 };
    // A config that does not load is the first thing to fix; `check` says where.
    check::checks(config_path, &mut report).await?;
    let (config, state) = open_state(config_path)?;
    let view = crate::admin::status::view(&config, &state).map_err(state_error)?;
    say!("\nhow the host runs:");
    scheduler(&view, &mut report);
    identities(config_path, &mut report).await?;
    serving(&view, &mut report);
    for row in &view.pipelines {
        pipeline(row, &mut report);
    }
    check::verdict(&report, "nothing stops syncing")
}

fn scheduler(view: &StatusView, report: &mut Report) {
    match (&view.writer, view.scheduler_running) {
        (Some(writer), true) => {
            let beat = view.heartbeat.as_ref().map(|h| format!(", last heartbeat {}", h.beat_at)).unwrap_or_default();
            report.ok("scheduler", &format!("running (pid {} on {}, since {}{beat})", writer.pid, writer.host, writer.since));
        }
        _ => report.fail(
            "scheduler",
            &match &view.heartbeat {
                Some(h) => format!("not running (last heartbeat {}): nothing syncs", h.beat_at),
                None => "never started: nothing syncs".to_owned(),
            },
            Some("start it: `synchost run` (as a service, so that it starts again with the machine)"),
        ),
    }
}

/// The host and each endpoint are the ones their pipelines synced with (T5).
async fn identities(config_path: &Path, report: &mut Report) -> Result<(), CommandError> {
    let engine = super::admin::open_engine(config_path)?;
    for finding in engine.identity_findings().await.map_err(state_error)? {
        match (&finding.mismatch, &finding.recorded) {
            (Some((message, fix)), _) => report.fail(&finding.subject, message, Some(fix)),
            (None, Some(_)) => report.ok(&finding.subject, &format!("the one synced with: {}", finding.current.summary())),
            (None, None) => report.ok(&finding.subject, &format!("{} (recorded at its first sync)", finding.current.summary())),
        }
    }
    Ok(())
}

fn serving(view: &StatusView, report: &mut Report) {
    let Some(last) = &view.last_reload else { return };
    if last.outcome == ReloadOutcome::Rejected && view.scheduler_running {
        let serving = view.serving.as_ref().map(|s| format!("revision {} from {}", s.revision, s.at)).unwrap_or_else(|| "the one before".into());
        report.fail(
            "config",
            &format!("the config file was changed at {} and refused: {}; the host still runs {serving}", last.at, last.summary),
            Some("`synchost reloads` lists every reason; fix the file and save it again (the host reloads it)"),
        );
    } else if let Some(serving) = &view.serving {
        let how = if view.scheduler_running { "serving since" } else { "last served from" };
        report.ok("config", &format!("revision {} {how} {}", serving.revision, serving.at));
    }
}

fn pipeline(row: &serde_json::Value, report: &mut Report) {
    let name = row["pipeline"].as_str().unwrap_or_default();
    let summary = row["summary"].as_str().unwrap_or_default();
    let hint = row["hint"].as_str();
    match row["state"].as_str() {
        Some("paused") => report.fail(
            name,
            &format!("{summary} (nothing pauses a pipeline by itself: a person did)"),
            Some(&format!("resume it when it should sync again: `synchost resume {name}`")),
        ),
        Some("degraded") => report.fail(name, summary, hint.or(Some("the host retries with backoff; `synchost messages` has each attempt"))),
        Some("never-run") => report.fail(name, "has never run", Some("start `synchost run`, or run it once: `synchost sync` ")),
        _ if row["stalled"] == true => report.fail(
            name,
            &format!("stalled: no successful run for longer than its schedule allows (last success {})", row["last_success_at"].as_str().unwrap_or("never")),
            Some("`synchost messages` shows why its runs fail; `synchost status` shows the last run"),
        ),
        _ => report.ok(name, &format!("ok, {} links", row["links"])),
    }
    // Part of the data not syncing: each item with its reason and countermeasure.
    let items = row["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    for item in items.iter().take(REASONS_SHOWN) {
        let record = match item["side"].as_str() {
            Some(side @ ("left" | "right")) => format!("{side} record {}", item["record"].as_str().unwrap_or("")),
            _ => format!("records {}", item["record"].as_str().unwrap_or("")),
        };
        report.fail(name, &format!("{} {record}: {}", item["result"].as_str().unwrap_or(""), item["detail"].as_str().unwrap_or("")), item["fix"].as_str());
    }
    if items.len() > REASONS_SHOWN {
        say!("        {:<20} ... and {} more items (`synchost failed list {name}`, `synchost conflicts list`)", "", items.len() - REASONS_SHOWN);
    }
}
