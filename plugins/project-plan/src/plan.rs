//! A project plan in Microsoft Project XML (MSPDI): its tasks, resources and
//! assignments read into records, and changes turned into edits of the file's
//! text (see `xml`), so that whatever synchronisation does not touch stays as
//! the planning application wrote it.

use std::collections::{BTreeMap, HashMap};

use synchost_plugin_sdk::prelude::*;

use crate::settings::Settings;
use crate::xml::{self, Edits, Element};

/// The order of a `<Task>`'s children in the MSPDI schema (an `xsd:sequence`):
/// an element this connector adds goes where readers that check it expect it.
pub const TASK_ORDER: &[&str] = &[
    "UID", "GUID", "ID", "Name", "Active", "Manual", "Type", "IsNull", "CreateDate", "Contact", "WBS", "WBSLevel",
    "OutlineNumber", "OutlineLevel", "Priority", "Start", "Finish", "Duration", "ManualStart", "ManualFinish",
    "ManualDuration", "DurationFormat", "Work", "Stop", "Resume", "ResumeValid", "EffortDriven", "Recurring",
    "OverAllocated", "Estimated", "Milestone", "Summary", "DisplayAsSummary", "Critical", "IsSubproject",
    "IsSubprojectReadOnly", "SubprojectName", "ExternalTask", "ExternalTaskProject", "EarlyStart", "EarlyFinish",
    "LateStart", "LateFinish", "StartVariance", "FinishVariance", "WorkVariance", "FreeSlack", "TotalSlack",
    "StartSlack", "FinishSlack", "FixedCost", "FixedCostAccrual", "PercentComplete", "PercentWorkComplete", "Cost",
    "OvertimeCost", "OvertimeWork", "ActualStart", "ActualFinish", "ActualDuration", "ActualCost",
    "ActualOvertimeCost", "ActualWork", "ActualOvertimeWork", "RegularWork", "RemainingDuration", "RemainingCost",
    "RemainingWork", "RemainingOvertimeCost", "RemainingOvertimeWork", "ACWP", "CV", "ConstraintType",
    "CalendarUID", "ConstraintDate", "Deadline", "LevelAssignments", "LevelingCanSplit", "LevelingDelay",
    "LevelingDelayFormat", "PreLeveledStart", "PreLeveledFinish", "Hyperlink", "HyperlinkAddress",
    "HyperlinkSubAddress", "IgnoreResourceCalendar", "Notes", "HideBar", "Rollup", "BCWS", "BCWP",
    "PhysicalPercentComplete", "EarnedValueMethod", "PredecessorLink", "ActualWorkProtected",
    "ActualOvertimeWorkProtected", "ExtendedAttribute", "Baseline", "OutlineCode", "IsPublished",
    "StatusManager", "CommitmentStart", "CommitmentFinish", "CommitmentType", "TimephasedData",
];

const ASSIGNMENT_ORDER: &[&str] = &["UID", "GUID", "TaskUID", "ResourceUID", "PercentWorkComplete", "ActualCost", "Units", "Work"];

/// Task fields, with their type and whether synchronisation may write them.
pub const TASK_FIELDS: &[(&str, FieldType, bool)] = &[
    ("id", FieldType::Integer, false),
    ("name", FieldType::Text, true),
    ("wbs", FieldType::Text, false),
    ("outline_number", FieldType::Text, false),
    ("outline_level", FieldType::Integer, false),
    ("parent_id", FieldType::Integer, true),
    ("summary", FieldType::Boolean, false),
    ("start", FieldType::Date, true),
    ("finish", FieldType::Date, true),
    ("duration", FieldType::Float, false),
    ("work", FieldType::Float, true),
    ("remaining_work", FieldType::Float, true),
    ("actual_work", FieldType::Float, true),
    ("percent_complete", FieldType::Integer, true),
    ("resource_id", FieldType::Integer, true),
    ("resource_name", FieldType::Text, false),
    ("assignments", FieldType::Integer, false),
    ("predecessors", FieldType::Text, false),
    // The predecessors not flagged for publishing ("UID name", comma-separated):
    // a published task's dependencies are published with it.
    ("unpublished_predecessors", FieldType::Text, false),
    ("publish", FieldType::Boolean, true),
    ("work_item_type", FieldType::Text, true),
    ("notes", FieldType::Text, true),
];

