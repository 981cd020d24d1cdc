//! The Redmine resources this connector exposes, their fields, and the
//! conversion between Redmine's JSON and flat records.
//!
//! References Redmine nests (`"project": {"id": 2, "name": ...}`) become
//! `project_id` integers, so that pipelines can translate them through links.
//! Issue custom fields named in the settings become issue fields of the same
//! name (Redmine keeps their values as text; they are typed here).

use serde_json::{json, Map, Value as Json};
use synchost_plugin_sdk::prelude::*;

use crate::settings::{OriginField, OriginFieldIds};

/// A Redmine resource.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Kind {
    Projects,
    Users,
    /// The users who are members of the scoped project.
    Members,
    Activities,
    Issues,
    TimeEntries,
}

/// How a field is read from and written to Redmine's JSON.
struct Spec {
    name: &'static str,
    kind: FieldType,
    /// Where it sits in Redmine's JSON: a key, or `key.id` for a nested reference.
    path: &'static str,
    read_only: bool,
}

const fn field(name: &'static str, kind: FieldType, path: &'static str, read_only: bool) -> Spec {
    Spec { name, kind, path, read_only }
}

use FieldType::{Boolean, Date, Float, Integer, Text, Timestamp};

/// An issue custom field the endpoint exposes: its Redmine name is the field's name.
#[derive(Clone, Debug)]
pub struct CustomField {
    pub name: String,
    pub kind: FieldType,
}

impl CustomField {
    /// The value of this field in an issue's JSON (`custom_fields: [{id, name, value}]`);
    /// null when the issue has none (the field is not enabled for its tracker or project).
    fn read(&self, issue: &Json) -> Value {
        let entry = issue.get("custom_fields").and_then(Json::as_array).and_then(|all| all.iter().find(|cf| cf["name"] == self.name.as_str()));
        let Some(value) = entry.map(|cf| &cf["value"]) else { return Value::Null };
        let Some(text) = value.as_str() else { return to_value(Some(value), self.kind) };
        if text.is_empty() {
            return Value::Null;
        }
        match self.kind {
            Integer => text.parse().map(Value::Integer).unwrap_or_else(|_| Value::Text(text.into())),
            Float => text.parse().map(Value::Float).unwrap_or_else(|_| Value::Text(text.into())),
            Boolean => Value::Boolean(text == "1"),
            Date => Value::Date(text.into()),
            _ => Value::Text(text.into()),
        }
    }

    /// The text Redmine takes for a value of this field.
    fn text(value: &Value) -> Json {
        match value {
            Value::Null => json!(""),
            Value::Boolean(b) => json!(if *b { "1" } else { "0" }),
            other => match from_value(other) {
                Json::String(s) => Json::String(s),
                number => Json::String(number.to_string()),
            },
        }
    }
}

const PROJECTS: &[Spec] = &[
    field("id", Integer, "id", true),
    field("name", Text, "name", false),
    field("identifier", Text, "identifier", false),
    field("description", Text, "description", false),
    field("homepage", Text, "homepage", false),
    field("is_public", Boolean, "is_public", false),
    field("parent_id", Integer, "parent.id", false),
    field("status", Integer, "status", true),
    field("created_on", Timestamp, "created_on", true),
    field("updated_on", Timestamp, "updated_on", true),
];

const USERS: &[Spec] = &[
    field("id", Integer, "id", true),
    field("login", Text, "login", true),
    field("firstname", Text, "firstname", true),
    field("lastname", Text, "lastname", true),
    field("mail", Text, "mail", true),
    field("admin", Boolean, "admin", true),
    field("status", Integer, "status", true),
    field("created_on", Timestamp, "created_on", true),
    field("updated_on", Timestamp, "updated_on", true),
];

const ACTIVITIES: &[Spec] = &[
    field("id", Integer, "id", true),
    field("name", Text, "name", true),
    field("is_default", Boolean, "is_default", true),
    field("active", Boolean, "active", true),
];

