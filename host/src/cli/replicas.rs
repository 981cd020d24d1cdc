//! `synchost replicas ...`: exchanging messages with another host (D1-D10):
//! export and import through the replica's folder pair or named files, with
//! the replica's pipelines synced around them, and where each side stands.

use std::path::{Path, PathBuf};

use super::admin::{open_engine, run_error, state_error, writer_lease};
use super::args::ReplicasCommand;
use super::output::say;
use super::CommandError;
use crate::engine::{Engine, Mode};
use crate::replicas::{folder, Exported, Imported, Replica, ReplicaError};

fn refused(error: ReplicaError) -> CommandError {
    CommandError::Reported(format!("{}\n  = fix: {}", error.message, error.fix))
}

/// The pipelines with the replica as one side.
fn pipelines_of(engine: &Engine, replica: &str) -> Vec<String> {
    engine
        .config
        .config
        .pipelines
        .iter()
        .filter(|(_, p)| p.left.endpoint.get_ref().as_str() == replica || p.right.endpoint.get_ref().as_str() == replica)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Syncs the replica's pipelines: local changes into its outbox, imported ones into the local endpoints.
async fn sync_pipelines(engine: &Engine, replica: &str) -> Result<(), CommandError> {
    for pipeline in pipelines_of(engine, replica) {
        let report = engine.run(&pipeline, "replica", Mode::Apply).await.map_err(run_error)?;
        let c = &report.counts;
        if c.created + c.updated + c.deleted + c.failed + c.conflicts > 0 {
            say!("{pipeline}: {} created, {} updated, {} deleted, {} conflicts, {} failed", c.created, c.updated, c.deleted, c.conflicts, c.failed);
        }
    }
    Ok(())
}

/// The activity recorded in the host's event log too (D10).
fn event(engine: &Engine, replica: &str, level: &str, message: &str, fix: Option<&str>) -> Result<(), CommandError> {
    engine.state.event(level, None, None, &format!("replica `{replica}`: {message}"), fix).map_err(state_error)
}

/// Where a message goes: `--to`, else the upload folder.
fn deliver(replica: &Replica<'_>, exported: &Exported, to: Option<&Path>) -> Result<PathBuf, CommandError> {
    let written = match (to, &replica.folders) {
        (Some(file), _) => std::fs::write(file, &exported.bytes).map(|()| file.to_owned()),
        (None, Some((upload, _))) => folder::deliver(upload, exported),
        (None, None) => {
            return Err(CommandError::Reported(format!(
                "replica `{}` has no folders to upload to\n  = fix: give a file: `--to FILE`, or set [replicas.{}] folders",
                replica.name, replica.name
            )))
        }
    };
    written.map_err(|e| CommandError::Reported(format!("cannot write message {}: {e}\n  = fix: check the folder exists and is writable", exported.number)))
}

/// Writes a message made (or says why none was) and, without `--to`, sends it over the link.
async fn send(engine: &Engine, replica: &Replica<'_>, made: Result<Exported, ReplicaError>, to: Option<&Path>) -> Result<(Exported, PathBuf), CommandError> {
    let exported = made.map_err(|e| {
        let _ = event(engine, &replica.name, "error", &e.message, Some(&e.fix));
        refused(e)
    })?;
    let path = deliver(replica, &exported, to)?;
    if to.is_none() {
        cross(replica).await?;
    }
    Ok((exported, path))
}

/// Over a remote transport (the active end of an HTTP link, an FTP server): a round (push what waits here, pull what waits there).
async fn cross(replica: &Replica<'_>) -> Result<(), CommandError> {
    use crate::replicas::link;
    let outcome = match link::remote(replica) {
        None => return Ok(()),
        Some(Ok(remote)) => link::round(remote).await,
        Some(Err(error)) => Err(error),
    };
    link::note(replica, &outcome);
    let moved = outcome.map_err(|e| CommandError::Reported(format!("{}\n  = fix: {}", e.message, e.fix)))?;
    if moved.pushed + moved.pulled > 0 {
        say!("over the link: {} message(s) sent, {} received", moved.pushed, moved.pulled);
    }
    Ok(())
}

/// The running host's API call that carries a command out, if it goes through one.
fn through_api(command: &ReplicasCommand) -> Option<(String, serde_json::Value)> {
    use super::remote::segment;
    let path = |name: &str, action: &str| format!("/api/v1/replicas/{}/{action}", segment(name));
    match command {
        ReplicasCommand::Export { replica, swap, to: None } => Some((path(replica, "export"), serde_json::json!({ "swap": swap }))),
        ReplicasCommand::Import { replica, files } if files.is_empty() => Some((path(replica, "import"), serde_json::json!({}))),
        ReplicasCommand::Ack { replica, to: None } => Some((path(replica, "ack"), serde_json::json!({}))),
        ReplicasCommand::Resend { replica, to: None } => Some((path(replica, "resend"), serde_json::json!({}))),
        ReplicasCommand::MarkReceived { replica, through } => Some((path(replica, "mark-received"), serde_json::json!({ "through": through }))),
        _ => None,
    }
}

pub async fn run(config_path: &Path, command: &ReplicasCommand) -> Result<(), CommandError> {
    // While `synchost run` serves the data folder, it carries the exchange out.
    if let (Some(host), Some((path, body))) = (super::remote::RunningHost::find(config_path), through_api(command)) {
        let answer = host.call(reqwest::Method::POST, &path, Some(body), &super::remote::login_name()).await?;
        say!("{}", answer["message"].as_str().unwrap_or("done"));
        return Ok(());
    }
    let engine = open_engine(config_path)?;
    let config = engine.config.clone();
    match command {
        ReplicasCommand::List => {
            if config.config.replicas.is_empty() {
                say!("no replicas: add a [replicas.NAME] section (docs/replicas.md)");
            }
            for name in config.config.replicas.keys() {
                let replica = Replica::open(&config, name.as_str()).map_err(refused)?;
                let (kept, _) = replica.store.kept().map_err(|e| refused(e.into()))?;
                say!(
                    "{name}: {} replica, this host is the {} ({}), the other host is `{}`; {kept} change(s) kept for resending",
                    replica.config.kind.as_str(),
                    match replica.config.side {
                        crate::replicas::ReplicaSide::Parent => "parent",
                        crate::replicas::ReplicaSide::Child => "child",
                    },
                    replica.store.role().map_err(|e| refused(e.into()))?.as_str(),
                    replica.config.peer
                );
            }
            Ok(())
        }
        ReplicasCommand::Status { replica, json } => status(&config, replica, *json),
        ReplicasCommand::Log { replica, limit } => {
            let replica = Replica::open(&config, replica).map_err(refused)?;
            for line in replica.store.activity(*limit).map_err(|e| refused(e.into()))? {
                say!("{} {:<5} {:<13} {}", line.at, line.level, line.action, line.message);
                if let Some(fix) = line.fix {
                    say!("{:>42} fix: {fix}", "");
                }
            }
            Ok(())
        }
        ReplicasCommand::MarkReceived { replica: name, through } => {
            let mut replica = Replica::open(&config, name).map_err(refused)?;
            let change = replica.mark_received(*through).map_err(refused)?;
            say!("changes through {change} marked received; the next message holds only newer ones (they are kept until an acknowledgement is imported)");
            Ok(())
        }
        ReplicasCommand::Export { replica: name, swap, to } => {
            let _lease = writer_lease(&engine, "replicas export", "stop `synchost run` first: it exports on its schedule")?;
            sync_pipelines(&engine, name).await?;
            let mut replica = Replica::open(&config, name).map_err(refused)?;
            let made = replica.export(*swap);
            let (exported, path) = send(&engine, &replica, made, to.as_deref()).await?;
            let swapped = if exported.swap { "; this host now receives" } else { "" };
            let message = format!("data message {} with {} change(s) written to {}{swapped}", exported.number, exported.changes, path.display());
            event(&engine, name, "info", &message, None)?;
            say!("{message}");
            Ok(())
        }
        ReplicasCommand::Ack { replica: name, to } | ReplicasCommand::Resend { replica: name, to } => {
            let _lease = writer_lease(&engine, "replicas", "stop `synchost run` first: it exchanges on its schedule")?;
            if matches!(command, ReplicasCommand::Resend { .. }) {
                // What changed since goes along with what is sent again.
                sync_pipelines(&engine, name).await?;
            }
            let mut replica = Replica::open(&config, name).map_err(refused)?;
            let made = match command {
                ReplicasCommand::Ack { .. } => replica.acknowledge(),
                _ => replica.resend(),
            };
            let (exported, path) = send(&engine, &replica, made, to.as_deref()).await?;
            let what = if matches!(command, ReplicasCommand::Ack { .. }) { "acknowledgement" } else { "data message (sent again)" };
            let message = format!("{what} {} written to {}", exported.number, path.display());
            event(&engine, name, "info", &message, None)?;
            say!("{message}");
            Ok(())
        }
        ReplicasCommand::Import { replica: name, files } => {
            let _lease = writer_lease(&engine, "replicas import", "stop `synchost run` first: it imports on its schedule")?;
            import(&engine, &config, name, files).await
        }
    }
}

async fn import(engine: &Engine, config: &crate::config::LoadedConfig, name: &str, files: &[PathBuf]) -> Result<(), CommandError> {
    let mut replica = Replica::open(config, name).map_err(refused)?;
    if files.is_empty() {
        cross(&replica).await?;
    }
    let (done, error) = if files.is_empty() {
        replica.import_waiting()
    } else {
        let mut done = Vec::new();
        let mut error = None;
        for file in files {
            let imported = std::fs::read(file)
                .map_err(|e| ReplicaError { message: format!("cannot read {}: {e}", file.display()), fix: "check the path".into() })
                .and_then(|bytes| replica.import(&bytes, &file.display().to_string()));
            match imported {
                Ok(imported) => done.push((file.clone(), imported)),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        (done, error)
    };
    if done.is_empty() && error.is_none() {
        say!("no messages of `{}` waiting", replica.config.peer);
    }
    let mut applied = false;
    for (_, outcome) in &done {
        let message = match outcome {
            Imported::Data { number, applied: count, swapped, pruned } => {
                applied = true;
                let swap = if *swapped { "; this host now sends" } else { "" };
                format!("data message {number}: {count} change(s) of `{}` to apply; {pruned} of this host's let go{swap}", replica.config.peer)
            }
            Imported::Ack { number, pruned } => format!("acknowledgement {number}: {pruned} change(s) kept for resending let go"),
            Imported::AlreadyImported { number } => format!("message {number} was imported before; nothing applied"),
        };
        event(engine, name, "info", &message, None)?;
        say!("{message}");
    }
    if applied {
        sync_pipelines(engine, name).await?;
    }
    match error {
        Some(error) => {
            event(engine, name, "error", &error.message, Some(&error.fix))?;
            Err(refused(error))
        }
        None => Ok(()),
    }
}

fn status(config: &crate::config::LoadedConfig, name: &str, json: bool) -> Result<(), CommandError> {
    let replica = Replica::open(config, name).map_err(refused)?;
    let store = &replica.store;
    let e = |e: rusqlite::Error| refused(e.into());
    let view = replica.view().map_err(refused)?;
    let (kept, kept_bytes) = (&view["kept_changes"], &view["kept_bytes"]);
    if json {
        say!("{}", serde_json::to_string_pretty(&view).unwrap_or_default());
        return Ok(());
    }
    say!("replica {name}: {} with `{}`; this host is the {}", view["kind"].as_str().unwrap_or(""), replica.config.peer, view["role"].as_str().unwrap_or(""));
    say!(
        "  this host's changes: through {}, acknowledged through {}, marked received through {}; {kept} kept for resending ({kept_bytes} bytes)",
        view["last_change"], view["acknowledged_through"], view["marked_received_through"]
    );
    say!("  the other host's: messages through {} imported, changes through {} applied", view["last_received"], view["applied_through"]);
    for sent in store.sent(10).map_err(e)? {
        let ack = sent.acknowledged_at.map(|at| format!("acknowledged {at}")).unwrap_or_else(|| "not acknowledged".into());
        let swap = if sent.swap { ", swap" } else { "" };
        say!("  sent {} {} ({}..{}{swap}) at {}: {ack}", sent.kind, sent.number, sent.first_change, sent.last_change, sent.at);
    }
    Ok(())
}
