//! `project-plan`: a connector for a project plan kept as a Microsoft Project
//! XML file (MSPDI, which MS Project, ProjectLibre and MPXJ read and write) in
//! a folder granted to the endpoint (`grants.files`).
//!
//! - Entities: `tasks` (outline hierarchy as `parent_id`, dates, work,
//!   remaining and actual work in hours, the one assigned resource and the
//!   number of assignments, predecessors and those of them not flagged for
//!   publishing, and the custom fields "publish to team project" and "work
//!   item type") and `resources` (read). A pipeline publishes the flagged
//!   tasks with its scope: `where = { publish = true }`. A file has no change feed: each run
//!   reads the plan whole, and versions are digests of the values.
//! - Writes update tasks in place and add new tasks under their parent; the
//!   rest of the file stays byte for byte as it was. The new file is written
//!   next to the old one and renamed over it, so a reader never sees half a
//!   plan. An update first checks the expected version and reports a conflict
//!   when the plan changed meanwhile. Tasks are not deleted by synchronisation.
//!   One writer at a time, a save by anyone else never lost, UIDs never
//!   reused (`guard`).
//!
//! # Layout
//! - `settings`: the endpoint settings.
//! - `guard`: the write lock, temporary files, the changed-meanwhile check, the UID high-water mark.
//! - `xml`: elements with their places in the text, and edits of the text.
//! - `plan`: MSPDI tasks, resources and assignments as records, and changes as edits.

mod guard;
mod plan;
mod settings;
mod xml;

use std::path::PathBuf;

use synchost_plugin_sdk::prelude::*;

use plan::{Plan, RESOURCE_FIELDS, TASK_FIELDS};
use settings::Settings;

/// The project-plan connector for one call.
pub struct ProjectPlan {
    settings: Settings,
    endpoint: String,
}

impl ProjectPlan {
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/{}", self.settings.folder)).join(&self.settings.file)
    }

    fn load(&self) -> Result<Plan, Error> {
        let mut text = self.read_text()?;
        // A planning application saving in place leaves the file empty or
        // half-written for an instant: a file that does not parse is read
        // again until it stays the same, and only then called bad.
        for _ in 0..10 {
            match Plan::parse(text.clone()) {
                Err(error) if error.problem().code == "bad-file" => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    let again = self.read_text()?;
                    if again == text {
                        return Err(error);
                    }
                    text = again;
                }
                other => return other,
            }
        }
        Plan::parse(text).map_err(|error| {
            Error::transient("plan-being-saved", format!("the plan kept changing while it was read: {error}"))
                .with_hint("the next run reads it again once the save is done")
        })
    }

    fn read_text(&self) -> Result<String, Error> {
        let path = self.path();
        guard::read_plan(&path).map_err(|e| {
            let (code, hint) = match e.kind() {
                std::io::ErrorKind::NotFound => (
                    "not-found",
                    format!(
                        "put the plan at `{}` in the folder granted as [endpoints.{}.grants.files.{}], or fix the endpoint's `file` setting",
                        self.settings.file, self.endpoint, self.settings.folder
                    ),
                ),
                _ => ("io", format!("check that the plan file is readable; the folder is granted as [endpoints.{}.grants.files.{}]", self.endpoint, self.settings.folder)),
            };
            Error::new(code, format!("cannot read the plan `{}`: {e}", self.settings.file)).with_hint(hint)
        })
    }

    /// Writes the new plan beside the old one, then renames it over it, if
    /// the plan is still `read` (what the write started from).
    fn save(&self, read: &str, text: &str) -> Result<(), Error> {
        let path = self.path();
        let temporary = guard::temporary(&path);
        let written = std::fs::File::create(&temporary).and_then(|mut file| {
            use std::io::Write;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(Error::new("io", format!("cannot write the plan `{}`: {e}", self.settings.file)).with_hint(self.writable_hint()));
        }
        guard::replace_if_unchanged(&path, read, &temporary).map_err(|e| match e.problem().code.as_str() {
            "io" => Error::new("io", e.problem().message.clone()).with_hint(self.writable_hint()),
            _ => e,
        })
    }

    fn writable_hint(&self) -> String {
        format!(
            "grant the folder writable ([endpoints.{}.grants.files.{}] read_only = false) and check the disk; the plan was left as it was",
            self.endpoint, self.settings.folder
        )
    }

    fn records(&self, entity: &str, plan: &Plan) -> Result<Vec<Record>, Error> {
        match entity {
            "tasks" => plan.task_records(&self.settings),
            "resources" => Ok(plan.resource_records()),
            other => Err(unknown(other)),
        }
    }
}