const ISSUES: &[Spec] = &[
    field("id", Integer, "id", true),
    field("project_id", Integer, "project.id", false),
    field("tracker_id", Integer, "tracker.id", false),
    field("status_id", Integer, "status.id", false),
    field("priority_id", Integer, "priority.id", false),
    field("author_id", Integer, "author.id", true),
    field("assigned_to_id", Integer, "assigned_to.id", false),
    field("parent_issue_id", Integer, "parent.id", false),
    field("subject", Text, "subject", false),
    field("description", Text, "description", false),
    field("start_date", Date, "start_date", false),
    field("due_date", Date, "due_date", false),
    field("done_ratio", Integer, "done_ratio", false),
    field("estimated_hours", Float, "estimated_hours", false),
    // Redmine's sums: with the subtasks' estimates, the time spent on the
    // issue, and with its subtasks' (logging time does not change an
    // issue's `updated_on`: see `spent_time_check_s`).
    field("total_estimated_hours", Float, "total_estimated_hours", true),
    field("spent_hours", Float, "spent_hours", true),
    field("total_spent_hours", Float, "total_spent_hours", true),
    field("is_private", Boolean, "is_private", false),
    field("created_on", Timestamp, "created_on", true),
    field("updated_on", Timestamp, "updated_on", true),
    field("closed_on", Timestamp, "closed_on", true),
    // Written only: a journal entry on the issue (Redmine returns none in the issue).
    field("notes", Text, "notes", false),
];

const TIME_ENTRIES: &[Spec] = &[
    field("id", Integer, "id", true),
    field("project_id", Integer, "project.id", false),
    field("issue_id", Integer, "issue.id", false),
    field("user_id", Integer, "user.id", false),
    field("activity_id", Integer, "activity.id", false),
    field("hours", Float, "hours", false),
    field("spent_on", Date, "spent_on", false),
    field("comments", Text, "comments", false),
    field("created_on", Timestamp, "created_on", true),
    field("updated_on", Timestamp, "updated_on", true),
];

