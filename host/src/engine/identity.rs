//! Identity (T5): what each endpoint is, and which host runs the state.
//!
//! An endpoint's identity is where its grants reach (a SQLite file's path,
//! the HTTP origins, the folders) and what answers there: the file itself
//! (its device and inode, so a file replaced by another at the same path is
//! told apart), and what the connector says about the system (plugin API
//! 0.5 `identity`: a Redmine's scoped project and when it was made). The
//! host's identity is its name.
//! Each is recorded at the first sync; before every run they are compared
//! with what the config and the machine say now. An endpoint that points
//! somewhere else entirely, a file replaced, or a state that another host
//! ran stops the pipelines concerned with a message, until an admin
//! confirms the new identity (`synchost endpoints rebind`) or puts the old
//! one back: syncing into the wrong system is worse than not syncing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Engine, RunError};
use crate::config::{Dsn, LoadedConfig};
use crate::state::{RecordedIdentity, State, StateError};

/// What an endpoint is, or which host runs the state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Where it is: per grant (`sql.NAME`, `files.NAME`, `http`), the places
    /// the grant reaches; for the host, `name`.
    pub places: BTreeMap<String, Vec<String>>,
    /// What answers there, where the host can tell: per grant (a database
    /// file), and under [`SYSTEM`] what the connector says.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instance: BTreeMap<String, String>,
}

/// The key of what the connector says about the system it reaches.
pub const SYSTEM: &str = "system";

/// How long what a connector said about its system is taken as true.
const SYSTEM_ASKED_AGAIN: Duration = Duration::from_secs(600);

/// What each endpoint's connector said, and when (a call per run would cost
/// a request to the system on every run).
#[derive(Default)]
pub struct Systems(Mutex<HashMap<String, (Instant, Option<String>)>>);

impl Identity {
    /// The places, for messages: `sql.crm sqlite:/data/crm.sqlite; http http://redmine:3000`.
    pub fn summary(&self) -> String {
        self.places.iter().map(|(grant, places)| format!("{grant} {}", places.join(", "))).collect::<Vec<_>>().join("; ")
    }
}

/// Whose identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    Host,
    Endpoint(&'a str),
}

impl Subject<'_> {
    /// The key its identity is kept under.
    pub fn key(&self) -> String {
        match self {
            Subject::Host => "host".into(),
            Subject::Endpoint(name) => format!("endpoint:{name}"),
        }
    }
}

impl std::fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Host => f.write_str("the host"),
            Subject::Endpoint(name) => write!(f, "endpoint `{name}`"),
        }
    }
}

/// How an identity differs from the one recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// A grant reaches none of the places it reached.
    Moved { grant: String, recorded: Vec<String>, now: Vec<String> },
    /// The same place holds another system (a file replaced by another).
    Replaced { grant: String, place: String },
    /// The connector says another system answers.
    Answers { recorded: String, now: String },
}

/// Pure: whether `current` is another system than `recorded`. A grant added
/// or removed, or an HTTP origin added beside the old one, is not: the
/// endpoint still reaches what it reached.
pub fn compare(recorded: &Identity, current: &Identity) -> Option<Mismatch> {
    for (grant, before) in &recorded.places {
        let Some(now) = current.places.get(grant) else { continue };
        if !before.iter().any(|place| now.contains(place)) {
            return Some(Mismatch::Moved { grant: grant.clone(), recorded: before.clone(), now: now.clone() });
        }
        if let (Some(was), Some(is)) = (recorded.instance.get(grant), current.instance.get(grant)) {
            if was != is && before == now {
                return Some(Mismatch::Replaced { grant: grant.clone(), place: now.join(", ") });
            }
        }
    }
    match (recorded.instance.get(SYSTEM), current.instance.get(SYSTEM)) {
        (Some(was), Some(is)) if was != is => Some(Mismatch::Answers { recorded: was.clone(), now: is.clone() }),
        _ => None,
    }
}