pub const RESOURCE_FIELDS: &[(&str, FieldType, bool)] = &[
    ("id", FieldType::Integer, false),
    ("name", FieldType::Text, false),
    ("email", FieldType::Text, false),
    ("initials", FieldType::Text, false),
];

/// Field ids MS Project gives its task custom fields (as MSPDI files and MPXJ know them).
fn custom_field_id(name: &str) -> Option<u32> {
    let (kind, number) = name.find(|c: char| c.is_ascii_digit()).map(|i| name.split_at(i))?;
    let number: u32 = number.parse().ok()?;
    let id = match kind.to_ascii_lowercase().as_str() {
        // Only the ids checked against MS Project's own files; a plan using
        // another field defines it (with its id) in <ExtendedAttributes>.
        "text" if (1..=3).contains(&number) => 188_743_731 + (number - 1) * 3,
        "flag" if (1..=3).contains(&number) => 188_743_752 + (number - 1),
        _ => return None,
    };
    Some(id)
}

/// One parsed plan file.
pub struct Plan {
    pub text: String,
    pub root: Element,
}

/// A task's place in the file and its relations.
struct TaskView<'p> {
    element: &'p Element,
    uid: i64,
    level: i64,
    parent: Option<i64>,
}

impl Plan {
    pub fn parse(text: String) -> Result<Plan, Error> {
        let root = xml::parse(&text)?;
        if root.name != "Project" {
            return Err(Error::new("bad-file", format!("the plan file's root element is <{}>, not <Project>", root.name))
                .with_hint("point the endpoint's `file` at a Microsoft Project XML file (File > Save As > XML in MS Project, or ProjectLibre's XML export)"));
        }
        Ok(Plan { text, root })
    }

    fn section(&self, name: &str) -> Option<&Element> {
        self.root.child(name)
    }

