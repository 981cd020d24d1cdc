//! The endpoint settings this connector accepts.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[endpoints.NAME.settings]` of a redmine endpoint.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Redmine's base URL, e.g. `https://redmine.example.com` (its origin must
    /// also be granted under `[endpoints.NAME.grants.http] allow`).
    pub url: String,
    /// The API key of the account synchost acts as (My account > API access key).
    pub api_key: String,
    /// Only this project (its identifier) and its subprojects: projects, issues
    /// and time entries outside it are neither read nor written. Projects created
    /// from the other side become its subprojects. Default: every visible project.
    pub project: Option<String>,
    /// Only time entries spent on or after this date (`YYYY-MM-DD`).
    pub time_entries_since: Option<String>,
    /// Records per request, 1 to 100. Default 100.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Per-request timeout in milliseconds. Default 30000.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u32,
    /// Issue custom fields to read and write, by their name in Redmine, with
    /// their type: `text`, `integer`, `float`, `date` or `boolean`, e.g.
    /// `{ "Plan work" = "float" }`. Each becomes an issue field of that name
    /// (a mirror field for the plan's value, say). Each must exist in Redmine
    /// (Administration > Custom fields) and be enabled for the project and the
    /// issues' trackers.
    #[serde(default)]
    pub issue_custom_fields: BTreeMap<String, CustomFieldType>,
    /// The name of a Redmine custom field (format Text, "Used as a filter"
    /// ticked) for time entries and issues, in which synchost keeps the origin
    /// of each record it creates. With it, a create repeated after a crash or a
    /// timeout finds the record made the first time instead of making a second;
    /// without it, such a create becomes a failed item for a person to check.
    /// Not a synced field: synchost only writes it on create and searches it.
    /// By name, or by the ids of the time entry and issue fields
    /// (`{ time_entries = 4, issues = 3 }`, the number in the address of each
    /// one's page under Administration > Custom fields): an account that is
    /// not an administrator sees a field by name only on a record that has it.
    pub origin_field: Option<OriginField>,
    /// The issue fields Redmine derives for a parent issue from its subtasks
    /// (Administration > Settings > Issue tracking > "Parent tasks
    /// attributes"): left out of a parent's record, so Redmine's roll-ups
    /// never count as someone's change, and not sent to a parent. Default
    /// Redmine's own: `["start_date", "due_date", "done_ratio",
    /// "priority_id"]`; `[]` when every parent attribute is independent.
    pub derived_parent_fields: Option<Vec<String>>,
    /// Time logged on an issue changes its `spent_hours` but not its
    /// `updated_on`, so the issues' change feed does not see it: every this
    /// many seconds the feed reads the scope's issues whole once more, and
    /// the host passes on what changed. Default 300; 0 reads them whole on
    /// every run.
    #[serde(default = "default_spent_time_check")]
    pub spent_time_check_s: u32,
}

fn default_spent_time_check() -> u32 {
    300
}

/// The origin custom field, by name or by id per entity.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum OriginField {
    Name(String),
    Ids(OriginFieldIds),
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OriginFieldIds {
    pub time_entries: Option<i64>,
    pub issues: Option<i64>,
}

impl std::fmt::Display for OriginField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OriginField::Name(name) => write!(f, "{name}"),
            OriginField::Ids(ids) => write!(f, "time_entries = {:?}, issues = {:?}", ids.time_entries, ids.issues),
        }
    }
}

/// The type of an issue custom field's values (Redmine's "format").
#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(rename_all = "lowercase")]
pub enum CustomFieldType {
    Text,
    Integer,
    Float,
    Date,
    Boolean,
}

fn default_page_size() -> u32 {
    100
}

fn default_timeout() -> u32 {
    30_000
}

// The API key must never reach a log: settings are not Debug-printed whole.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url)
            .field("api_key", &"<redacted>")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}