/// Pure: the message and the fix for a mismatch.
pub fn explain(subject: Subject<'_>, mismatch: &Mismatch) -> (String, String) {
    match (subject, mismatch) {
        (Subject::Host, mismatch) => {
            let (recorded, now) = match mismatch {
                Mismatch::Moved { recorded, now, .. } => (recorded.join(", "), now.join(", ")),
                // A host has no instance to replace; said the same way should one appear.
                Mismatch::Replaced { place: now, .. } | Mismatch::Answers { now, .. } => ("another".to_owned(), now.clone()),
            };
            (
                format!(
                    "this state was last run by host `{recorded}`, and host `{now}` runs it now: its data folder was moved or copied to another machine, so nothing syncs until that is confirmed"
                ),
                "if the host moved here, confirm it: `synchost endpoints rebind --host`; if the data folder was copied, run only one of the two hosts (both would write the same changes); where the machine's name changes on every start (a container), set [host] name".into(),
            )
        }
        (Subject::Endpoint(name), Mismatch::Moved { grant, recorded, now }) => (
            format!(
                "endpoint `{name}` now reaches {} ({grant}), but its records were synced with {}: it may be another system, so its pipelines stop rather than sync into the wrong place",
                now.join(", "),
                recorded.join(", ")
            ),
            format!("if it is the same system at a new address, confirm it: `synchost endpoints rebind {name}`; if not, put the old address back in [endpoints.{name}]"),
        ),
        (Subject::Endpoint(name), Mismatch::Answers { recorded, now }) => (
            format!(
                "endpoint `{name}` answers as another system ({now}) than the one its records were synced with ({recorded}), so its pipelines stop rather than sync into the wrong place"
            ),
            format!(
                "if the system was rebuilt or restored and is the one to sync with, confirm it: `synchost endpoints rebind {name}`; if not, point [endpoints.{name}] back at the system it synced with"
            ),
        ),
        (Subject::Endpoint(name), Mismatch::Replaced { grant, place }) => (
            format!(
                "endpoint `{name}`: {place} ({grant}) is not the database its records were synced with (the file was replaced, or restored from a copy), so its pipelines stop rather than sync into the wrong data"
            ),
            format!(
                "if this is the data to sync (a restore you meant), confirm it: `synchost endpoints rebind {name}` (records are compared with what was synced last, so changes the restore undid sync again); if not, put the right file back"
            ),
        ),
    }
}

/// Where an endpoint's grants reach, and what answers there, as the config and the machine say now.
pub fn of_endpoint(config: &LoadedConfig, name: &str) -> Option<Identity> {
    let (_, instance) = config.instance(name)?;
    let mut identity = Identity::default();
    for (connection, grant) in &instance.grants.sql {
        let grant_key = format!("sql.{connection}");
        match grant.dsn.get_ref() {
            Dsn::Sqlite(path) => {
                let path = config.resolve(path);
                let path = std::fs::canonicalize(&path).unwrap_or(path);
                if let Some(file) = file_identity(&path) {
                    identity.instance.insert(grant_key.clone(), file);
                }
                identity.places.insert(grant_key, vec![format!("sqlite:{}", path.display())]);
            }
        }
    }
    for (folder, grant) in &instance.grants.files {
        let path = config.resolve(grant.path.get_ref());
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        identity.places.insert(format!("files.{folder}"), vec![path.display().to_string()]);
    }
    if !instance.grants.http.allow.is_empty() {
        let mut origins: Vec<String> = instance.grants.http.allow.iter().map(ToString::to_string).collect();
        origins.sort();
        identity.places.insert("http".into(), origins);
    }
    Some(identity)
}

/// The host's identity: `[host] name`, else the machine's name.
pub fn of_host(config: &LoadedConfig) -> Identity {
    let name = config.config.host.name.clone().unwrap_or_else(crate::state::lease::host_name);
    Identity { places: BTreeMap::from([("name".to_owned(), vec![name])]), instance: BTreeMap::new() }
}

#[cfg(unix)]
fn file_identity(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| format!("{}:{}", m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_identity(_: &std::path::Path) -> Option<String> {
    None
}

/// One subject's identity, recorded and now.
#[derive(Debug, Clone)]
pub struct Finding {
    pub subject: String,
    pub recorded: Option<RecordedIdentity>,
    pub current: Identity,
    /// The message and the fix, when it is another system now.
    pub mismatch: Option<(String, String)>,
}

impl Finding {
    /// As `endpoints list --json` and `GET /api/v1/identities` give it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "subject": self.subject,
            "recorded": self.recorded.as_ref().map(|r| serde_json::json!({
                "identity": serde_json::from_str::<serde_json::Value>(&r.identity).unwrap_or_default(),
                "recorded_at": r.recorded_at,
                "confirmed_by": r.confirmed_by,
            })),
            "now": self.current,
            "mismatch": self.mismatch.as_ref().map(|(message, fix)| serde_json::json!({ "message": message, "fix": fix })),
        })
    }
}