    /// Tasks in file order, without the project summary (outline level 0).
    fn tasks(&self) -> Vec<TaskView<'_>> {
        let mut parents: Vec<(i64, i64)> = Vec::new(); // (level, uid) of the open outline path
        let mut tasks = Vec::new();
        for element in self.section("Tasks").into_iter().flat_map(|t| t.children_named("Task")) {
            let Some(uid) = element.text_of("UID").and_then(|v| v.trim().parse::<i64>().ok()) else { continue };
            let level = element.text_of("OutlineLevel").and_then(|v| v.trim().parse().ok()).unwrap_or(1);
            if level == 0 || element.text_of("IsNull") == Some("1") {
                continue;
            }
            while parents.last().is_some_and(|(l, _)| *l >= level) {
                parents.pop();
            }
            let parent = parents.last().map(|(_, uid)| *uid);
            parents.push((level, uid));
            tasks.push(TaskView { element, uid, level, parent });
        }
        tasks
    }

    /// The task custom field a setting names: its id, from the plan's
    /// definitions (by alias or name) or from MS Project's numbering.
    fn custom_field(&self, wanted: &str) -> Option<String> {
        let defined = self.section("ExtendedAttributes").into_iter().flat_map(|e| e.children_named("ExtendedAttribute")).find(|d| {
            [d.text_of("Alias"), d.text_of("FieldName")].into_iter().flatten().any(|n| n.trim().eq_ignore_ascii_case(wanted.trim()))
        });
        match defined.and_then(|d| d.text_of("FieldID")) {
            Some(id) => Some(id.trim().to_owned()),
            None => custom_field_id(wanted).map(|id| id.to_string()),
        }
    }

    fn resources(&self) -> BTreeMap<i64, &Element> {
        self.section("Resources")
            .into_iter()
            .flat_map(|r| r.children_named("Resource"))
            .filter_map(|r| Some((r.text_of("UID")?.trim().parse().ok()?, r)))
            .filter(|(uid, r)| *uid > 0 && r.text_of("Name").is_some_and(|n| !n.trim().is_empty()))
            .collect()
    }

    /// Assignments of resources to tasks, by task UID (placeholders for
    /// "no resource" left out).
    fn assignments(&self) -> HashMap<i64, Vec<&Element>> {
        let mut by_task: HashMap<i64, Vec<&Element>> = HashMap::new();
        for assignment in self.section("Assignments").into_iter().flat_map(|a| a.children_named("Assignment")) {
            let task = assignment.text_of("TaskUID").and_then(|v| v.trim().parse::<i64>().ok());
            let resource = assignment.text_of("ResourceUID").and_then(|v| v.trim().parse::<i64>().ok());
            if let (Some(task), Some(resource)) = (task, resource) {
                if resource >= 0 {
                    by_task.entry(task).or_default().push(assignment);
                }
            }
        }
        by_task
    }

    pub fn task_records(&self, settings: &Settings) -> Result<Vec<Record>, Error> {
        let publish = self.custom_field(&settings.publish_field);
        let item_type = self.custom_field(&settings.type_field);
        let resources = self.resources();
        let assignments = self.assignments();
        let tasks = self.tasks();
        let mut records = Vec::with_capacity(tasks.len());
        for (i, task) in tasks.iter().enumerate() {
            let e = task.element;
            let summary = e.text_of("Summary").map(|v| v.trim() == "1").unwrap_or_else(|| tasks.get(i + 1).is_some_and(|n| n.level > task.level));
            let assigned = assignments.get(&task.uid).map(Vec::as_slice).unwrap_or_default();
            let resource_id = match assigned {
                [one] => one.text_of("ResourceUID").and_then(|v| v.trim().parse::<i64>().ok()),
                _ => None,
            };
            let predecessors: Vec<&str> = e.children_named("PredecessorLink").filter_map(|p| p.text_of("PredecessorUID")).map(str::trim).collect();
            let mut record = Record::new(task.uid.to_string())
                .with("id", task.uid)
                .with("name", text(e.text_of("Name")))
                .with("wbs", text(e.text_of("WBS")))
                .with("outline_number", text(e.text_of("OutlineNumber")))
                .with("outline_level", task.level)
                .with("parent_id", task.parent.map(Value::Integer).unwrap_or(Value::Null))
                .with("summary", summary)
                .with("start", date(e.text_of("Start")))
                .with("finish", date(e.text_of("Finish")))
                .with("duration", hours(e.text_of("Duration"), "Duration")?)
                .with("work", hours(e.text_of("Work"), "Work")?)
                .with("remaining_work", hours(e.text_of("RemainingWork"), "RemainingWork")?)
                .with("actual_work", hours(e.text_of("ActualWork"), "ActualWork")?)
                .with("percent_complete", e.text_of("PercentComplete").and_then(|v| v.trim().parse::<i64>().ok()).map(Value::Integer).unwrap_or(Value::Null))
                .with("resource_id", resource_id.map(Value::Integer).unwrap_or(Value::Null))
                .with("resource_name", resource_id.and_then(|r| resources.get(&r)).and_then(|r| r.text_of("Name")).map(|n| Value::Text(n.to_owned())).unwrap_or(Value::Null))
                .with("assignments", assigned.len() as i64)
                .with("predecessors", if predecessors.is_empty() { Value::Null } else { Value::Text(predecessors.join(",")) })
                .with("notes", text(e.text_of("Notes")));
            let custom = |field: &Option<String>| field.as_ref().and_then(|id| task_custom_value(e, id));
            record.set("publish", Value::Boolean(custom(&publish).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("yes"))));
            record.set("work_item_type", custom(&item_type).filter(|v| !v.is_empty()).map(Value::Text).unwrap_or(Value::Null));
            records.push(record);
        }
        // Dependencies need every task's flag: a second pass.
        let flagged: std::collections::HashMap<String, (bool, String)> = records
            .iter()
            .map(|r| (r.id.clone(), (r.get("publish") == Some(&Value::Boolean(true)), r.get("name").and_then(Value::as_str).unwrap_or_default().to_owned())))
            .collect();
        for record in &mut records {
            let unpublished: Vec<String> = match record.get("predecessors") {
                Some(Value::Text(list)) => list
                    .split(',')
                    .filter_map(|uid| match flagged.get(uid) {
                        Some((false, name)) => Some(format!("{uid} {name}")),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            record.set("unpublished_predecessors", if unpublished.is_empty() { Value::Null } else { Value::Text(unpublished.join(", ")) });
            record.version = Some(version(&record.fields));
        }
        Ok(records)
    }

    pub fn resource_records(&self) -> Vec<Record> {
        self.resources()
            .into_iter()
            .map(|(uid, r)| {
                let mut record = Record::new(uid.to_string())
                    .with("id", uid)
                    .with("name", text(r.text_of("Name")))
                    .with("email", text(r.text_of("EmailAddress")))
                    .with("initials", text(r.text_of("Initials")));
                record.version = Some(version(&record.fields));
                record
            })
            .collect()
    }

    /// Edits that update one task's fields.
    pub fn update_task(&self, settings: &Settings, uid: i64, fields: &[Field], edits: &mut Edits) -> Result<(), Error> {
        let tasks = self.tasks();
        let task = tasks.iter().find(|t| t.uid == uid).ok_or_else(|| {
            Error::new("not-found", format!("task {uid} is no longer in the plan")).with_hint("it was deleted in the plan; the link is kept until the deletion is synced")
        })?;
        for field in fields {
            match field.name.as_str() {
                "parent_id" => {
                    if field.value.as_integer() != task.parent {
                        return Err(Error::new(
                            "hierarchy-locked",
                            format!("task {uid} would move under another parent ({} -> {}): the hierarchy of linked items cannot change", opt(task.parent), opt(field.value.as_integer())),
                        )
                        .with_hint("move the item back under its former parent, or unlink both sides and publish again"));
                    }
                }
                "resource_id" => self.assign(uid, field.value.as_integer(), edits)?,
                name => self.set_task_field(settings, task.element, name, &field.value, edits)?,
            }
        }
        Ok(())
    }

    /// Edits for one plain task field (`name`, dates, work, custom fields ...).
    fn set_task_field(&self, settings: &Settings, task: &Element, name: &str, value: &Value, edits: &mut Edits) -> Result<(), Error> {
        let text = &self.text;
        match name {
            "name" => xml::set_child(text, task, "Name", &value.to_display_string(), TASK_ORDER, edits),
            "notes" => xml::set_child(text, task, "Notes", &value.to_display_string(), TASK_ORDER, edits),
            "start" | "finish" => {
                let element = if name == "start" { "Start" } else { "Finish" };
                let day = value.as_str().map(|d| d.get(..10).unwrap_or(d).to_owned());
                let Some(day) = day else {
                    return Err(Error::new("invalid", format!("a task's {name} cannot be empty in the plan")).with_hint(format!("give the item a {name} date")));
                };
                let time = task.text_of(element).and_then(|v| v.get(10..)).filter(|t| t.starts_with('T')).unwrap_or(if name == "start" { "T08:00:00" } else { "T17:00:00" });
                xml::set_child(text, task, element, &format!("{day}{time}"), TASK_ORDER, edits);
            }
            "work" | "remaining_work" | "actual_work" => {
                let element = match name {
                    "work" => "Work",
                    "remaining_work" => "RemainingWork",
                    _ => "ActualWork",
                };
                let hours = value.as_f64().unwrap_or(0.0);
                if hours < 0.0 {
                    return Err(Error::new("invalid", format!("{name} {hours} is negative")).with_hint("enter the hours as zero or more"));
                }
                xml::set_child(text, task, element, &duration(hours), TASK_ORDER, edits);
            }
            "percent_complete" => {
                let percent = value.as_integer().unwrap_or(0);
                if !(0..=100).contains(&percent) {
                    return Err(Error::new("invalid", format!("percent_complete {percent} is outside 0..100")).with_hint("enter a percentage from 0 to 100"));
                }
                xml::set_child(text, task, "PercentComplete", &percent.to_string(), TASK_ORDER, edits);
            }
            "publish" | "work_item_type" => {
                let setting = if name == "publish" { &settings.publish_field } else { &settings.type_field };
                let id = self.custom_field(setting).ok_or_else(|| {
                    Error::new("no-custom-field", format!("the plan has no task custom field `{setting}`")).with_hint(format!(
                        "define it in the plan (MS Project: Custom Fields, a {} field aliased `{setting}`), or set the endpoint's {} to its name, e.g. {}",
                        if name == "publish" { "flag" } else { "text" },
                        if name == "publish" { "publish_field" } else { "type_field" },
                        if name == "publish" { "Flag1" } else { "Text1" }
                    ))
                })?;
                let value = match (name, value) {
                    ("publish", v) => if truthy(v) { "1".to_owned() } else { "0".to_owned() },
                    (_, v) => v.to_display_string(),
                };
                set_task_custom(text, task, &id, &value, edits);
            }
            other => {
                return Err(Error::new("read-only", format!("the plan's task field `{other}` is not written by synchronisation"))
                    .with_hint("let the pipeline flow this field only from the plan"));
            }
        }
        Ok(())
    }

    /// Makes `resource` the task's one assigned resource.
    fn assign(&self, task: i64, resource: Option<i64>, edits: &mut Edits) -> Result<(), Error> {
        let assignments = self.assignments();
        let current = assignments.get(&task).map(Vec::as_slice).unwrap_or_default();
        if let Some(resource) = resource.filter(|r| !self.resources().contains_key(r)) {
            return Err(Error::new("unknown-resource", format!("resource {resource} is not in the plan's resource sheet"))
                .with_hint("add the person to the plan's resources, or map the assignee to an existing resource"));
        }
        match (current, resource) {
            ([], None) => Ok(()),
            ([one], None) => {
                xml::remove(&self.text, one, edits);
                Ok(())
            }
            ([one], Some(resource)) => {
                xml::set_child(&self.text, one, "ResourceUID", &resource.to_string(), ASSIGNMENT_ORDER, edits);
                Ok(())
            }
            ([], Some(resource)) => {
                let Some(section) = self.section("Assignments") else {
                    return Err(Error::new("no-assignments", "the plan has no <Assignments> section to add an assignment to")
                        .with_hint("assign the resource in the planning application once; later changes are synced"));
                };
                let uid = section.children_named("Assignment").filter_map(|a| a.text_of("UID")?.trim().parse::<i64>().ok()).max().unwrap_or(0) + 1;
                let indent = section.child_indent(&self.text).to_owned();
                let inner = format!("{indent}  ");
                let element = format!(
                    "<Assignment>{inner}<UID>{uid}</UID>{inner}<TaskUID>{task}</TaskUID>{inner}<ResourceUID>{resource}</ResourceUID>{inner}<Units>1</Units>{indent}</Assignment>"
                );
                xml::insert_child(&self.text, section, "Assignment", element, &["Assignment"], edits);
                Ok(())
            }
            (several, _) => Err(Error::new(
                "several-assignments",
                format!("task {task} has {} assignments; only a task with one active assignment can take an assignee", several.len()),
            )
            .with_hint("keep one assignment on the task in the plan")),
        }
    }

    /// Edits that add new tasks, each as the last child of its parent (or at
    /// the end of the plan), with new UIDs above every task of the plan and
    /// above `given` (the highest UID ever given, deleted tasks' included).
    /// Returns their UIDs.
    pub fn create_tasks(&self, settings: &Settings, new: &[&[Field]], given: i64, edits: &mut Edits) -> Result<Vec<Result<i64, Error>>, Error> {
        let tasks = self.tasks();
        let Some(section) = self.section("Tasks") else {
            return Err(Error::new("bad-file", "the plan has no <Tasks> section").with_hint("save the plan again from the planning application"));
        };
        let mut next_uid = tasks.iter().map(|t| t.uid).max().unwrap_or(0).max(given) + 1;
        let mut added_children: HashMap<Option<i64>, usize> = HashMap::new();
        let indent = section.child_indent(&self.text).to_owned();
        let inner = format!("{indent}  ");
        let mut results = Vec::with_capacity(new.len());
        for fields in new {
            let get = |name: &str| fields.iter().find(|f| f.name == name).map(|f| &f.value);
            let parent = get("parent_id").and_then(Value::as_integer);
            let parent_view = match parent {
                Some(p) => match tasks.iter().position(|t| t.uid == p) {
                    Some(i) => Some(i),
                    None => {
                        results.push(Err(Error::new("unknown-parent", format!("parent task {p} is not in the plan"))
                            .with_hint("publish or approve the parent first; the child follows")));
                        continue;
                    }
                },
                None => None,
            };
            let name = get("name").map(Value::to_display_string).unwrap_or_default();
            if name.trim().is_empty() {
                results.push(Err(Error::new("invalid", "a new task needs a name").with_hint("give the item a title")));
                continue;
            }
            // After the parent's last descendant, or at the end of the plan.
            let (level, at, outline) = match parent_view {
                Some(i) => {
                    let parent = &tasks[i];
                    let end = tasks[i + 1..].iter().take_while(|t| t.level > parent.level).last().map(|t| t.element.span.end).unwrap_or(parent.element.span.end);
                    let siblings = tasks[i + 1..].iter().take_while(|t| t.level > parent.level).filter(|t| t.level == parent.level + 1).count();
                    let added = added_children.entry(parent_view.map(|i| tasks[i].uid)).or_default();
                    *added += 1;
                    let number = format!("{}.{}", parent.element.text_of("OutlineNumber").unwrap_or("").trim(), siblings + *added);
                    if parent.element.text_of("Summary").is_some_and(|s| s.trim() == "0") {
                        xml::set_child(&self.text, parent.element, "Summary", "1", TASK_ORDER, edits);
                    }
                    (parent.level + 1, end, number)
                }
                None => {
                    let roots = tasks.iter().filter(|t| t.level == 1).count();
                    let added = added_children.entry(None).or_default();
                    *added += 1;
                    let end = section.children_named("Task").last().map(|t| t.span.end).unwrap_or(section.inner.start);
                    (1, end, (roots + *added).to_string())
                }
            };
            let uid = next_uid;
            next_uid += 1;
            let mut children: Vec<(&str, String)> = vec![
                ("UID", uid.to_string()),
                ("ID", uid.to_string()),
                ("Name", xml::escape(&name)),
                ("Active", "1".into()),
                ("WBS", outline.clone()),
                ("OutlineNumber", outline),
                ("OutlineLevel", level.to_string()),
            ];
            let day = |name: &str| get(name).and_then(|v| v.as_str()).map(|d| d.get(..10).unwrap_or(d).to_owned());
            if let Some(start) = day("start") {
                children.push(("Start", format!("{start}T08:00:00")));
            }
            if let Some(finish) = day("finish") {
                children.push(("Finish", format!("{finish}T17:00:00")));
            }
            for (field, element) in [("work", "Work"), ("actual_work", "ActualWork"), ("remaining_work", "RemainingWork")] {
                if let Some(h) = get(field).and_then(Value::as_f64) {
                    children.push((element, duration(h)));
                }
            }
            if let Some(p) = get("percent_complete").and_then(Value::as_integer) {
                children.push(("PercentComplete", p.clamp(0, 100).to_string()));
            }
            if let Some(notes) = get("notes").map(Value::to_display_string).filter(|n| !n.is_empty()) {
                children.push(("Notes", xml::escape(&notes)));
            }
            children.sort_by_key(|(n, _)| TASK_ORDER.iter().position(|o| o == n));
            let mut element = String::from("<Task>");
            for (n, v) in &children {
                element.push_str(&format!("{inner}<{n}>{v}</{n}>"));
            }
            for (field, setting) in [("publish", &settings.publish_field), ("work_item_type", &settings.type_field)] {
                let value = match (field, get(field)) {
                    ("publish", Some(v)) if truthy(v) => "1".to_owned(),
                    ("work_item_type", Some(v)) if !v.is_null() => xml::escape(&v.to_display_string()),
                    _ => continue,
                };
                if let Some(id) = self.custom_field(setting) {
                    element.push_str(&format!("{inner}<ExtendedAttribute><FieldID>{id}</FieldID><Value>{value}</Value></ExtendedAttribute>"));
                }
            }
            element.push_str(&format!("{indent}</Task>"));
            edits.insert(at, format!("{indent}{element}"));
            results.push(Ok(uid));
        }
        Ok(results)
    }

    /// Edits that number the tasks' `<ID>`s 1, 2, 3 ... in file order (IDs are
    /// row numbers; references between tasks use UIDs).
    pub fn renumber(&self) -> Edits {
        let mut edits = Edits::default();
        let mut next = 1;
        for task in self.section("Tasks").into_iter().flat_map(|t| t.children_named("Task")) {
            if task.text_of("OutlineLevel").is_some_and(|l| l.trim() == "0") {
                continue;
            }
            let id = next.to_string();
            if task.text_of("ID").map(str::trim) != Some(id.as_str()) {
                xml::set_child(&self.text, task, "ID", &id, TASK_ORDER, &mut edits);
            }
            next += 1;
        }
        edits
    }
}

fn task_custom_value(task: &Element, field_id: &str) -> Option<String> {
    task.children_named("ExtendedAttribute").find(|a| a.text_of("FieldID").map(str::trim) == Some(field_id)).and_then(|a| a.text_of("Value")).map(|v| v.trim().to_owned())
}

fn set_task_custom(text: &str, task: &Element, field_id: &str, value: &str, edits: &mut Edits) {
    match task.children_named("ExtendedAttribute").find(|a| a.text_of("FieldID").map(str::trim) == Some(field_id)) {
        Some(attribute) => xml::set_child(text, attribute, "Value", value, &["FieldID", "Value", "ValueGUID", "DurationFormat"], edits),
        None => {
            let element = format!("<ExtendedAttribute><FieldID>{field_id}</FieldID><Value>{}</Value></ExtendedAttribute>", xml::escape(value));
            xml::insert_child(text, task, "ExtendedAttribute", element, TASK_ORDER, edits);
        }
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Boolean(b) => *b,
        Value::Integer(i) => *i != 0,
        Value::Text(t) => matches!(t.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"),
        _ => false,
    }
}

fn opt(value: Option<i64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "top level".into())
}

fn text(value: Option<&str>) -> Value {
    match value {
        Some(v) if !v.is_empty() => Value::Text(v.to_owned()),
        _ => Value::Null,
    }
}

fn date(value: Option<&str>) -> Value {
    match value.map(str::trim) {
        Some(v) if v.len() >= 10 => Value::Date(v[..10].to_owned()),
        _ => Value::Null,
    }
}

/// Hours from an MSPDI duration (`PT8H0M0S`; days and weeks as 8 and 40 hours,
/// MS Project's defaults, should a file use them).
pub fn hours(value: Option<&str>, element: &str) -> Result<Value, Error> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(Value::Null) };
    let bad = || {
        Error::new("bad-file", format!("<{element}>{value}</{element}> is not a duration")).with_hint("write durations as PT8H0M0S, as MS Project does")
    };
    let rest = value.strip_prefix('P').ok_or_else(bad)?;
    let (date_part, time_part) = rest.split_once('T').unwrap_or((rest, ""));
    let mut total = 0.0;
    for (part, units) in [(date_part, &[('W', 40.0), ('D', 8.0)][..]), (time_part, &[('H', 1.0), ('M', 1.0 / 60.0), ('S', 1.0 / 3600.0)][..])] {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == '-' {
                number.push(c);
                continue;
            }
            let factor = units.iter().find(|(u, _)| *u == c).map(|(_, f)| *f).ok_or_else(bad)?;
            total += number.parse::<f64>().map_err(|_| bad())? * factor;
            number.clear();
        }
        if !number.is_empty() {
            return Err(bad());
        }
    }
    Ok(Value::Float((total * 1000.0).round() / 1000.0))
}

