//! The `synchost` command line.
//!
//! - `args`: every command and its arguments (clap); `main` here carries each out.
//! - `check`: validate the config and plugins, probe every connection.
//! - `plugin inspect`: what a plugin file is (API version, kind, entities).
//! - `read`: read records through a connector, from a cursor.
//! - `schema`: print the config's JSON Schema.
//! - `demo`: the embedded default: sample CRM databases, a config, a tour.
//! - `run`, `sync`, `status`, `history`, `conflicts`, `failed`, `links`,
//!   `mirror`, `messages`, `pause`, `resume`: the sync engine and its queues
//!   (`admin`; the `links` commands in `links`).
//! - `package` (and `scaffold`, `package new`): making, signing, installing, upgrading and rolling back plugin packages.
//! - `reload`, `reloads`, `pipelines`: hot reload of a running host, and the
//!   state of pipelines renamed or removed (`reload`).
//! - `package shadow`: a candidate version beside the active one (`shadow`).
//! - `users`, `tokens`: who may use the admin API and the dashboard (`users`).
//! - `doctor`: why syncing stopped or lags (`doctor`).
//! - `endpoints`: each endpoint's identity and the host's; confirming a move (`endpoints`).
//! - `replicas`: exchanging messages with another host (`replicas`).
//! - `locks`, `undo`, `redo`: scope locks, held changes, taking runs back (`locks`).
//! - `remote`: how the writing commands reach a running host's admin API.

pub mod admin;
mod args;
mod check;
mod demo;
mod doctor;
mod endpoints;
mod replicas;
mod inspect;
mod package;
mod links;
mod locks;
pub mod output;
mod read;
pub mod remote;
mod reload;
mod scaffold;
mod shadow;
mod users;

use output::{say, tell};

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use args::*;

use crate::catalog::{Catalog, Failure};
use crate::config::{ConfigErrors, LoadedConfig};
use crate::runtime::CallError;

/// How a command failed.
#[derive(Debug)]
pub enum CommandError {
    Config(ConfigErrors),
    Failure(Failure),
    Call(CallError),
    Reported(String),
    Other(anyhow::Error),
}

impl CommandError {
    fn report(&self) -> ExitCode {
        match self {
            CommandError::Config(errors) => {
                tell!("{errors}");
                ExitCode::from(2)
            }
            CommandError::Failure(failure) => {
                tell!("error: {failure}");
                ExitCode::FAILURE
            }
            CommandError::Call(error) => {
                tell!("error: {error}");
                if let Some(hint) = error.hint() {
                    tell!("  = fix: {hint}");
                }
                ExitCode::FAILURE
            }
            CommandError::Reported(message) => {
                tell!("error: {message}");
                ExitCode::FAILURE
            }
            CommandError::Other(error) => {
                tell!("error: {error:#}");
                ExitCode::FAILURE
            }
        }
    }
}

/// Loads a config and everything it names.
pub(crate) fn load_catalog(path: &Path) -> Result<(LoadedConfig, Catalog), CommandError> {
    let config = LoadedConfig::load(path).map_err(CommandError::Config)?;
    config.missing_variables().map_err(CommandError::Config)?;
    let catalog = Catalog::load(&config).map_err(CommandError::Other)?;
    Ok((config, catalog))
}