/// Compares one subject's identity now with the one recorded.
fn finding(state: &State, subject: Subject<'_>, current: Identity) -> Result<Finding, StateError> {
    let recorded = state.recorded_identity(&subject.key())?;
    let mismatch = recorded
        .as_ref()
        .and_then(|r| serde_json::from_str::<Identity>(&r.identity).ok())
        .and_then(|before| compare(&before, &current))
        .map(|m| explain(subject, &m));
    Ok(Finding { subject: subject.to_string(), recorded, current, mismatch })
}

/// Why a rebind was refused.
#[derive(Debug, thiserror::Error)]
pub enum RebindError {
    #[error("there is no endpoint named `{0}` in the config")]
    UnknownEndpoint(String),
    #[error(transparent)]
    State(#[from] StateError),
}

impl Engine {
    /// A subject's identity as the config, the machine and the connector say now.
    pub async fn current_identity(&self, subject: Subject<'_>) -> Option<Identity> {
        let name = match subject {
            Subject::Host => return Some(of_host(&self.config)),
            Subject::Endpoint(name) => name,
        };
        let mut identity = of_endpoint(&self.config, name)?;
        if let Some(system) = self.system_of(name).await {
            identity.instance.insert(SYSTEM.into(), system);
        }
        Some(identity)
    }

    /// What the endpoint's connector says answers; `None` when it says
    /// nothing, or cannot be asked now (the run then fails on its own, with
    /// its own reason).
    async fn system_of(&self, endpoint: &str) -> Option<String> {
        let fresh = |asked: &Instant| asked.elapsed() < SYSTEM_ASKED_AGAIN;
        if let Some((_, system)) = self.systems.0.lock().ok()?.get(endpoint).filter(|(asked, _)| fresh(asked)) {
            return system.clone();
        }
        let instance = self.catalog.instance(endpoint).ok()?;
        match instance.identity().await {
            Ok(system) => {
                self.systems.0.lock().ok()?.insert(endpoint.to_owned(), (Instant::now(), system.clone()));
                system
            }
            Err(error) => {
                tracing::debug!(endpoint, "Cannot ask which system answers: {error}");
                None
            }
        }
    }

    /// The host and every endpoint of the config, as `doctor` and `endpoints list` show them.
    pub async fn identity_findings(&self) -> Result<Vec<Finding>, StateError> {
        let mut found = vec![finding(&self.state, Subject::Host, of_host(&self.config))?];
        for name in self.config.config.endpoints.keys() {
            if let Some(current) = self.current_identity(Subject::Endpoint(name.as_str())).await {
                found.push(finding(&self.state, Subject::Endpoint(name.as_str()), current)?);
            }
        }
        Ok(found)
    }

    /// Confirms a subject's identity as it is now: its pipelines sync again.
    pub async fn rebind(&self, subject: Subject<'_>, by: &str) -> Result<Identity, RebindError> {
        let current = match subject {
            Subject::Host => of_host(&self.config),
            Subject::Endpoint(name) => self.current_identity(subject).await.ok_or_else(|| RebindError::UnknownEndpoint(name.to_owned()))?,
        };
        let before = self.state.recorded_identity(&subject.key())?;
        self.state.record_identity(&subject.key(), &serde_json::to_string(&current).unwrap_or_default(), Some(by))?;
        let was = before.and_then(|r| serde_json::from_str::<Identity>(&r.identity).ok()).map(|i| i.summary()).unwrap_or_else(|| "nothing recorded".into());
        self.state.event("info", None, None, &format!("{subject} confirmed by {by}: {} (was: {was})", current.summary()), None)?;
        Ok(current)
    }

