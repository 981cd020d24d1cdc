//! The endpoint's settings.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The granted folder holding the plan (`[endpoints.NAME.grants.files.FOLDER]`).
    pub folder: String,
    /// The plan's file name in that folder, a Microsoft Project XML (MSPDI) file.
    pub file: String,
    /// The task custom field (a flag) that marks tasks to publish to the team's
    /// tracker: its alias or name as the plan defines it, or `Flag1` ... `Flag3`.
    #[serde(default = "default_publish_field")]
    pub publish_field: String,
    /// The task custom field (text) holding the work item type: its alias, or
    /// its name as the plan defines it, or `Text1` ... `Text3`.
    #[serde(default = "default_type_field")]
    pub type_field: String,
}

fn default_publish_field() -> String {
    "Publish to team project".into()
}

fn default_type_field() -> String {
    "Work item type".into()
}