/// An MSPDI duration from hours.
pub fn duration(hours: f64) -> String {
    let seconds = (hours * 3600.0).round() as i64;
    format!("PT{}H{}M{}S", seconds / 3600, seconds % 3600 / 60, seconds % 60)
}

/// The fields of `asked` that the plan does not hold in `held` (the task as
/// the written file reads), each as (name, asked, held): a write is reported
/// as done only when the file says so. Pure.
pub fn not_kept(asked: &[Field], held: &Record) -> Vec<(String, Value, Value)> {
    let same = |name: &str, asked: &Value, held: &Value| -> bool {
        let blank = |v: &Value| matches!(v, Value::Null) || matches!(v, Value::Text(t) if t.trim().is_empty());
        if blank(asked) || blank(held) {
            // An empty number of hours is written as zero.
            return (blank(asked) && blank(held)) || (blank(asked) && held.as_f64() == Some(0.0));
        }
        match name {
            "publish" => truthy(asked) == truthy(held),
            "start" | "finish" => asked.to_display_string().get(..10) == held.to_display_string().get(..10),
            _ => match (asked.as_f64(), held.as_f64()) {
                // MSPDI keeps durations to the second.
                (Some(a), Some(b)) => (a - b).abs() < 0.001,
                _ => asked.to_display_string().trim() == held.to_display_string().trim(),
            },
        }
    };
    asked
        .iter()
        .filter(|f| TASK_FIELDS.iter().any(|(name, _, writable)| *name == f.name && *writable))
        .filter_map(|f| {
            let value = held.get(&f.name).cloned().unwrap_or(Value::Null);
            (!same(&f.name, &f.value, &value)).then(|| (f.name.clone(), f.value.clone(), value))
        })
        .collect()
}