    /// Before a run touches anything: the host and the pipeline's endpoints
    /// are what they were (recorded now if this is their first sync).
    pub(crate) async fn confirm_identities(&self, left: &str, right: &str) -> Result<(), RunError> {
        let mut subjects = vec![Subject::Host, Subject::Endpoint(left)];
        if right != left {
            subjects.push(Subject::Endpoint(right));
        }
        for subject in subjects {
            let Some(current) = self.current_identity(subject).await else { continue };
            let found = finding(&self.state, subject, current)?;
            if let Some((message, hint)) = found.mismatch {
                return Err(RunError::Identity { message, hint });
            }
            // Recorded at the first sync; kept current when grants change
            // without moving, or the connector first tells its system.
            let recorded = found.recorded.as_ref().and_then(|r| serde_json::from_str::<Identity>(&r.identity).ok());
            if recorded.as_ref() != Some(&found.current) {
                let mut keep = found.current.clone();
                // What the connector could not be asked this time stays as recorded.
                if let Some(system) = recorded.as_ref().and_then(|r| r.instance.get(SYSTEM)) {
                    keep.instance.entry(SYSTEM.into()).or_insert_with(|| system.clone());
                }
                if recorded.as_ref() != Some(&keep) {
                    self.state.record_identity(&subject.key(), &serde_json::to_string(&keep).unwrap_or_default(), None)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(places: &[(&str, &[&str])], instance: &[(&str, &str)]) -> Identity {
        Identity {
            places: places.iter().map(|(g, p)| (g.to_string(), p.iter().map(|s| s.to_string()).collect())).collect(),
            instance: instance.iter().map(|(g, i)| (g.to_string(), i.to_string())).collect(),
        }
    }

    #[test]
    fn an_address_that_shares_nothing_with_the_recorded_one_is_a_move() {
        let before = identity(&[("http", &["http://127.0.0.1:3000"])], &[]);
        let after = identity(&[("http", &["http://localhost:3000"])], &[]);
        assert_eq!(
            compare(&before, &after),
            Some(Mismatch::Moved { grant: "http".into(), recorded: vec!["http://127.0.0.1:3000".into()], now: vec!["http://localhost:3000".into()] })
        );
    }

    #[test]
    fn an_origin_added_beside_the_old_one_or_a_grant_added_is_not_a_move() {
        let before = identity(&[("http", &["http://a:1"])], &[]);
        let after = identity(&[("http", &["http://a:1", "http://b:2"]), ("files.inbox", &["/in"])], &[]);
        assert_eq!(compare(&before, &after), None);
        assert_eq!(compare(&after, &before), None, "a grant removed reaches nothing else");
    }

    #[test]
    fn the_same_path_holding_another_file_is_a_replacement_and_a_moved_file_a_move() {
        let before = identity(&[("sql.main", &["sqlite:/d/crm.sqlite"])], &[("sql.main", "2049:10")]);
        let replaced = identity(&[("sql.main", &["sqlite:/d/crm.sqlite"])], &[("sql.main", "2049:11")]);
        assert_eq!(compare(&before, &replaced), Some(Mismatch::Replaced { grant: "sql.main".into(), place: "sqlite:/d/crm.sqlite".into() }));
        let moved = identity(&[("sql.main", &["sqlite:/e/crm.sqlite"])], &[("sql.main", "2049:10")]);
        assert!(matches!(compare(&before, &moved), Some(Mismatch::Moved { .. })));
        let unknown_now = identity(&[("sql.main", &["sqlite:/d/crm.sqlite"])], &[]);
        assert_eq!(compare(&before, &unknown_now), None, "a file that cannot be read yet is the probe's to report");
    }

    #[test]
    fn another_system_at_the_same_address_is_told_by_what_the_connector_says() {
        let before = identity(&[("http", &["http://a:1"])], &[(SYSTEM, "redmine project 7 made 2026-01-02")]);
        let other = identity(&[("http", &["http://a:1"])], &[(SYSTEM, "redmine project 7 made 2026-03-04")]);
        assert!(matches!(compare(&before, &other), Some(Mismatch::Answers { .. })));
        let (message, hint) = explain(Subject::Endpoint("redmine"), &compare(&before, &other).unwrap());
        assert!(message.contains("answers as another system (redmine project 7 made 2026-03-04)"), "{message}");
        assert!(hint.contains("synchost endpoints rebind redmine"), "{hint}");
        let unknown = identity(&[("http", &["http://a:1"])], &[]);
        assert_eq!(compare(&before, &unknown), None, "a connector that cannot be asked now says nothing");
    }

    #[test]
    fn each_mismatch_says_how_to_confirm_or_undo_it() {
        let moved = Mismatch::Moved { grant: "http".into(), recorded: vec!["http://a:1".into()], now: vec!["http://b:1".into()] };
        let (message, hint) = explain(Subject::Endpoint("redmine"), &moved);
        assert!(message.contains("endpoint `redmine` now reaches http://b:1") && message.contains("synced with http://a:1"), "{message}");
        assert!(hint.contains("synchost endpoints rebind redmine") && hint.contains("[endpoints.redmine]"), "{hint}");
        let host = Mismatch::Moved { grant: "name".into(), recorded: vec!["old".into()], now: vec!["new".into()] };
        let (message, hint) = explain(Subject::Host, &host);
        assert!(message.contains("last run by host `old`, and host `new` runs it now"), "{message}");
        assert!(hint.contains("synchost endpoints rebind --host"), "{hint}");
    }
}
