//! `[scopes.NAME]`: records that one person can lock while re-planning them
//! (L2-L4), e.g. one project: a plan file and its Redmine project.

use schemars::JsonSchema;
use serde::Deserialize;

use super::values::{InstanceName, PipelineName, Timeout};

/// A lockable scope: every record of its pipelines.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeConfig {
    /// The pipelines whose records the scope holds (a pipeline belongs to
    /// at most one scope).
    pub pipelines: Vec<PipelineName>,
    /// Who edits the scope by default, and where: an endpoint of its
    /// pipelines (e.g. the plan file's) and the admin API user who works
    /// there. Auto-lock locks the scope for this user when that endpoint's
    /// changes start while nobody holds it; a lock taken without naming an
    /// endpoint is held from this one.
    pub editor: Option<Editor>,
    /// Lock the scope for the editor when the editor's endpoint starts
    /// changing it and nobody holds it (L3). Default true; it needs `editor`.
    #[serde(default = "yes")]
    pub auto_lock: bool,
    /// A lock whose holder changed nothing in the scope for this long is
    /// released (L4). Default `30m`.
    #[serde(default = "default_idle")]
    #[schemars(with = "Option<Timeout>")]
    pub idle_timeout: Timeout,
    /// Users who may force another holder's lock open, besides admins (L4).
    #[serde(default)]
    pub unlock: Vec<String>,
}

/// The endpoint a scope is edited through and the user who edits there.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Editor {
    /// A key of `[endpoints]`, a side of each of the scope's pipelines.
    pub endpoint: InstanceName,
    /// An admin API user (`synchost users add`).
    pub user: String,
}

fn yes() -> bool {
    true
}

fn default_idle() -> Timeout {
    Timeout(std::time::Duration::from_secs(30 * 60))
}