/// Runs the command line; returns the process exit code.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init(cli.log_format, cli.verbose, std::io::stderr().is_terminal());
    let result = match &cli.command {
        Command::Check { file } => check::run(file.as_deref().unwrap_or(&cli.config)).await,
        Command::Plugin { command: PluginCommand::Inspect { file } } => inspect::run(file).await,
        Command::Read { endpoint, entity, since, limit, json } => {
            read::run(&cli.config, endpoint, entity, since.as_deref(), *limit, *json).await
        }
        Command::Schema { of: SchemaOf::Config } => {
            say!("{}", crate::schema::config_schema_json().trim_end());
            Ok(())
        }
        Command::Schema { of: SchemaOf::AdminApi } => {
            say!("{}", serde_json::to_string_pretty(&crate::http::routes::openapi()).expect("JSON values serialize"));
            Ok(())
        }
        Command::Demo { dir } => demo::run(dir).await,
        Command::Run => admin::run(&cli.config).await,
        Command::Package { command } => match command {
            PackageCommand::New { name, kind, http, sql, dir, publisher, sdk } => {
                let reaches = match (http, sql) {
                    (true, _) => Some(scaffold::Reaches::Http),
                    (_, true) => Some(scaffold::Reaches::Sql),
                    _ => None,
                };
                scaffold::Template::of(*kind, reaches).and_then(|template| scaffold::new(name, template, dir.as_deref(), publisher, sdk.as_deref()))
            }
            PackageCommand::Keygen { publisher, out } => package::keygen(publisher, out.as_deref()),
            PackageCommand::Pack { dir, wasm, out } => package::pack(dir, wasm.as_deref(), out.as_deref()),
            PackageCommand::Sign { file, key } => package::sign(file, key),
            PackageCommand::Install { file, allow_unsigned } => package::install(&cli.config, file, *allow_unsigned, package::Installing::New),
            PackageCommand::Upgrade { file, allow_unsigned, inactive } => {
                let how = if *inactive { package::Installing::UpgradeHeld } else { package::Installing::Upgrade };
                package::install(&cli.config, file, *allow_unsigned, how)
            }
            PackageCommand::Shadow { instance, candidate, records, json } => shadow::run(&cli.config, instance, candidate, *records, *json).await,
            PackageCommand::Accept { package } => package::accept(&cli.config, package),
            PackageCommand::Rollback { name } => package::rollback(&cli.config, name),
            PackageCommand::Remove { package } => package::remove(&cli.config, package),
            PackageCommand::List { json } => package::list(&cli.config, *json),
            PackageCommand::Info { name } => package::info(&cli.config, name),
            PackageCommand::Verify => package::verify(&cli.config),
        },
        Command::Users { command: UsersCommand::Add { name, role, pipelines } } => users::add(&cli.config, name, *role, pipelines),
        Command::Users { command: UsersCommand::List } => users::list(&cli.config),
        Command::Users { command: UsersCommand::Remove { name } } => users::remove(&cli.config, name),
        Command::Tokens { command: TokensCommand::Create { user, label } } => users::create(&cli.config, user, label.as_deref()),
        Command::Tokens { command: TokensCommand::List } => users::tokens(&cli.config),
        Command::Tokens { command: TokensCommand::Revoke { id } } => users::revoke(&cli.config, *id),
        Command::Doctor => doctor::run(&cli.config).await,
        Command::Replicas { command } => replicas::run(&cli.config, command).await,
        Command::Endpoints { command: EndpointsCommand::List { json } } => endpoints::list(&cli.config, *json).await,
        Command::Endpoints { command: EndpointsCommand::Rebind { endpoint, host: _, by } } => endpoints::rebind(&cli.config, endpoint.as_deref(), by).await,
        Command::Trace { pipeline, minutes } => admin::trace(&cli.config, pipeline, *minutes).await,
        Command::Reload => reload::reload(&cli.config).await,
        Command::Reloads { limit, json } => reload::reloads(&cli.config, *limit, *json),
        Command::Pipelines { command: PipelinesCommand::List } => reload::list(&cli.config),
        Command::Pipelines { command: PipelinesCommand::Rename { old, new } } => reload::rename(&cli.config, old, new),
        Command::Pipelines { command: PipelinesCommand::Forget { pipeline } } => reload::forget(&cli.config, pipeline),
        Command::Sync { pipeline, dry_run, rematch, all } => admin::sync(&cli.config, pipeline.as_deref(), *dry_run, *rematch, *all).await,
        Command::Status { json } => admin::status(&cli.config, *json).await,
        Command::History { pipeline, id, limit, json } => admin::history(&cli.config, pipeline, id.as_deref(), *limit, *json),
        Command::Approvals { command: ApprovalsCommand::List { pipeline, all, json } } => admin::approvals_list(&cli.config, pipeline.as_deref(), *all, *json),
        Command::Approvals { command: ApprovalsCommand::Show { id } } => admin::approvals_show(&cli.config, *id),
        Command::Approvals { command: ApprovalsCommand::Approve { ids, comment, by } } => {
            admin::approvals_decide(&cli.config, ids, true, by, comment.as_deref()).await
        }
        Command::Approvals { command: ApprovalsCommand::Reject { ids, comment, by } } => {
            admin::approvals_decide(&cli.config, ids, false, by, Some(comment)).await
        }
        Command::Conflicts { command: ConflictsCommand::List { pipeline, all } } => admin::conflicts_list(&cli.config, pipeline.as_deref(), *all),
        Command::Conflicts { command: ConflictsCommand::Resolve { id, take, value, by } } => {
            admin::conflicts_resolve(&cli.config, *id, take.as_deref(), value.as_deref(), by).await
        }
        Command::Failed { command: FailedCommand::List { pipeline, json } } => admin::failed_list(&cli.config, pipeline.as_deref(), *json),
        Command::Failed { command: FailedCommand::Retry { pipeline, ids } } => admin::failed_retry(&cli.config, pipeline, ids).await,
        Command::Links { command: LinksCommand::List { pipeline, limit } } => links::list(&cli.config, pipeline, *limit),
        Command::Links { command: LinksCommand::Unlink { pipeline, id } } => links::unlink(&cli.config, pipeline, id),
        Command::Links { command: LinksCommand::Link { pipeline, left_id, right_id } } => links::link(&cli.config, pipeline, left_id, right_id).await,
        Command::Messages { since, limit } => admin::messages(&cli.config, since.as_deref(), *limit),
        Command::Mirror { command: MirrorCommand::Diff { pipeline } } => admin::mirror_diff(&cli.config, pipeline).await,
        Command::Pause { pipeline, by } => admin::pause(&cli.config, pipeline, Some(by)).await,
        Command::Resume { pipeline } => admin::pause(&cli.config, pipeline, None).await,
        Command::Locks { command: LocksCommand::List { json } } => locks::list(&cli.config, *json),
        Command::Locks { command: LocksCommand::Log { scope, limit } } => locks::log(&cli.config, scope.as_deref(), *limit),
        Command::Locks { command: LocksCommand::Take { scope, endpoint, by } } => locks::take_or_release(&cli.config, scope, true, endpoint.as_deref(), None, by).await,
        Command::Locks { command: LocksCommand::Release { scope, why, by } } => locks::take_or_release(&cli.config, scope, false, None, why.as_deref(), by).await,
        Command::Undo { run, dry_run, by } => locks::undo(&cli.config, *run, crate::engine::UndoDirection::Undo, *dry_run, by).await,
        Command::Redo { run, dry_run, by } => locks::undo(&cli.config, *run, crate::engine::UndoDirection::Redo, *dry_run, by).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => error.report(),
    }
}