/// Applied only if the plan holds every value asked for; otherwise rejected
/// with what it holds instead.
fn kept_or_rejected(change: &Change, task: &Record, applied: Applied) -> Outcome {
    let missed = plan::not_kept(&change.fields, task);
    if missed.is_empty() {
        return Outcome::Applied(applied);
    }
    let list: Vec<String> = missed.iter().map(|(name, asked, held)| format!("`{name}` (asked {}, it holds {})", asked.to_display_string(), held.to_display_string())).collect();
    Outcome::Rejected(
        Error::new("not-kept", format!("the plan did not take {} of task {}", list.join(", "), task.id))
            .with_hint("open the task in the planning application and check it; the change is resubmitted")
            .into_problem(),
    )
}

fn unknown(entity: &str) -> Error {
    Error::new("unknown-entity", format!("project-plan has no entity `{entity}`")).with_hint("use one of: tasks, resources")
}

fn entity(name: &str, fields: &[(&str, FieldType, bool)], writable: bool) -> EntityDef {
    EntityDef {
        name: name.into(),
        key: "id".into(),
        fields: fields
            .iter()
            .map(|(name, kind, write)| FieldDef { name: (*name).into(), type_: *kind, nullable: *name != "id", read_only: !write })
            .collect(),
        change_feed: false,
        soft_delete: false,
        writable,
        // A plan task has no place for a foreign origin that MSPDI keeps.
        finds_by_origin: false,
    }
}

impl Connector for ProjectPlan {
    fn new(context: &Context) -> Result<Self, Error> {
        let settings: Settings = context.settings()?;
        if settings.file.contains('/') || settings.file.contains("..") {
            return Err(Error::settings(format!("file `{}` must be a file name inside the granted folder", settings.file))
                .with_hint("set `file` to the plan's name, e.g. \"office-move.xml\", and grant its folder under grants.files"));
        }
        Ok(ProjectPlan { settings, endpoint: context.name().to_owned() })
    }

    fn describe(&self) -> Result<Vec<EntityDef>, Error> {
        Ok(vec![entity("tasks", TASK_FIELDS, true), entity("resources", RESOURCE_FIELDS, false)])
    }

    fn read(&mut self, entity: &str, cursor: Option<String>, limit: u32) -> Result<ReadBatch, Error> {
        let plan = self.load()?;
        let records = self.records(entity, &plan)?;
        let start: usize = cursor.as_deref().map(str::parse).transpose().map_err(|_| Error::new("bad-cursor", "the plan's read position is not a number"))?.unwrap_or(0);
        let end = (start + limit.max(1) as usize).min(records.len());
        let has_more = end < records.len();
        Ok(ReadBatch { records: records.into_iter().skip(start).take(end.saturating_sub(start)).collect(), cursor: Some(end.to_string()), has_more })
    }

    fn fetch(&mut self, entity: &str, ids: Vec<String>) -> Result<Vec<Record>, Error> {
        let plan = self.load()?;
        Ok(self.records(entity, &plan)?.into_iter().filter(|r| ids.contains(&r.id)).collect())
    }

    /// The plan must be there and readable; resources are never written.
    fn probe(&mut self, needs: &[EntityNeed]) -> Result<Vec<Problem>, Error> {
        let plan = self.load()?;
        plan.task_records(&self.settings)?;
        let mut problems = Vec::new();
        for need in needs {
            match (need.entity.as_str(), need.write) {
                ("tasks", _) | ("resources", false) => {}
                ("resources", true) => problems.push(
                    Error::new("read-only", "a pipeline writes to the plan's resources, which synchronisation never does")
                        .with_hint("let the pipeline flow resources only from the plan")
                        .into_problem(),
                ),
                (other, _) => problems.push(unknown(other).into_problem()),
            }
        }
        Ok(problems)
    }

