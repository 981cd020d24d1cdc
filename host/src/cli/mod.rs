//! The `synchost` command line.
//!
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

pub mod admin;
mod check;
mod demo;
mod doctor;
mod inspect;
mod package;
mod links;
pub mod output;
mod read;
pub mod remote;
mod reload;
mod scaffold;
mod shadow;
mod users;

use crate::logging::LogFormat;
use output::{say, tell};

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::catalog::{Catalog, Failure};
use crate::config::{ConfigErrors, LoadedConfig, DEFAULT_CONFIG_FILE};
use crate::runtime::CallError;

/// synchost keeps business systems in sync through sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "synchost", version, about)]
pub struct Cli {
    /// The config file.
    #[arg(long, short, global = true, env = "SYNCHOST_CONFIG", default_value = DEFAULT_CONFIG_FILE)]
    config: PathBuf,
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}


#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the config and its plugins, and probe every granted connection.
    Check {
        /// The config file (default: --config).
        file: Option<PathBuf>,
    },
    /// Why syncing stopped or lags, and what to do: every check of `check`,
    /// then the scheduler, the config serving, each pipeline's health and
    /// the items waiting for a person.
    Doctor,
    /// Log a pipeline's runs in the running host at debug level for a
    /// while, without a restart (0 minutes: stop).
    Trace {
        pipeline: String,
        #[arg(long, default_value_t = 10)]
        minutes: u64,
    },
    /// Users of the admin API and dashboard, and their roles.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Bearer tokens of the admin API's users.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Plugin packages: vendors pack and sign them; admins install, upgrade, roll back.
    Package {
        #[command(subcommand)]
        command: PackageCommand,
    },
    /// Work with plugin files.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Read records of an entity through an endpoint's connector.
    Read {
        /// The endpoint (a key of [endpoints]).
        endpoint: String,
        /// The entity, e.g. `contacts`.
        entity: String,
        /// Continue from this cursor (printed by the previous read).
        #[arg(long)]
        since: Option<String>,
        /// Read at most this many records.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the config file, or the admin API's OpenAPI document.
    Schema {
        #[arg(value_enum, default_value = "config")]
        of: SchemaOf,
    },
    /// Run every pipeline on its schedule until stopped (Ctrl-C or SIGTERM).
    /// Changes to the config file and the plugin files it names are reloaded.
    Run,
    /// Make the running host read its config again now, and print the outcome.
    Reload,
    /// The configs the running host loaded: at start and each reload, with the outcome.
    Reloads {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Pipelines' state: list it, give it a new name, or delete it.
    Pipelines {
        #[command(subcommand)]
        command: PipelinesCommand,
    },
    /// Run a pipeline (or all) once now.
    Sync {
        /// The pipeline; all when not given.
        pipeline: Option<String>,
        /// Print what would be created, updated, deleted and which conflicts
        /// would be resolved how, on each side; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Link unlinked records that exist on both sides by the pipeline's
        /// `match_on` fields first (done by itself on a pipeline's first run).
        #[arg(long = "match")]
        rematch: bool,
        /// Print every decision of the run kept in its report (the first
        /// 1000), not only the first 20.
        #[arg(long)]
        all: bool,
    },
    /// Health of every pipeline by category, the scheduler's heartbeat, queues.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// What changed, from which side, by which rule: a pipeline's or one record's history.
    History {
        pipeline: String,
        /// A record: `left:ID`, `right:ID`, or an id on either side.
        id: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// The approval queue: changes waiting for a person's decision.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// The conflict queue.
    Conflicts {
        #[command(subcommand)]
        command: ConflictsCommand,
    },
    /// Items that failed, with the reason and the fix.
    Failed {
        #[command(subcommand)]
        command: FailedCommand,
    },
    /// The links between records of the two sides.
    Links {
        #[command(subcommand)]
        command: LinksCommand,
    },
    /// The latest sync messages (the event log).
    Messages {
        /// From this time (RFC 3339) or this long ago (`1h`, `30m`).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Fields with the mirror policy: list the items whose two values differ.
    Mirror {
        #[command(subcommand)]
        command: MirrorCommand,
    },
    /// Pause a pipeline (only an admin pauses or resumes).
    Pause {
        pipeline: String,
        /// Who pauses it (default: $USER).
        #[arg(long, env = "USER")]
        by: String,
    },
    /// Resume a paused pipeline.
    Resume { pipeline: String },
    /// Set up sample CRM databases and a config, and show what synchost does with them.
    Demo {
        /// The folder to create the demo in.
        #[arg(long, default_value = "synchost-demo")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConflictsCommand {
    /// List open conflicts.
    List {
        pipeline: Option<String>,
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
    },
    /// Resolve a conflict by taking a side or setting a value.
    Resolve {
        id: i64,
        /// left or right.
        #[arg(long)]
        take: Option<String>,
        /// A value for both sides (a number, true/false, null or text).
        #[arg(long)]
        value: Option<String>,
        /// Who decides (default: $USER).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
enum ApprovalsCommand {
    /// List the changes waiting for approval.
    List {
        pipeline: Option<String>,
        /// Decided ones too: each item's last submit status.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// One queued change in full.
    Show { id: i64 },
    /// Approve changes: they are written to the other side. Name each as
    /// `ID@REVISION` (as `approvals list` shows); a bare ID only for a change
    /// never revised.
    Approve {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long)]
        comment: Option<String>,
        /// Who decides (default: $USER).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
    /// Reject changes: noted on the record they came from, with the comment.
    Reject {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long)]
        comment: String,
        /// Who decides (default: $USER).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
enum FailedCommand {
    /// List failed items with their reason and fix.
    List {
        pipeline: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Resubmit failed items now (all of the pipeline, or these ids).
    Retry { pipeline: String, ids: Vec<i64> },
}

#[derive(Debug, Subcommand)]
enum MirrorCommand {
    /// List linked items whose values of a mirrored field differ.
    Diff { pipeline: String },
}

#[derive(Debug, Subcommand)]
enum LinksCommand {
    /// List a pipeline's links.
    List {
        pipeline: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Remove the link of a record (either side's id); both records stay.
    Unlink { pipeline: String, id: String },
    /// Link two existing records that are one (say, a create whose outcome
    /// was lost); the next sync compares them.
    Link { pipeline: String, left_id: String, right_id: String },
}

#[derive(Debug, Subcommand)]
enum PackageCommand {
    /// Start a plugin crate: builds, tests natively, packs.
    New {
        /// The package's name (lower-case letters, digits, `-`).
        name: String,
        #[arg(long, value_enum)]
        kind: scaffold::Kind,
        /// A connector to a JSON API over HTTP (the walk-through's ticket tracker).
        #[arg(long, conflicts_with = "sql")]
        http: bool,
        /// A connector to a table in a granted SQLite database (the default connector).
        #[arg(long)]
        sql: bool,
        /// The folder to create (default: NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The publisher named in the manifest.
        #[arg(long, default_value = "my-company")]
        publisher: String,
        /// The synchost plugin SDK (default: the one this synchost was built with).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Make a signing key pair for a publisher: PREFIX.secret-key and PREFIX.public-key.
    Keygen {
        /// The publisher's name, as in the manifests it signs.
        #[arg(long)]
        publisher: String,
        /// Where to write the key files (default: the publisher's name, here).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Build a plugin crate and pack it with its synchost-package.toml into one file.
    Pack {
        /// The crate's folder (with synchost-package.toml).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Pack this built component instead of building the crate.
        #[arg(long)]
        wasm: Option<PathBuf>,
        /// The package file to write (default: DIR/NAME-VERSION.synchost-package).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sign a package file with a publisher's secret key.
    Sign {
        file: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Install a package (checked: digests, signature, publisher, API range).
    Install {
        file: PathBuf,
        /// Install it even if it is not signed.
        #[arg(long)]
        allow_unsigned: bool,
    },
    /// Install another version of an installed package and make it active
    /// (unless it asks for more capabilities: then it waits for `accept`).
    Upgrade {
        file: PathBuf,
        #[arg(long)]
        allow_unsigned: bool,
        /// Install it without making it active: try it with `package shadow`,
        /// then `package accept` it.
        #[arg(long)]
        inactive: bool,
    },
    /// Run an installed version beside the active one on the same records
    /// (a connector's fetch and read, a mapper's map and validate), write
    /// nothing, and show every record it would treat differently.
    Shadow {
        /// The endpoint or mapper whose plugin the candidate would replace.
        instance: String,
        /// The candidate: an installed package version, NAME@VERSION.
        candidate: String,
        /// Records per pipeline and side to compare on (those synced last).
        #[arg(long, default_value_t = 100)]
        records: u32,
        #[arg(long)]
        json: bool,
    },
    /// Make a waiting upgrade active, accepting what it asks for: NAME@VERSION.
    Accept { package: String },
    /// Make the version active before the current one active again.
    Rollback { name: String },
    /// Remove a package (NAME), or one version of it that is not active (NAME@VERSION).
    Remove { package: String },
    /// The installed packages.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A package's installed versions: what each is, asks for, and its digests.
    Info { name: String },
    /// Check every installed version again: digests, signatures against the trust list.
    Verify,
}

/// Which document `synchost schema` prints.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SchemaOf {
    /// The config file's JSON Schema (schemas/synchost.schema.json).
    Config,
    /// The admin API's OpenAPI document (schemas/admin-api.openapi.json).
    AdminApi,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Add a user: viewer (reads), operator (pause, resume, sync, retry,
    /// resolve), approver (approve, reject), admin (everything).
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: crate::state::users::Role,
        /// Limit an operator or approver to this pipeline (repeat for more; default: every pipeline).
        #[arg(long = "pipeline")]
        pipelines: Vec<String>,
    },
    /// The users and their roles.
    List,
    /// Remove a user and their tokens.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// Make a token for a user; it is printed once.
    Create {
        user: String,
        /// What the token is for (`laptop`, `prometheus` ...).
        #[arg(long)]
        label: Option<String>,
    },
    /// The tokens (never their values): whose, when made, last used, revoked.
    List,
    /// End a token.
    Revoke { id: i64 },
}

#[derive(Debug, Subcommand)]
enum PipelinesCommand {
    /// The config's pipelines, and the state kept for pipelines it no longer names.
    List,
    /// Give the state (links, cursors, history, queues) of a pipeline removed
    /// from the config to a pipeline by another name: a rename that keeps its place.
    Rename { old: String, new: String },
    /// Delete the state of a pipeline removed from the config.
    Forget { pipeline: String },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Show a plugin's API version, kind and entities.
    Inspect {
        /// The plugin component (.wasm).
        file: PathBuf,
    },
}

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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => error.report(),
    }
}