impl Kind {
    pub const ALL: [Kind; 6] = [Kind::Projects, Kind::Users, Kind::Members, Kind::Activities, Kind::Issues, Kind::TimeEntries];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Projects => "projects",
            Kind::Users => "users",
            Kind::Members => "members",
            Kind::Activities => "activities",
            Kind::Issues => "issues",
            Kind::TimeEntries => "time_entries",
        }
    }

    pub fn parse(entity: &str) -> Result<Kind, Error> {
        Kind::ALL.into_iter().find(|k| k.name() == entity).ok_or_else(|| {
            Error::new("unknown-entity", format!("redmine has no entity `{entity}`"))
                .with_hint("use one of: projects, users, members, activities, issues, time_entries")
        })
    }

    fn specs(self) -> &'static [Spec] {
        match self {
            Kind::Projects => PROJECTS,
            Kind::Users | Kind::Members => USERS,
            Kind::Activities => ACTIVITIES,
            Kind::Issues => ISSUES,
            Kind::TimeEntries => TIME_ENTRIES,
        }
    }

    /// The JSON key of one record (`time_entry`) and of a list (`time_entries`).
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Projects => "project",
            Kind::Users | Kind::Members => "user",
            Kind::Activities => "time_entry_activity",
            Kind::Issues => "issue",
            Kind::TimeEntries => "time_entry",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Activities => "time_entry_activities",
            Kind::Members => "users",
            other => other.name(),
        }
    }

    /// Issues and time entries have a change feed (by `updated_on`); the master
    /// data is read whole every run.
    pub fn change_feed(self) -> bool {
        matches!(self, Kind::Issues | Kind::TimeEntries)
    }

    pub fn writable(self) -> bool {
        matches!(self, Kind::Projects | Kind::Issues | Kind::TimeEntries)
    }

    /// Custom fields belong to issues only.
    fn custom(self, custom: &[CustomField]) -> &[CustomField] {
        if self == Kind::Issues { custom } else { &[] }
    }

    /// Whether `name` is one of the resource's own fields.
    pub fn has_field(self, name: &str) -> bool {
        self.specs().iter().any(|s| s.name == name)
    }

    /// Issues and time entries can keep the origin of a record synchost
    /// made in a custom field (the `origin_field` setting) and be searched by it.
    pub fn keeps_origin(self) -> bool {
        matches!(self, Kind::Issues | Kind::TimeEntries)
    }

    /// The custom field type Redmine gives this resource's custom fields.
    pub fn customized_type(self) -> &'static str {
        match self {
            Kind::Issues => "issue",
            Kind::TimeEntries => "time_entry",
            Kind::Projects => "project",
            Kind::Users | Kind::Members => "user",
            Kind::Activities => "time_entry_activity",
        }
    }

    /// The origin field's id for this kind, from ids given in the settings.
    pub fn origin_id(ids: &OriginFieldIds, kind: Kind) -> Option<i64> {
        match kind {
            Kind::TimeEntries => ids.time_entries,
            Kind::Issues => ids.issues,
            _ => None,
        }
    }

    /// `origin_field`: the settings' custom field for origins, if any.
    pub fn def(self, custom: &[CustomField], origin_field: Option<&OriginField>) -> EntityDef {
        let keeps_origin = self.writable()
            && self.keeps_origin()
            && match origin_field {
                None => false,
                Some(OriginField::Name(_)) => true,
                Some(OriginField::Ids(ids)) => Kind::origin_id(ids, self).is_some(),
            };
        EntityDef {
            name: self.name().into(),
            key: "id".into(),
            fields: self
                .specs()
                .iter()
                .map(|s| FieldDef { name: s.name.into(), type_: s.kind, nullable: !matches!(s.name, "id"), read_only: s.read_only })
                .chain(self.custom(custom).iter().map(|c| FieldDef { name: c.name.clone(), type_: c.kind, nullable: true, read_only: false }))
                .collect(),
            change_feed: self.change_feed(),
            soft_delete: false,
            writable: self.writable(),
            finds_by_origin: keeps_origin,
        }
    }

    /// A record from Redmine's JSON for one resource.
    pub fn to_record(self, json: &Json, custom: &[CustomField]) -> Result<Record, Error> {
        let id = json.get("id").and_then(Json::as_i64).ok_or_else(|| {
            Error::new("bad-response", format!("a {} from Redmine has no id: {}", self.singular(), json))
        })?;
        let fields: Vec<Field> = self
            .specs()
            .iter()
            .map(|spec| Field { name: spec.name.into(), value: to_value(lookup(json, spec.path), spec.kind) })
            .chain(self.custom(custom).iter().map(|c| Field { name: c.name.clone(), value: c.read(json) }))
            .collect();
        let updated = json.get("updated_on").and_then(Json::as_str);
        // Redmine gives a deleted record's id to the next new one: the
        // creation time tells the two apart.
        let born = json.get("created_on").and_then(Json::as_str).map(str::to_owned);
        Ok(Record { id: id.to_string(), version: Some(version(updated, &fields)), deleted: false, fields, born })
    }

    /// The record with its version made anew from the fields it keeps.
    pub fn reversion(self, mut record: Record) -> Record {
        let updated = record.get("updated_on").and_then(Value::as_str).map(str::to_owned);
        record.version = Some(version(updated.as_deref(), &record.fields));
        record
    }

    /// The JSON body Redmine takes to create or update a resource from these
    /// fields; `custom_id` gives a custom field's id by its name.
    pub fn to_body(self, fields: &[Field], custom: &[CustomField], custom_id: impl Fn(&str) -> Result<i64, Error>) -> Result<Json, Error> {
        let mut body = Map::new();
        let mut custom_values = Vec::new();
        for field in fields {
            if self.custom(custom).iter().any(|c| c.name == field.name) {
                custom_values.push(json!({ "id": custom_id(&field.name)?, "value": CustomField::text(&field.value) }));
                continue;
            }
            let spec = self.specs().iter().find(|s| s.name == field.name).ok_or_else(|| {
                let names: Vec<&str> = self.specs().iter().map(|s| s.name).chain(self.custom(custom).iter().map(|c| c.name.as_str())).collect();
                Error::new("unknown-field", format!("{} has no field `{}`", self.name(), field.name))
                    .with_hint(format!("the fields of {} are: {}", self.name(), names.join(", ")))
            })?;
            if spec.read_only {
                return Err(Error::new("read-only-field", format!("`{}` of {} is set by Redmine and cannot be written", spec.name, self.name()))
                    .with_hint("make the field flow only from Redmine (direction = \"right-to-left\" when Redmine is the right side)"));
            }
            body.insert(spec.name.into(), from_value(&field.value));
        }
        if !custom_values.is_empty() {
            body.insert("custom_fields".into(), Json::Array(custom_values));
        }
        Ok(json!({ self.singular(): Json::Object(body) }))
    }
}

fn lookup<'a>(json: &'a Json, path: &str) -> Option<&'a Json> {
    path.split('.').try_fold(json, |node, key| node.get(key))
}