    fn write(&mut self, entity: &str, changes: Vec<Change>) -> Result<Vec<Outcome>, Error> {
        if entity != "tasks" {
            return Err(match entity {
                "resources" => Error::new("read-only", "the plan's resources are not written by synchronisation")
                    .with_hint("keep the resource sheet in the planning application; let the pipeline flow from the plan"),
                other => unknown(other),
            });
        }
        let _lock = guard::WriteLock::acquire(&self.path())
            .map_err(|e| match e.problem().code.as_str() {
                "io" => Error::new("io", format!("cannot write the plan `{}`: {}", self.settings.file, e.problem().message))
                    .with_hint(self.writable_hint()),
                _ => e,
            })?;
        let plan = self.load()?;
        let current: std::collections::HashMap<String, Record> = plan.task_records(&self.settings)?.into_iter().map(|r| (r.id.clone(), r)).collect();
        let mut edits = xml::Edits::default();
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(changes.len());
        let mut creates: Vec<usize> = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            let outcome = match (&change.kind, &change.target_id) {
                (ChangeKind::Delete, _) => Some(Outcome::Rejected(
                    Error::new("not-deleted", "synchronisation does not delete tasks from the plan")
                        .with_hint("delete the task in the planning application if it should go")
                        .into_problem(),
                )),
                (ChangeKind::Upsert, None) => {
                    creates.push(i);
                    None
                }
                (ChangeKind::Upsert, Some(id)) => match current.get(id) {
                    None => Some(Outcome::Rejected(
                        Error::new("not-found", format!("task {id} is no longer in the plan"))
                            .with_hint("it was deleted in the plan; the link is kept until the deletion is synced")
                            .into_problem(),
                    )),
                    Some(record) if change.expected_version.as_ref().is_some_and(|v| Some(v) != record.version.as_ref()) => {
                        Some(Outcome::Conflict(record.clone()))
                    }
                    Some(_) => {
                        let uid: i64 = id.parse().map_err(|_| Error::new("bad-id", format!("`{id}` is not a task UID")))?;
                        let mut task_edits = xml::Edits::default();
                        match plan.update_task(&self.settings, uid, &change.fields, &mut task_edits) {
                            Ok(()) => {
                                edits.extend(task_edits);
                                Some(Outcome::Applied(Applied { id: id.clone(), version: None }))
                            }
                            Err(error) => Some(Outcome::Rejected(error.into_problem())),
                        }
                    }
                },
            };
            outcomes.push(outcome);
        }
        let new_tasks: Vec<&[Field]> = creates.iter().map(|i| changes[*i].fields.as_slice()).collect();
        let created = plan.create_tasks(&self.settings, &new_tasks, guard::high_water(&self.path()), &mut edits)?;
        let highest_created = created.iter().filter_map(|r| r.as_ref().ok()).copied().max();
        for (i, result) in creates.iter().zip(created) {
            outcomes[*i] = Some(match result {
                Ok(uid) => Outcome::Applied(Applied { id: uid.to_string(), version: None }),
                Err(error) => Outcome::Rejected(error.into_problem()),
            });
        }
        if !edits.is_empty() {
            let edited = Plan::parse(edits.apply(&plan.text))?;
            // The tasks as the next read will see them (renumbering IDs
            // changes no field a record carries).
            let written: std::collections::HashMap<String, Record> = edited.task_records(&self.settings)?.into_iter().map(|r| (r.id.clone(), r)).collect();
            let renumbered = edited.renumber();
            self.save(&plan.text, &if renumbered.is_empty() { edited.text.clone() } else { renumbered.apply(&edited.text) })?;
            if let Some(uid) = highest_created {
                guard::raise_high_water(&self.path(), uid);
            }
            for (change, outcome) in changes.iter().zip(outcomes.iter_mut()) {
                if let Some(Outcome::Applied(applied)) = outcome {
                    let Some(task) = written.get(&applied.id) else { continue };
                    applied.version = task.version.clone();
                    *outcome = Some(kept_or_rejected(change, task, applied.clone()));
                }
            }
        }
        Ok(outcomes.into_iter().map(|o| o.expect("every change has an outcome")).collect())
    }
}

export_connector!(ProjectPlan);
