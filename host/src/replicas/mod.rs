//! Replicas (D1-D11, C4): two hosts that meet only through messages keep
//! entities in sync, each with its own state and its own endpoints.
//!
//! A replica is an endpoint of the bundled `replica` connector over the
//! replica's exchange store ([`store`]): pipelines sync a local endpoint
//! with it as with any system, with links, bases, policies and failed
//! items. What they write for the other host waits in the store's outbox;
//! [`Replica::export`] puts it into a message ([`message`]), which the other
//! host imports into its store's mirror, and its pipelines then apply.
//!
//! - [`message`]: the file format: versioned, compressed, MAC'd.
//! - [`roles`]: who may send what, per kind, side and role (pure).
//! - [`store`]: the exchange store and the activity log.
//! - [`folder`]: the local folder pair transport.
//! - [`link`]: HTTP between an active and a passive host (C3).
//! - [`ftp`]: folders on an FTP server (C4).

pub mod folder;
pub mod ftp;
pub mod link;
pub mod message;
pub mod roles;
pub mod store;

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::ReplicaConfig;
use crate::config::LoadedConfig;
use message::{Message, MessageError, MessageKind, Received};
use roles::{Refusal, Role};
use store::{Concurrent, Mark, Settled, Store};
use crate::config::{ConflictPolicy, Side};

/// What changes flow, and how (D5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaKind {
    #[default]
    TwoWay,
    OneWay,
    CheckOut,
}

impl ReplicaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaKind::TwoWay => "two-way",
            ReplicaKind::OneWay => "one-way",
            ReplicaKind::CheckOut => "check-out",
        }
    }
}

/// Which end of an HTTP link a host is (C3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LinkRole {
    /// Serves the exchange on its admin API; the other host connects to it.
    Passive,
    /// Connects to the passive host (it needs no address of its own).
    Active,
}

/// A host's side of a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaSide {
    Parent,
    Child,
}

/// The exchange store of replica `name`.
pub fn store_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("replicas").join(format!("{name}.sqlite"))
}

/// Why an exchange did not happen, and what to do; it is in the activity log too.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ReplicaError {
    pub message: String,
    pub fix: String,
}

impl From<rusqlite::Error> for ReplicaError {
    fn from(error: rusqlite::Error) -> Self {
        ReplicaError { message: format!("the replica's exchange store: {error}"), fix: "check that the data folder is writable and the disk not full".into() }
    }
}

/// A message made, to be carried to the other host.
#[derive(Debug)]
pub struct Exported {
    pub number: u64,
    /// The file name the other host's import recognises.
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub changes: usize,
    pub swap: bool,
}

/// What an import did.
#[derive(Debug, PartialEq, Eq)]
pub enum Imported {
    /// The other host's changes, applied to the mirror (its pipelines apply them locally).
    Data { number: u64, applied: usize, swapped: bool, pruned: u64 },
    Ack { number: u64, pruned: u64 },
    /// Imported before (a copy, or an older message whose changes a later one held): nothing applied.
    AlreadyImported { number: u64 },
}

/// One replica of this host, with its store open.
pub struct Replica<'c> {
    pub name: String,
    pub config: &'c ReplicaConfig,
    loaded: &'c LoadedConfig,
    /// This host's name in messages.
    pub me: String,
    secret: String,
    pub store: Store,
    /// The folder pair, resolved: (upload, download).
    pub folders: Option<(PathBuf, PathBuf)>,
}