/// A record's version: a digest of its values (a file has no change times).
pub fn version(fields: &[Field]) -> String {
    synchost_plugin_sdk::version::digest(fields, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_kept_only_when_the_file_holds_what_was_asked() {
        let held = Record::new("2").with("start", Value::Date("2026-11-05".into())).with("work", Value::Float(30.0)).with("resource_id", Value::Null).with("publish", true);
        let asked = |name: &str, value: Value| vec![Field { name: name.into(), value }];
        assert!(not_kept(&asked("start", Value::Timestamp("2026-11-05T08:00:00".into())), &held).is_empty());
        assert!(not_kept(&asked("work", Value::Decimal("30.0000".into())), &held).is_empty());
        assert!(not_kept(&asked("publish", Value::Integer(1)), &held).is_empty());
        assert_eq!(not_kept(&asked("resource_id", Value::Integer(2)), &held), vec![("resource_id".to_owned(), Value::Integer(2), Value::Null)]);
        assert_eq!(not_kept(&asked("work", Value::Float(24.0)), &held).len(), 1);
        // Fields the plan never takes are rejected before, not compared here.
        assert!(not_kept(&asked("wbs", Value::Text("9".into())), &held).is_empty());
    }

    #[test]
    fn durations_read_and_write() {
        assert_eq!(hours(Some("PT8H0M0S"), "Work").unwrap(), Value::Float(8.0));
        assert_eq!(hours(Some("PT1H30M0S"), "Work").unwrap(), Value::Float(1.5));
        assert_eq!(hours(Some("P1DT2H"), "Work").unwrap(), Value::Float(10.0));
        assert!(hours(Some("8 hours"), "Work").is_err());
        assert_eq!(duration(1.5), "PT1H30M0S");
        assert_eq!(duration(0.0), "PT0H0M0S");
    }

    #[test]
    fn custom_field_ids_follow_ms_projects_numbering() {
        assert_eq!(custom_field_id("Text1"), Some(188_743_731));
        assert_eq!(custom_field_id("Text2"), Some(188_743_734));
        assert_eq!(custom_field_id("Flag1"), Some(188_743_752));
        assert_eq!(custom_field_id("Cost1"), None);
    }
}