fn to_value(json: Option<&Json>, kind: FieldType) -> Value {
    let Some(json) = json else { return Value::Null };
    match (kind, json) {
        (_, Json::Null) => Value::Null,
        (FieldType::Integer, Json::Number(n)) => n.as_i64().map(Value::Integer).unwrap_or(Value::Null),
        (FieldType::Float, Json::Number(n)) => n.as_f64().map(Value::Float).unwrap_or(Value::Null),
        (FieldType::Boolean, Json::Bool(b)) => Value::Boolean(*b),
        (FieldType::Date, Json::String(s)) => Value::Date(s.clone()),
        (FieldType::Timestamp, Json::String(s)) => Value::Timestamp(s.clone()),
        (_, Json::String(s)) => Value::Text(s.clone()),
        (_, other) => Value::Text(other.to_string()),
    }
}

fn from_value(value: &Value) -> Json {
    match value {
        // Redmine ignores a null (the old value stays) and clears a value given
        // as empty text: an unassigned issue, a removed due date.
        Value::Null => json!(""),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::Decimal(s) => s.parse::<f64>().map(|f| json!(f)).unwrap_or_else(|_| json!(s)),
        Value::Text(s) | Value::Date(s) | Value::Timestamp(s) | Value::Json(s) => json!(s),
        Value::Bytes(b) => json!(String::from_utf8_lossy(b)),
    }
}

/// Whether a value read back is the one written (Redmine answers numbers and
/// empty values in its own forms). Pure.
pub(crate) fn same(asked: &Value, held: &Value) -> bool {
    let blank = |v: &Value| matches!(v, Value::Null) || matches!(v, Value::Text(t) if t.trim().is_empty());
    if blank(asked) || blank(held) {
        return blank(asked) && blank(held);
    }
    match (asked.as_f64(), held.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
        _ => from_value(asked) == from_value(held) || asked.to_display_string().trim() == held.to_display_string().trim(),
    }
}

impl Kind {
    /// The fields of `asked` that Redmine did not keep in `held` (the record
    /// read back after an update): Redmine ignores what it may not take (a
    /// parent's derived dates, a field the workflow locks) without an error.
    /// Each as (name, asked, held). Written-only fields are not compared.
    pub fn not_kept(self, asked: &[Field], held: &Record) -> Vec<(String, Value, Value)> {
        asked
            .iter()
            .filter(|f| self.specs().iter().any(|s| s.name == f.name && !s.read_only && s.name != "notes"))
            .filter_map(|f| {
                let value = held.get(&f.name).cloned().unwrap_or(Value::Null);
                (!same(&f.value, &value)).then(|| (f.name.clone(), f.value.clone(), value))
            })
            .collect()
    }
}

/// A record's version: Redmine's `updated_on` (seconds) plus a digest of the
/// values, so that two edits within one second are still told apart.
/// Redmine's stamps have whole seconds: the digest tells two edits within
/// one second apart.
fn version(updated_on: Option<&str>, fields: &[Field]) -> String {
    match updated_on {
        Some(at) => synchost_plugin_sdk::version::version(at, fields, false),
        None => synchost_plugin_sdk::version::digest(fields, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_work() -> Vec<CustomField> {
        vec![CustomField { name: "Plan work".into(), kind: Float }]
    }

    #[test]
    fn custom_fields_are_typed_issue_fields() {
        let issue = json!({"id": 7, "subject": "Cabling", "custom_fields": [{"id": 3, "name": "Plan work", "value": "24.5"}]});
        let record = Kind::Issues.to_record(&issue, &plan_work()).unwrap();
        assert!(record.fields.iter().any(|f| f.name == "Plan work" && f.value == Value::Float(24.5)));
        // Empty in Redmine, or not enabled for the issue: null.
        let empty = json!({"id": 8, "custom_fields": [{"id": 3, "name": "Plan work", "value": ""}]});
        let record = Kind::Issues.to_record(&empty, &plan_work()).unwrap();
        assert!(record.fields.iter().any(|f| f.name == "Plan work" && f.value == Value::Null));
        // Time entries have none.
        assert!(!Kind::TimeEntries.def(&plan_work(), None).fields.iter().any(|f| f.name == "Plan work"));
    }

    #[test]
    fn custom_fields_are_written_by_id_as_text() {
        let fields = [Field { name: "subject".into(), value: Value::Text("Cabling".into()) }, Field { name: "Plan work".into(), value: Value::Float(30.0) }];
        let body = Kind::Issues.to_body(&fields, &plan_work(), |name| if name == "Plan work" { Ok(3) } else { unreachable!() }).unwrap();
        assert_eq!(body, json!({"issue": {"subject": "Cabling", "custom_fields": [{"id": 3, "value": "30.0"}]}}));
    }
}