impl<'c> Replica<'c> {
    pub fn open(loaded: &'c LoadedConfig, name: &str) -> Result<Replica<'c>, ReplicaError> {
        let config = loaded.config.replicas.iter().find(|(n, _)| n.as_str() == name).map(|(_, c)| c).ok_or_else(|| ReplicaError {
            message: format!("there is no replica named `{name}`"),
            fix: format!("configured: {}", loaded.config.replicas.keys().map(|k| k.to_string()).collect::<Vec<_>>().join(", ")),
        })?;
        // Asked for only by what makes or reads messages: status needs no secret.
        let secret = crate::config::resolve_secret(&config.secret);
        let store = Store::open(&store_path(&loaded.data_dir(), name), roles::initial(config.kind, config.side))?;
        let me = loaded.config.host.name.clone().unwrap_or_else(crate::state::lease::host_name);
        // Over HTTP, messages wait in folders of the host's own until they cross.
        let folders = match (config.http.is_some() || config.ftp.is_some(), &config.folders) {
            (true, _) => {
                let own = store_path(&loaded.data_dir(), name).with_extension("");
                Some((own.join("outgoing"), own.join("incoming")))
            }
            (false, folders) => folders.as_ref().map(|f| (loaded.resolve(&f.upload), loaded.resolve(&f.download))),
        };
        Ok(Replica { name: name.to_owned(), config, loaded, me, secret, store, folders })
    }

    /// Where the replica stands, as `replicas status --json`, `status` and the dashboard show it.
    pub fn view(&self) -> Result<serde_json::Value, ReplicaError> {
        let store = &self.store;
        let (kept, kept_bytes) = store.kept()?;
        Ok(serde_json::json!({
            "replica": self.name,
            "kind": self.config.kind.as_str(),
            "side": match self.config.side { ReplicaSide::Parent => "parent", ReplicaSide::Child => "child" },
            "peer": self.config.peer,
            "role": store.role()?.as_str(),
            "last_sent": store.mark(Mark::LastSent)?,
            "last_received": store.mark(Mark::LastReceived)?,
            "last_change": store.last_change()?,
            "acknowledged_through": store.mark(Mark::Acknowledged)?,
            "marked_received_through": store.mark(Mark::Verbal)?,
            "applied_through": store.mark(Mark::LastApplied)?,
            "kept_changes": kept,
            "kept_bytes": kept_bytes,
            "link": self.config.http.as_ref().map(|link| serde_json::json!({
                "role": match link.role { LinkRole::Passive => "passive", LinkRole::Active => "active" },
                "up": store.mark(Mark::LinkDown).ok() != Some(1),
                "last_success": store.mark(Mark::LinkUp).ok().filter(|t| *t > 0)
                    .and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0)).map(|t| t.to_rfc3339()),
            })),
            "sent": store.sent(10)?,
            "activity": store.activity(10)?,
        }))
    }

    /// The shared secret, which every message needs.
    fn secret(&self) -> Result<String, ReplicaError> {
        if self.secret.is_empty() {
            return Err(ReplicaError {
                message: format!("[replicas.{}] secret is empty (or names an environment variable that is not set)", self.name),
                fix: "set the secret both hosts share, or the environment variable it names".into(),
            });
        }
        Ok(self.secret.clone())
    }

    fn refused(&self, action: &str, refusal: Refusal) -> ReplicaError {
        let _ = self.store.log("error", action, &refusal.message, Some(&refusal.fix));
        ReplicaError { message: refusal.message, fix: refusal.fix }
    }

    fn received(&self) -> Result<Option<Received>, ReplicaError> {
        if !roles::acknowledged(self.config.kind) {
            return Ok(None);
        }
        // Data messages only: the other host takes an unacknowledged swap
        // of its own for lost (D6) until a message says it arrived.
        let received = Received { message: self.store.mark(Mark::LastDataReceived)?, change: self.store.mark(Mark::LastApplied)? };
        self.store.set_mark(Mark::AcknowledgedReceived, received.message)?;
        Ok(Some(received))
    }

    fn message(&self, kind: MessageKind, number: u64, swap: bool, first: u64, last: u64, changes: Vec<message::MessageChange>) -> Result<Message, ReplicaError> {
        Ok(Message {
            replica: self.name.clone(),
            replica_kind: self.config.kind,
            sender: self.me.clone(),
            receiver: self.config.peer.clone(),
            number,
            kind,
            swap,
            first_change: first,
            last_change: last,
            received: self.received()?,
            created_at: crate::state::now(),
            changes,
        })
    }

    fn file_name(&self, number: u64, kind: MessageKind) -> String {
        let kind = match kind {
            MessageKind::Data => "data",
            MessageKind::Ack => "ack",
        };
        format!("{}-{}-{number:06}.{kind}.synchost", self.name, self.me)
    }

    /// A data-change message (D1, D2): every change not acknowledged (nor
    /// marked received, D9), new ones included; with `swap`, this host
    /// becomes the receiver (D4, D8).
    pub fn export(&mut self, swap: bool) -> Result<Exported, ReplicaError> {
        let role = self.store.role()?;
        roles::may_send(self.config.kind, self.config.side, role, swap).map_err(|r| self.refused("export", r))?;
        self.export_unchecked(swap)
    }

    fn export_unchecked(&mut self, swap: bool) -> Result<Exported, ReplicaError> {
        let after = self.store.mark(Mark::Acknowledged)?.max(self.store.mark(Mark::Verbal)?);
        let changes = self.store.changes_after(after)?;
        let last = self.store.last_change()?.max(after);
        let number = self.store.mark(Mark::LastSent)? + 1;
        let count = changes.len();
        let message = self.message(MessageKind::Data, number, swap, after + 1, last, changes)?;
        let bytes = message::encode(&message, &self.secret()?);
        let file_name = self.file_name(number, MessageKind::Data);
        self.store.set_mark(Mark::LastSent, number)?;
        self.store.record_sent(number, "data", swap, after + 1, last, &file_name)?;
        if swap {
            self.store.set_role(Role::Receiver)?;
        }
        if !roles::acknowledged(self.config.kind) {
            // A check-out sends once: what went is let go at once.
            self.store.acknowledge(number, last)?;
        }
        let range = if count == 0 { "no changes".to_owned() } else { format!("{count} change(s), {}..{last}", after + 1) };
        let swapped = if swap { "; roles swapped: this host now receives" } else { "" };
        self.store.log("info", "export", &format!("data message {number} exported: {range}{swapped}"), None)?;
        Ok(Exported { number, file_name, bytes, changes: count, swap })
    }

    /// An acknowledgement of every message received so far (D3).
    pub fn acknowledge(&mut self) -> Result<Exported, ReplicaError> {
        if !roles::acknowledged(self.config.kind) {
            return Err(self.refused(
                "ack",
                Refusal { message: "a check-out replica uses no acknowledgements".into(), fix: "nothing to do: the child lets its changes go once exported".into() },
            ));
        }
        let number = self.store.mark(Mark::LastSent)? + 1;
        let last = self.store.last_change()?;
        let message = self.message(MessageKind::Ack, number, false, last + 1, last, Vec::new())?;
        let received = message.received.expect("acknowledged kinds say what they received");
        let bytes = message::encode(&message, &self.secret()?);
        let file_name = self.file_name(number, MessageKind::Ack);
        self.store.set_mark(Mark::LastSent, number)?;
        self.store.record_sent(number, "ack", false, last + 1, last, &file_name)?;
        self.store.log(
            "info",
            "ack",
            &format!("acknowledgement {number} exported: messages through {} and changes through {} received", received.message, received.change),
            None,
        )?;
        Ok(Exported { number, file_name, bytes, changes: 0, swap: false })
    }

    /// Sends every change not acknowledged again (D6): also by a host that
    /// swapped roles and whose swap message was lost (both hosts are
    /// receivers then), which sends that swap again.
    pub fn resend(&mut self) -> Result<Exported, ReplicaError> {
        let role = self.store.role()?;
        let last = self.store.sent(20)?.into_iter().find(|s| s.kind == "data");
        match (role, last) {
            (Role::Receiver, Some(sent)) if sent.swap && sent.acknowledged_at.is_none() && self.config.kind == ReplicaKind::TwoWay => self.export_unchecked(true),
            _ => {
                roles::may_send(self.config.kind, self.config.side, role, false).map_err(|r| {
                    self.refused(
                        "resend",
                        Refusal {
                            message: format!("nothing to resend from this host: {}", r.message),
                            fix: "a host resends when it is the sender, or when its last message gave the sending role away and is not acknowledged".into(),
                        },
                    )
                })?;
                self.export_unchecked(false)
            }
        }
    }

    /// Verbal acknowledgement (D9): the other host said it received this
    /// host's changes through message `through` (the last one sent when
    /// `None`); later messages hold only newer changes. Nothing is let go:
    /// only an imported acknowledgement does that (D11).
    pub fn mark_received(&mut self, through: Option<u64>) -> Result<u64, ReplicaError> {
        let sent = self.store.sent(u32::MAX)?;
        let message = match through {
            Some(number) => sent.iter().find(|s| s.number == number && s.kind == "data"),
            None => sent.iter().find(|s| s.kind == "data"),
        }
        .ok_or_else(|| {
            self.refused(
                "mark-received",
                Refusal {
                    message: match through {
                        Some(number) => format!("this host sent no data message {number}"),
                        None => "this host has sent no data message yet".into(),
                    },
                    fix: "`synchost replicas status NAME` lists the messages sent".into(),
                },
            )
        })?;
        let change = message.last_change;
        self.store.set_mark(Mark::Verbal, change.max(self.store.mark(Mark::Verbal)?))?;
        self.store.log(
            "info",
            "mark-received",
            &format!("changes through {change} (message {}) marked received without an acknowledgement: later messages hold only newer changes", message.number),
            Some("they are still kept to resend until an acknowledgement is imported"),
        )?;
        Ok(change)
    }

    /// Imports every message of the other host waiting in the download
    /// folder, oldest first; each one imported is taken away. At the first
    /// refusal it stops: the refused file is set aside (`*.refused`),
    /// unless it only waits for an earlier message, which may still come.
    pub fn import_waiting(&mut self) -> (Vec<(PathBuf, Imported)>, Option<ReplicaError>) {
        let mut done = Vec::new();
        let Some((_, download)) = self.folders.clone() else {
            let error = ReplicaError {
                message: format!("replica `{}` has no download folder", self.name),
                fix: format!("name the files to import, or set [replicas.{}] folders", self.name),
            };
            return (done, Some(error));
        };
        let files = match folder::waiting(&download, &self.name, &self.config.peer) {
            Ok(files) => files,
            Err(e) => return (done, Some(ReplicaError { message: format!("cannot read {}: {e}", download.display()), fix: "check that the folder exists and is readable".into() })),
        };
        for file in files {
            let bytes = match std::fs::read(&file) {
                Ok(bytes) => bytes,
                Err(e) => return (done, Some(ReplicaError { message: format!("cannot read {}: {e}", file.display()), fix: "check the file's permissions".into() })),
            };
            match self.import(&bytes, &file.display().to_string()) {
                Ok(imported) => {
                    let _ = std::fs::remove_file(&file);
                    done.push((file, imported));
                }
                Err(error) => {
                    if !error.message.contains("were never imported here") {
                        let _ = folder::set_aside(&file);
                    }
                    return (done, Some(error));
                }
            }
        }
        (done, None)
    }

    /// What an unattended exchange sends now: a data message when this host
    /// may send and has changes no message held yet; else an acknowledgement
    /// when it imported messages it has not acknowledged.
    pub fn due(&self) -> Result<Option<MessageKind>, ReplicaError> {
        let role = self.store.role()?;
        let sent_through = self.store.sent(u32::MAX)?.iter().filter(|s| s.kind == "data").map(|s| s.last_change).max().unwrap_or(0);
        if roles::may_send(self.config.kind, self.config.side, role, false).is_ok() && self.store.last_change()? > sent_through {
            return Ok(Some(MessageKind::Data));
        }
        let acknowledged = self.store.mark(Mark::AcknowledgedReceived)?;
        if roles::acknowledged(self.config.kind) && self.store.mark(Mark::LastDataReceived)? > acknowledged {
            return Ok(Some(MessageKind::Ack));
        }
        Ok(None)
    }

    /// Imports a message file's bytes (`source` names it in messages).
    pub fn import(&mut self, bytes: &[u8], source: &str) -> Result<Imported, ReplicaError> {
        let secret = self.secret()?;
        let message = message::decode(bytes, &secret).map_err(|error| {
            let fix = match error {
                MessageError::Tampered | MessageError::Truncated(_) => {
                    "nothing was applied; get the file again from the other host (`synchost replicas resend` there makes a new one), and check that both hosts have the same secret"
                }
                MessageError::NotAMessage => "nothing was applied; import the .synchost files the other host exported",
                MessageError::Corrupt(_) => "nothing was applied; the other host's synchost may be newer: update this host",
            };
            self.refused("import", Refusal { message: format!("{source} is refused: {error}"), fix: fix.into() })
        })?;
        if message.replica != self.name || message.sender != self.config.peer || message.receiver != self.me {
            return Err(self.refused(
                "import",
                Refusal {
                    message: format!(
                        "{source} is message {} of replica `{}` from `{}` to `{}`, not one of replica `{}` from `{}` to `{}`",
                        message.number, message.replica, message.sender, message.receiver, self.name, self.config.peer, self.me
                    ),
                    fix: format!("import it on the host it was made for; check [replicas.{}] peer and both hosts' [host] name", self.name),
                },
            ));
        }
        if message.replica_kind != self.config.kind {
            return Err(self.refused(
                "import",
                Refusal {
                    message: format!("{source} is of a {} replica, and this host's is {}", message.replica_kind.as_str(), self.config.kind.as_str()),
                    fix: format!("set the same kind in [replicas.{}] on both hosts", self.name),
                },
            ));
        }
        // Each kind by its own count: an acknowledgement may overtake a data
        // message made before it, which is still to be imported.
        let last_of_kind = self.store.mark(match message.kind {
            MessageKind::Data => Mark::LastDataReceived,
            MessageKind::Ack => Mark::LastAckReceived,
        })?;
        if message.number <= last_of_kind {
            self.store.log("info", "import", &format!("{source}: message {} was imported before; nothing applied", message.number), None)?;
            return Ok(Imported::AlreadyImported { number: message.number });
        }
        match message.kind {
            MessageKind::Ack => {
                let pruned = match message.received {
                    Some(received) => self.store.acknowledge(received.message, received.change)?,
                    None => 0,
                };
                self.store.set_mark(Mark::LastAckReceived, message.number)?;
                self.store.set_mark(Mark::LastReceived, message.number.max(self.store.mark(Mark::LastReceived)?))?;
                self.store.log("info", "import", &format!("acknowledgement {} imported: {pruned} change(s) kept for resending let go", message.number), None)?;
                Ok(Imported::Ack { number: message.number, pruned })
            }
            MessageKind::Data => self.import_data(message, source),
        }
    }

    fn log_concurrent(&self, concurrent: &[Concurrent], number: u64) -> Result<(), ReplicaError> {
        for c in concurrent {
            let (level, outcome, fix) = match c.settled {
                Settled::Ours => ("info", "this host's value is kept (the pipeline's policy); the other host takes it from this host's change", None),
                Settled::Theirs => ("info", "the other host's value is applied (the pipeline's policy)", None),
                Settled::Unsettled => (
                    "warn",
                    "the other host's value is applied, as it came later; the two hosts may keep different values",
                    Some("give the field's pipeline `conflict = \"left-wins\"` or `\"right-wins\"` on both hosts, naming the same host's side, so that both settle on one value"),
                ),
            };
            self.store.log(level, "import", &format!("message {number}: {}.{} of {} changed on both hosts: {outcome}", c.entity, c.field, c.key), fix)?;
        }
        Ok(())
    }

    fn import_data(&mut self, message: Message, source: &str) -> Result<Imported, ReplicaError> {
        let applied_through = self.store.mark(Mark::LastApplied)?;
        if message.first_change > applied_through + 1 {
            return Err(self.refused(
                "import",
                Refusal {
                    message: format!(
                        "{source}: message {} holds the other host's changes {}..{}, but changes {}..{} were never imported here: a message before it is missing, or was imported out of order",
                        message.number,
                        message.first_change,
                        message.last_change,
                        applied_through + 1,
                        message.first_change - 1
                    ),
                    fix: format!(
                        "import the other host's earlier messages first, in order; if they are lost, ask the other host to send its changes again (`synchost replicas resend {}` there; after a verbal acknowledgement, it sends only newer changes until an acknowledgement from this host arrives)",
                        self.name
                    ),
                },
            ));
        }
        let role = self.store.role()?;
        roles::may_receive(self.config.kind, self.config.side, role).map_err(|r| self.refused("import", r))?;
        let new: Vec<_> = message.changes.iter().filter(|c| c.number > applied_through).cloned().collect();
        let (loaded, name) = (self.loaded, self.name.clone());
        let settle = move |entity: &str, field: &str| settle(loaded, &name, entity, field);
        let last_received = message.number.max(self.store.mark(Mark::LastReceived)?);
        let concurrent = self.store.apply(&new, message.last_change.max(applied_through), last_received, &settle)?;
        self.log_concurrent(&concurrent, message.number)?;
        // Changes sent with what they received acknowledge it (D7).
        let pruned = match message.received {
            Some(received) if roles::acknowledged(self.config.kind) => self.store.acknowledge(received.message, received.change)?,
            _ => 0,
        };
        self.store.set_mark(Mark::LastDataReceived, message.number)?;
        if message.swap {
            self.store.set_role(Role::Sender)?;
        }
        let swapped = if message.swap { "; roles swapped: this host now sends" } else { "" };
        self.store.log("info", "import", &format!("data message {} imported: {} change(s) applied{swapped}", message.number, new.len()), None)?;
        Ok(Imported::Data { number: message.number, applied: new.len(), swapped: message.swap, pruned })
    }
}

/// Whose value of a field both hosts changed the pipeline over replica
/// `name` keeps, by its policy: a side that wins names a host.
fn settle(loaded: &LoadedConfig, name: &str, entity: &str, field: &str) -> Settled {
    for pipeline in loaded.config.pipelines.values() {
        let (replica_side, replica_wins, local_wins) = if pipeline.right.endpoint.get_ref().as_str() == name && pipeline.right.entity == entity {
            (Side::Right, ConflictPolicy::RightWins, ConflictPolicy::LeftWins)
        } else if pipeline.left.endpoint.get_ref().as_str() == name && pipeline.left.entity == entity {
            (Side::Left, ConflictPolicy::LeftWins, ConflictPolicy::RightWins)
        } else {
            continue;
        };
        let Some(left) = pipeline.fields.keys().find(|left| pipeline.name_on(replica_side, left) == field) else { continue };
        let policy = pipeline.policy_of(left);
        return match policy {
            p if p == replica_wins => Settled::Theirs,
            p if p == local_wins => Settled::Ours,
            _ => Settled::Unsettled,
        };
    }
    Settled::Unsettled
}
