//! The command line's words: every command, its arguments and their help
//! (clap). `mod.rs` carries each out.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::{scaffold};
use crate::logging::LogFormat;
use crate::config::DEFAULT_CONFIG_FILE;

/// synchost keeps business systems in sync through sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "synchost", version, about)]
pub struct Cli {
    /// The config file.
    #[arg(long, short, global = true, env = "SYNCHOST_CONFIG", default_value = DEFAULT_CONFIG_FILE)]
    pub(super) config: PathBuf,
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty)]
    pub(super) log_format: LogFormat,
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub(super) verbose: u8,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
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
    /// What each endpoint is and which host runs the state, as recorded and
    /// now; confirm a new identity after a move.
    Endpoints {
        #[command(subcommand)]
        command: EndpointsCommand,
    },
    /// Replicas: another host met only through messages (files, FTP, HTTP).
    Replicas {
        #[command(subcommand)]
        command: ReplicasCommand,
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
    /// Scope locks: who holds which scope, the changes held back, lock and release.
    Locks {
        #[command(subcommand)]
        command: LocksCommand,
    },
    /// Take back what a run wrote: restore the values it replaced, where
    /// nobody changed them since, on both systems.
    Undo {
        run: i64,
        /// Only show what would change.
        #[arg(long)]
        dry_run: bool,
        /// Who undoes it (default: $USER).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
    /// Write an undone run's values again, where nobody changed them since the undo.
    Redo {
        run: i64,
        /// Only show what would change.
        #[arg(long)]
        dry_run: bool,
        /// Who redoes it (default: $USER).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
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
pub(super) enum LocksCommand {
    /// Each scope: its lock (holder, since, how), the changes held back.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Lock a scope for editing: others' changes to its plan data are held back.
    Take {
        scope: String,
        /// The endpoint you edit through (default: the scope's editor's).
        #[arg(long)]
        endpoint: Option<String>,
        /// Who holds it (default: $USER).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
    /// Release a scope's lock (another's is forced open, and recorded so).
    Release {
        scope: String,
        /// Why, for the lock log.
        #[arg(long)]
        why: Option<String>,
        /// Who releases it (default: $USER).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
    /// Locks, releases and refusals, with who and why.
    Log {
        scope: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum ConflictsCommand {
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
pub(super) enum ApprovalsCommand {
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
pub(super) enum FailedCommand {
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
pub(super) enum MirrorCommand {
    /// List linked items whose values of a mirrored field differ.
    Diff { pipeline: String },
}

#[derive(Debug, Subcommand)]
pub(super) enum LinksCommand {
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
pub(super) enum PackageCommand {
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
pub(super) enum SchemaOf {
    /// The config file's JSON Schema (schemas/synchost.schema.json).
    Config,
    /// The admin API's OpenAPI document (schemas/admin-api.openapi.json).
    AdminApi,
}

#[derive(Debug, Subcommand)]
pub(super) enum UsersCommand {
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
pub(super) enum TokensCommand {
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
pub(super) enum ReplicasCommand {
    /// The replicas: kind, side, the other host, this host's role now.
    List,
    /// Where a replica stands: role, messages sent and received, changes
    /// kept for resending, the last activity.
    Status {
        replica: String,
        #[arg(long)]
        json: bool,
    },
    /// Syncs the replica's pipelines, then exports a data-change message
    /// with every change not acknowledged, into the upload folder (or --to).
    Export {
        replica: String,
        /// Give the sending role to the other host with this message.
        #[arg(long)]
        swap: bool,
        /// Write the message to this file instead of the upload folder.
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Imports the other host's messages (these files, or those waiting in
    /// the download folder, in order), then syncs the replica's pipelines.
    Import { replica: String, files: Vec<PathBuf> },
    /// Exports an acknowledgement of every message received so far.
    Ack {
        replica: String,
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Sends every change not acknowledged again (also a lost role swap).
    Resend {
        replica: String,
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// The other host said it received this host's changes (through
    /// message N): later messages hold only newer changes.
    MarkReceived {
        replica: String,
        #[arg(long)]
        through: Option<u64>,
    },
    /// The replica's activity log: every export, import, acknowledgement,
    /// swap and refusal, with what to do.
    Log {
        replica: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum EndpointsCommand {
    /// Each endpoint's identity (where its grants reach, and what answers
    /// there) and the host's, as recorded at the first sync and as now.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Confirm that an endpoint (or, with --host, this host) is the system
    /// its pipelines synced with, at its new address: they sync again.
    Rebind {
        /// The endpoint.
        #[arg(required_unless_present = "host", conflicts_with = "host")]
        endpoint: Option<String>,
        /// Confirm that this host now runs the state (its data folder moved here).
        #[arg(long)]
        host: bool,
        /// Who confirms (default: $USER).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum PipelinesCommand {
    /// The config's pipelines, and the state kept for pipelines it no longer names.
    List,
    /// Give the state (links, cursors, history, queues) of a pipeline removed
    /// from the config to a pipeline by another name: a rename that keeps its place.
    Rename { old: String, new: String },
    /// Delete the state of a pipeline removed from the config.
    Forget { pipeline: String },
}

#[derive(Debug, Subcommand)]
pub(super) enum PluginCommand {
    /// Show a plugin's API version, kind and entities.
    Inspect {
        /// The plugin component (.wasm).
        file: PathBuf,
    },
}

