//! `redmine`: a connector for Redmine's REST API (JSON), reached only through
//! the host's `http` service, as the account whose API key the endpoint's
//! settings hold (the key is sent in a header, never in a URL or a log).
//!
//! - Entities: `projects`, `users` (read), `members` (the users who are
//!   members of the scoped project, read), `activities` (time entry
//!   activities, read), `issues`, `time_entries`. References are flat ids
//!   (`project_id`, `activity_id` ...) so pipelines can translate them.
//! - Issues and time entries have a change feed by `updated_on`; the cursor
//!   keeps the last timestamp and the ids already returned with it, so a page
//!   boundary inside one second neither skips nor repeats a record. Master data
//!   is read whole each run (it is small).
//! - Issue custom fields named in the settings (`issue_custom_fields`) are
//!   issue fields of the same name, typed as the settings say; their ids are
//!   looked up by name once per call.
//! - Writes create, update and delete issues and time entries (new ones
//!   without a project go into the scoped project; an issue's `notes` becomes
//!   a journal entry), and create and update projects; an update first checks
//!   the expected version and reports a conflict with the current record when
//!   someone changed it meanwhile.
//! - `probe` asks Redmine who the key belongs to and which permissions its
//!   roles give in the configured project, and names each one a pipeline needs
//!   but the account lacks.
//!
//! # Layout
//! - `settings`: the endpoint settings.
//! - `api`: requests through the host, and what Redmine's answers mean.
//! - `entities`: resources, their fields, JSON to records and back.
//! - `feed`: the change-feed cursor.
//! - `origin`: the origin of a created record, kept in a custom field and
//!   searched by, so that a create sent again finds what the first one made.
//! - `rollups`: a parent issue's fields Redmine derives from its subtasks.
//! - `acting`: changes made in the name of the person who decided them.

mod acting;
mod api;
mod entities;
mod feed;
mod origin;
mod rollups;
mod settings;

use std::collections::{BTreeSet, HashMap};

use serde_json::Value as Json;
use synchost_plugin_sdk::prelude::*;
use synchost_plugin_sdk::EntityNeed;

use api::{encode, Api, Purpose};
use entities::{CustomField, Kind};
use feed::FeedCursor;
use settings::{CustomFieldType, Settings};

/// The redmine connector for one call.
pub struct Redmine {
    settings: Settings,
    api: Api,
    endpoint: String,
    /// The scoped project's id, asked once per call (creates need it).
    scope_id: std::cell::OnceCell<Json>,
    /// The issue custom fields of the settings.
    custom: Vec<CustomField>,
    /// Redmine's ids of the issue custom fields by name, asked once per call.
    custom_ids: std::cell::OnceCell<HashMap<String, i64>>,
    /// The origin custom field's id per kind of record, asked once per call.
    origin_ids: std::cell::RefCell<HashMap<Kind, i64>>,
    /// The issue fields Redmine derives for parent issues.
    derived: Vec<String>,
    /// Whether the account is an administrator, asked once per call.
    account_admin: std::cell::OnceCell<bool>,
}

/// What sending one change did.
enum Written {
    /// Its outcome is known.
    Done(Outcome),
    /// An update Redmine took: its outcome waits for the read-back, which
    /// compares with the record as it was just before (`Box`: a record is large).
    Sent(Box<Record>),
}

/// Whether values an update did not leave were put there by someone else
/// right after it: a value neither asked for nor there before. (One Redmine
/// ignored holds the value from before.) `missed` as `Kind::not_kept` gives it.
fn changed_meanwhile(missed: &[(String, Value, Value)], before: &Record) -> bool {
    missed.iter().any(|(name, _, held)| !entities::same(held, before.get(name).unwrap_or(&Value::Null)))
}

/// From this many ids on, `fetch` lists the scope rather than asking per id.
const MANY: usize = 10;

/// The problem code of a create Redmine got but gave no answer to.
const OUTCOME_UNKNOWN: &str = "outcome-unknown";

const READ: Purpose<'static> = Purpose { action: "read it", permission: "view_project" };

pub(crate) fn read_purpose(kind: Kind) -> Purpose<'static> {
    match kind {
        Kind::Issues => Purpose { action: "view issues", permission: "view_issues" },
        Kind::TimeEntries => Purpose { action: "view spent time", permission: "view_time_entries" },
        Kind::Users | Kind::Members => Purpose { action: "list users", permission: "admin" },
        _ => READ,
    }
}

fn write_purpose(kind: Kind, create: bool) -> Purpose<'static> {
    match (kind, create) {
        (Kind::TimeEntries, true) => Purpose { action: "log time", permission: "log_time" },
        (Kind::TimeEntries, false) => Purpose { action: "edit time entries", permission: "edit_time_entries" },
        (Kind::Issues, true) => Purpose { action: "add issues", permission: "add_issues" },
        (Kind::Issues, false) => Purpose { action: "edit issues", permission: "edit_issues" },
        (_, true) => Purpose { action: "create projects", permission: "add_subprojects" },
        (_, false) => Purpose { action: "edit projects", permission: "edit_project" },
    }
}

/// The permissions a pipeline's use of an entity needs: (permission, what it allows).
fn required_permissions(kind: Kind, need: &EntityNeed) -> Vec<(&'static str, &'static str)> {
    let mut required = Vec::new();
    match kind {
        Kind::Issues => {
            if need.read {
                required.push(("view_issues", "view issues"));
            }
            if need.write {
                required.extend([("add_issues", "add issues"), ("edit_issues", "edit issues"), ("delete_issues", "delete issues")]);
            }
        }
        Kind::TimeEntries => {
            if need.read {
                required.push(("view_time_entries", "view spent time"));
            }
            if need.write {
                required.extend([("log_time", "log time"), ("edit_time_entries", "edit time entries")]);
            }
        }
        Kind::Projects if need.write => required.extend([("add_subprojects", "create subprojects"), ("edit_project", "edit projects")]),
        _ => {}
    }
    required
}

impl Connector for Redmine {
    fn new(context: &Context) -> Result<Self, Error> {
        let settings: Settings = context.settings()?;
        if !(1..=100).contains(&settings.page_size) {
            return Err(Error::settings(format!("page_size {} is outside 1..=100", settings.page_size))
                .with_hint("Redmine returns at most 100 records per request; set page_size between 1 and 100"));
        }
        let custom = settings
            .issue_custom_fields
            .iter()
            .map(|(name, kind)| {
                if Kind::Issues.has_field(name) {
                    return Err(Error::settings(format!("issue custom field `{name}` has the name of an issue field of Redmine's own"))
                        .with_hint("rename the custom field in Redmine (and in issue_custom_fields) so that the two can be told apart"));
                }
                let kind = match kind {
                    CustomFieldType::Text => FieldType::Text,
                    CustomFieldType::Integer => FieldType::Integer,
                    CustomFieldType::Float => FieldType::Float,
                    CustomFieldType::Date => FieldType::Date,
                    CustomFieldType::Boolean => FieldType::Boolean,
                };
                Ok(CustomField { name: name.clone(), kind })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if let Some(settings::OriginField::Name(origin)) = settings.origin_field.as_ref().filter(|o| settings.issue_custom_fields.contains_key(&o.to_string())) {
            return Err(Error::settings(format!("`{origin}` is both the origin_field and one of the issue_custom_fields"))
                .with_hint("the origin field is synchost's own: give it a custom field of its own, and remove it from issue_custom_fields"));
        }
        let api = Api::new(&settings, context.name())?;
        let derived = rollups::derived_fields(settings.derived_parent_fields.as_deref())?;
        Ok(Redmine {
            derived,
            settings,
            api,
            endpoint: context.name().to_owned(),
            scope_id: std::cell::OnceCell::new(),
            custom,
            custom_ids: std::cell::OnceCell::new(),
            origin_ids: std::cell::RefCell::new(HashMap::new()),
            account_admin: std::cell::OnceCell::new(),
        })
    }

    fn describe(&self) -> Result<Vec<EntityDef>, Error> {
        Ok(Kind::ALL.iter().map(|k| k.def(&self.custom, self.settings.origin_field.as_ref())).collect())
    }

    fn read(&mut self, entity: &str, cursor: Option<String>, limit: u32) -> Result<ReadBatch, Error> {
        let kind = Kind::parse(entity)?;
        // A key Redmine does not know is treated as anonymous on public
        // projects: check it, or a wrong key would read a partial picture.
        self.current_user().map_err(|e| e.context(format_args!("reading {} (checking the API key first)", kind.name())))?;
        let limit = limit.max(1) as usize;
        match kind {
            Kind::Issues => self.read_issues(cursor, limit),
            Kind::TimeEntries => self.read_time_entries(cursor, limit),
            _ => self.read_whole(kind, cursor, limit),
        }
    }

    fn fetch(&mut self, entity: &str, ids: Vec<String>) -> Result<Vec<Record>, Error> {
        self.records_by_ids(Kind::parse(entity)?, &ids)
    }

    fn write(&mut self, entity: &str, changes: Vec<Change>) -> Result<Vec<Outcome>, Error> {
        let kind = Kind::parse(entity)?;
        let mut outcomes = Vec::with_capacity(changes.len());
        // Updates sent, whose new versions are read back together at the end.
        let mut sent: Vec<(usize, Record)> = Vec::new();
        for change in &changes {
            match self.write_one(kind, change) {
                Ok(Written::Sent(before)) => {
                    sent.push((outcomes.len(), *before));
                    outcomes.push(Outcome::Rejected(Problem { code: "pending".into(), message: String::new(), hint: None, retryable: true }));
                }
                // Redmine got a request and gave no answer: it may be down or
                // overloaded; the rest are not sent (each would wait as long).
                Ok(Written::Done(Outcome::Rejected(problem))) if problem.code == OUTCOME_UNKNOWN => {
                    let not_sent = Problem {
                        code: "not-sent".into(),
                        message: format!("not sent: an earlier change of the batch got no answer from Redmine ({})", problem.message),
                        hint: problem.hint.clone(),
                        retryable: true,
                    };
                    outcomes.push(Outcome::Rejected(problem));
                    outcomes.resize(changes.len(), Outcome::Rejected(not_sent));
                    break;
                }
                Ok(Written::Done(outcome)) => outcomes.push(outcome),
                // Redmine is down or refuses the key: every other change would fail
                // the same way. Nothing applied yet: the whole batch is retried;
                // otherwise the rest are reported as not written, to be resubmitted.
                Err(error) if error.problem().retryable || error.problem().code == "unauthorized" => {
                    if outcomes.is_empty() {
                        return Err(error);
                    }
                    let problem = error.into_problem();
                    outcomes.resize(changes.len(), Outcome::Rejected(Problem { retryable: true, ..problem }));
                    break;
                }
                Err(error) => outcomes.push(Outcome::Rejected(error.into_problem())),
            }
        }
        self.read_back(kind, &changes, &sent, &mut outcomes);
        Ok(outcomes)
    }

    /// The scoped project's id and creation time (they survive a move of
    /// the server and differ between two Redmines), or, unscoped, the
    /// account's.
    fn identity(&mut self) -> Result<Option<String>, Error> {
        let (what, json) = match &self.settings.project {
            Some(identifier) => (format!("project {identifier}"), self.api.get(&format!("/projects/{}.json", encode(identifier)), READ)?["project"].clone()),
            None => {
                let me = self.current_user()?;
                (format!("account {}", me["login"].as_str().unwrap_or("?")), me)
            }
        };
        Ok(Some(format!("redmine {what} (id {}, made {})", json["id"], json["created_on"].as_str().unwrap_or("?"))))
    }

    fn probe(&mut self, needs: &[EntityNeed]) -> Result<Vec<Problem>, Error> {
        let me = self.current_user()?;
        let login = me.get("login").and_then(Json::as_str).unwrap_or("?").to_owned();
        let admin = me.get("admin").and_then(Json::as_bool).unwrap_or(false);
        let mut problems = Vec::new();
        let scope = match &self.settings.project {
            None => None,
            Some(identifier) => match self.api.get_optional(&format!("/projects/{}.json", encode(identifier)), READ)? {
                Some(project) => Some((identifier.clone(), project["project"]["id"].as_i64().unwrap_or(0))),
                None => {
                    problems.push(Problem {
                        code: "not-found".into(),
                        message: format!("project `{identifier}` does not exist in Redmine or `{login}` cannot see it"),
                        hint: Some(format!(
                            "create the project in Redmine and add `{login}` as a member, or correct [endpoints.{}.settings] project",
                            self.endpoint
                        )),
                        retryable: false,
                    });
                    return Ok(problems);
                }
            },
        };
        // What the account may do: everything as an administrator; otherwise
        // the union of its roles' permissions (in the scoped project).
        let mut roles: BTreeSet<(i64, String)> = BTreeSet::new();
        for membership in me.get("memberships").and_then(Json::as_array).into_iter().flatten() {
            let project_id = membership["project"]["id"].as_i64();
            if scope.as_ref().is_some_and(|(_, id)| Some(*id) != project_id) {
                continue;
            }
            for role in membership["roles"].as_array().into_iter().flatten() {
                if let (Some(id), Some(name)) = (role["id"].as_i64(), role["name"].as_str()) {
                    roles.insert((id, name.to_owned()));
                }
            }
        }
        let mut permissions: BTreeSet<String> = BTreeSet::new();
        if !admin {
            for (id, _) in &roles {
                let role = self.api.get(&format!("/roles/{id}.json"), READ)?;
                permissions.extend(role["role"]["permissions"].as_array().into_iter().flatten().filter_map(Json::as_str).map(str::to_owned));
            }
        }
        let place = match &scope {
            Some((identifier, _)) => format!("in project `{identifier}`"),
            None => "in any project".to_owned(),
        };
        let role_names = if roles.is_empty() { "no role".to_owned() } else { roles.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", ") };
        if needs.iter().any(|n| n.entity == Kind::Issues.name()) {
            for field in &self.custom {
                if let Err(error) = self.custom_id(&field.name) {
                    problems.push(error.into_problem());
                }
            }
        }
        for kind in Kind::ALL.iter().copied().filter(|k| needs.iter().any(|n| n.write && n.entity == k.name())) {
            problems.extend(self.probe_origin(kind));
        }
        for need in needs {
            let kind = match Kind::parse(&need.entity) {
                Ok(kind) => kind,
                Err(error) => {
                    problems.push(error.into_problem());
                    continue;
                }
            };
            if need.write && !kind.writable() {
                problems.push(Problem {
                    code: "read-only".into(),
                    message: format!("{} are read-only through Redmine's API, but a pipeline writes to them", kind.name()),
                    hint: Some("let that pipeline flow only from Redmine (create and direction)".into()),
                    retryable: false,
                });
            }
            if admin {
                continue;
            }
            if matches!(kind, Kind::Users | Kind::Members) && need.read {
                problems.push(Problem {
                    code: "missing-permission".into(),
                    message: format!("`{login}` may not list users: Redmine lists users to administrators only"),
                    hint: Some(format!("use the API key of a Redmine administrator for [endpoints.{}]", self.endpoint)),
                    retryable: false,
                });
            }
            for (permission, action) in required_permissions(kind, need) {
                if !permissions.contains(permission) {
                    problems.push(Problem {
                        code: "missing-permission".into(),
                        message: format!(
                            "`{login}` may not {action} {place}: its roles ({role_names}) lack the permission `{permission}`, which pipelines on {} need",
                            kind.name()
                        ),
                        hint: Some(format!(
                            "in Redmine (Administration > Roles and permissions) give one of its roles `{permission}`, or make `{login}` a member {place} with a role that has it"
                        )),
                        retryable: false,
                    });
                }
            }
        }
        Ok(problems)
    }
}

impl Redmine {
    /// The account the key belongs to (with its memberships); 401 for a bad key.
    fn current_user(&self) -> Result<Json, Error> {
        let me = self.api.get("/users/current.json?include=memberships", Purpose { action: "sign in", permission: "a valid API key" })?;
        Ok(me["user"].clone())
    }

    /// `/projects/ID` when the endpoint is scoped to one project, else empty.
    fn scope_prefix(&self) -> String {
        self.settings.project.as_ref().map(|p| format!("/projects/{}", encode(p))).unwrap_or_default()
    }

    /// Every page of a list; restarts when the total changed while paging (a
    /// record added or removed shifts the pages), so none is missed.
    fn list(&self, kind: Kind, path: &str) -> Result<Vec<Json>, Error> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let page = self.settings.page_size;
        'scan: for _attempt in 0..3 {
            let mut items = Vec::new();
            let mut first_total = None;
            let mut offset = 0u64;
            loop {
                let json = self.api.get(&format!("{path}{separator}limit={page}&offset={offset}"), read_purpose(kind))?;
                let batch = json.get(kind.plural()).and_then(Json::as_array).cloned().unwrap_or_default();
                let total = json.get("total_count").and_then(Json::as_u64);
                let got = batch.len() as u64;
                items.extend(batch);
                let Some(total) = total else { return Ok(items) }; // not paged
                if *first_total.get_or_insert(total) != total {
                    continue 'scan;
                }
                offset += got;
                if got == 0 || offset >= total {
                    return Ok(items);
                }
            }
        }
        Err(Error::transient("busy", format!("{} kept changing while being listed", kind.name()))
            .with_hint("Redmine is being edited heavily; the read is retried"))
    }

    fn list_records(&self, kind: Kind) -> Result<Vec<Record>, Error> {
        let path = match kind {
            Kind::Projects => "/projects.json".to_owned(),
            Kind::Users | Kind::Members => "/users.json?status=".to_owned(),
            Kind::Activities => "/enumerations/time_entry_activities.json".to_owned(),
            Kind::Issues => format!("{}/issues.json?status_id=*", self.scope_prefix()),
            Kind::TimeEntries => format!("{}/time_entries.json", self.scope_prefix()),
        };
        let items = self.list(kind, &path)?;
        let items = match kind {
            Kind::Projects => self.in_scope(items),
            Kind::Members => self.members_only(items)?,
            _ => items,
        };
        let records = items.iter().map(|item| kind.to_record(item, &self.custom)).collect::<Result<Vec<_>, _>>()?;
        match kind {
            Kind::Issues => self.without_roll_ups(records),
            _ => Ok(records),
        }
    }

    /// Issue records with the derived fields of parents left out: which of
    /// them are parents, asked for in one request per 100.
    fn without_roll_ups(&self, records: Vec<Record>) -> Result<Vec<Record>, Error> {
        if self.derived.is_empty() || records.is_empty() {
            return Ok(records);
        }
        let mut parents = BTreeSet::new();
        for chunk in records.chunks(100) {
            let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
            let path = format!("/issues.json?status_id=*&child_id=*&issue_id={}", ids.join(","));
            parents.extend(self.list(Kind::Issues, &path)?.iter().filter_map(|i| i["id"].as_i64()).map(|id| id.to_string()));
        }
        Ok(rollups::strip_parents(records, &parents, &self.derived))
    }

    /// The users among these who are members of the scoped project.
    fn members_only(&self, users: Vec<Json>) -> Result<Vec<Json>, Error> {
        let Some(scope) = &self.settings.project else {
            return Err(Error::new("no-project", "`members` are the members of the endpoint's project, and it has none")
                .with_hint(format!("set [endpoints.{}.settings] project, or use the entity `users`", self.endpoint)));
        };
        let mut members = BTreeSet::new();
        let mut offset = 0;
        loop {
            let page = self.api.get(&format!("/projects/{}/memberships.json?limit=100&offset={offset}", encode(scope)), READ)?;
            let batch = page["memberships"].as_array().cloned().unwrap_or_default();
            members.extend(batch.iter().filter_map(|m| m["user"]["id"].as_i64()));
            offset += batch.len();
            if batch.is_empty() || offset as u64 >= page["total_count"].as_u64().unwrap_or(0) {
                break;
            }
        }
        Ok(users.into_iter().filter(|u| u["id"].as_i64().is_some_and(|id| members.contains(&id))).collect())
    }

    /// The scoped project and its descendants (all projects when unscoped).
    fn in_scope(&self, projects: Vec<Json>) -> Vec<Json> {
        let Some(scope) = &self.settings.project else { return projects };
        let parent_of: HashMap<i64, i64> =
            projects.iter().filter_map(|p| Some((p["id"].as_i64()?, p["parent"]["id"].as_i64()?))).collect();
        let Some(root) = projects.iter().find(|p| p["identifier"].as_str() == Some(scope)).and_then(|p| p["id"].as_i64()) else {
            return Vec::new();
        };
        let within = |mut id: i64| loop {
            if id == root {
                return true;
            }
            match parent_of.get(&id) {
                Some(&parent) => id = parent,
                None => return false,
            }
        };
        projects.into_iter().filter(|p| p["id"].as_i64().is_some_and(within)).collect()
    }

    /// Master data: the whole list each run, in id order from the cursor.
    fn read_whole(&self, kind: Kind, cursor: Option<String>, limit: usize) -> Result<ReadBatch, Error> {
        let after: i64 = cursor.as_deref().and_then(|c| c.parse().ok()).unwrap_or(i64::MIN);
        let mut records: Vec<(i64, Record)> =
            self.list_records(kind)?.into_iter().filter_map(|r| Some((r.id.parse::<i64>().ok()?, r))).filter(|(id, _)| *id > after).collect();
        records.sort_by_key(|(id, _)| *id);
        let has_more = records.len() > limit;
        records.truncate(limit);
        let cursor = records.last().map(|(id, _)| id.to_string()).or(cursor);
        Ok(ReadBatch { records: records.into_iter().map(|(_, r)| r).collect(), cursor, has_more })
    }

    /// Issues changed since the cursor, one page per call, sorted by Redmine.
    fn read_issues(&self, cursor: Option<String>, limit: usize) -> Result<ReadBatch, Error> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let cursor = FeedCursor::parse(cursor.as_deref())?.or_whole_read(now, u64::from(self.settings.spent_time_check_s));
        let page = limit.min(self.settings.page_size as usize);
        let mut path = format!("{}/issues.json?status_id=*&sort=updated_on,id", self.scope_prefix());
        if let Some(since) = &cursor.updated_on {
            path.push_str(&format!("&updated_on=%3E%3D{}", encode(since)));
        }
        let mut offset = 0usize;
        loop {
            let json = self.api.get(&format!("{path}&limit={page}&offset={offset}"), read_purpose(Kind::Issues))?;
            let items = json["issues"].as_array().cloned().unwrap_or_default();
            let total = json["total_count"].as_u64().unwrap_or(0) as usize;
            let records: Vec<Record> = items.iter().map(|i| Kind::Issues.to_record(i, &self.custom)).collect::<Result<_, _>>()?;
            let records = self.without_roll_ups(records)?;
            let fresh = cursor.unseen(records);
            offset += items.len();
            // A page of nothing but records already returned (many changes in
            // one second): look at the next page rather than stop.
            if fresh.is_empty() && items.len() == page && offset < total {
                continue;
            }
            let has_more = offset < total;
            return Ok(cursor.advance(fresh, has_more));
        }
    }

    /// Time entries changed since the cursor. Redmine cannot filter or sort
    /// them by `updated_on`, so the (scoped) list is read and filtered here.
    fn read_time_entries(&self, cursor: Option<String>, limit: usize) -> Result<ReadBatch, Error> {
        let cursor = FeedCursor::parse(cursor.as_deref())?;
        let mut path = format!("{}/time_entries.json", self.scope_prefix());
        if let Some(since) = &self.settings.time_entries_since {
            path.push_str(&format!("?from={}", encode(since)));
        }
        let items = self.list(Kind::TimeEntries, &path)?;
        let records: Vec<Record> = items.iter().map(|i| Kind::TimeEntries.to_record(i, &self.custom)).collect::<Result<_, _>>()?;
        let mut fresh = cursor.unseen(records);
        fresh.sort_by(|a, b| feed::order_key(a).cmp(&feed::order_key(b)));
        let has_more = fresh.len() > limit;
        fresh.truncate(limit);
        Ok(cursor.advance(fresh, has_more))
    }

    /// The records with these ids as they are now; unknown ids are left out.
    /// Many ids are served from the scope's list, 100 a request.
    fn records_by_ids(&self, kind: Kind, ids: &[String]) -> Result<Vec<Record>, Error> {
        if kind == Kind::Activities {
            let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
            return Ok(self.list_records(kind)?.into_iter().filter(|r| wanted.contains(r.id.as_str())).collect());
        }
        let mut records = Vec::with_capacity(ids.len());
        let mut unlisted: Vec<&String> = ids.iter().collect();
        // Many ids (the host looking for records deleted outright): one list
        // of the scope, 100 a page, instead of a request per id.
        if ids.len() > MANY && matches!(kind, Kind::Issues | Kind::TimeEntries) {
            let wanted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
            records.extend(self.list_records(kind)?.into_iter().filter(|r| wanted.contains(r.id.as_str())));
            let listed: BTreeSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
            unlisted.retain(|id| !listed.contains(id.as_str()));
        }
        // Asked one by one: moved out of the scope is not deleted.
        for id in unlisted {
            if let Some(record) = self.get_record(kind, id)? {
                records.push(record);
            }
        }
        Ok(records)
    }

    fn get_record(&self, kind: Kind, id: &str) -> Result<Option<Record>, Error> {
        let id: i64 = id.parse().map_err(|_| Error::new("bad-id", format!("`{id}` is not a Redmine id")))?;
        let path = match kind {
            Kind::Projects => format!("/projects/{id}.json"),
            Kind::Users | Kind::Members => format!("/users/{id}.json"),
            Kind::Issues => format!("/issues/{id}.json?include=children"),
            Kind::TimeEntries => format!("/time_entries/{id}.json"),
            Kind::Activities => unreachable!("activities are fetched from their list"),
        };
        let Some(json) = self.api.get_optional(&path, read_purpose(kind))? else { return Ok(None) };
        let record = kind.to_record(&json[kind.singular()], &self.custom)?;
        let parent = kind == Kind::Issues && json["issue"]["children"].as_array().is_some_and(|c| !c.is_empty());
        Ok(Some(if parent { rollups::without_derived(record, &self.derived) } else { record }))
    }

    fn write_one(&self, kind: Kind, change: &Change) -> Result<Written, Error> {
        if !kind.writable() {
            return Err(Error::new("read-only", format!("{} cannot be written through Redmine's API", kind.name()))
                .with_hint("let the pipeline flow only from Redmine for this entity"));
        }
        let collection = kind.plural();
        match (&change.kind, &change.target_id) {
            (ChangeKind::Delete, None) => Err(Error::new("no-target", "a delete names no record")),
            (ChangeKind::Delete, Some(_)) if kind == Kind::Projects => Err(Error::new(
                "not-deleted",
                "synchost does not delete Redmine projects (with them go their issues and spent time)",
            )
            .with_hint("close or archive the project in Redmine yourself if it should go")),
            (ChangeKind::Delete, Some(id)) => {
                let Some(current) = self.get_record(kind, id)? else {
                    return Ok(Written::Done(Outcome::Applied(Applied { id: id.clone(), version: None })));
                };
                if change.expected_version.as_ref().is_some_and(|v| Some(v) != current.version.as_ref()) {
                    return Ok(Written::Done(Outcome::Conflict(current)));
                }
                match self.api.change("DELETE", &format!("/{collection}/{id}.json"), None, write_purpose(kind, false)) {
                    Ok(_) => Ok(Written::Done(Outcome::Applied(Applied { id: id.clone(), version: None }))),
                    Err(error) if error.problem().code == "not-found" => Ok(Written::Done(Outcome::Applied(Applied { id: id.clone(), version: None }))),
                    Err(error) => Err(error),
                }
            }
            (ChangeKind::Upsert, Some(id)) => self.update(kind, id, change),
            (ChangeKind::Upsert, None) => {
                // An earlier sending may have made it: bring that one up to date.
                if change.repeated {
                    if let Some(made) = self.find_by_origin(kind, &change.origin)? {
                        return self.update(kind, &made.id, change);
                    }
                }
                let mut body = kind.to_body(&change.fields, &self.custom, |name| self.custom_id(name))?;
                let derived_identifier = kind == Kind::Projects && self.complete_new_project(&mut body)?;
                if matches!(kind, Kind::Issues | Kind::TimeEntries) {
                    self.place_in_scope(kind, &mut body)?;
                }
                self.stamp_origin(kind, &mut body, &change.origin)?;
                let mut attempt = 1;
                let created = loop {
                    match self.change_for(kind, "POST", &format!("/{collection}.json"), body.clone(), change.on_behalf_of.as_deref(), write_purpose(kind, true)) {
                        // Identifiers are unique across Redmine: a name another
                        // project's identifier was made from gets a number.
                        Err(error) if derived_identifier && attempt < 10 && error.problem().message.contains("Identifier has already been taken") => {
                            attempt += 1;
                            let base = body["project"]["identifier"].as_str().unwrap_or("").trim_end_matches(|c: char| c.is_ascii_digit() || c == '-').to_owned();
                            body["project"]["identifier"] = Json::String(format!("{}-{attempt}", &base[..base.len().min(95)]));
                        }
                        // Sent, but no answer: Redmine may have made it.
                        Err(error) if matches!(error.problem().code.as_str(), "http-timeout" | "http-error") => {
                            let problem = error.into_problem();
                            return Ok(Written::Done(Outcome::Rejected(Problem {
                                code: OUTCOME_UNKNOWN.into(),
                                message: format!("Redmine gave no answer to the create of a {}: {}", kind.singular(), problem.message),
                                hint: problem.hint,
                                retryable: true,
                            })));
                        }
                        Err(error) if kind == Kind::TimeEntries && error.problem().message.contains("User is invalid") => {
                            return Err(self.explain_invalid_user(&body, error));
                        }
                        other => break other?,
                    }
                }
                .ok_or_else(|| Error::new("bad-response", format!("Redmine created a {} but returned no body", kind.singular())))?;
                let record = kind.to_record(&created[kind.singular()], &self.custom)?;
                Ok(Written::Done(Outcome::Applied(Applied { id: record.id, version: record.version })))
            }
        }
    }

    /// Updates an existing record, unless someone changed it since the
    /// version the change expects (a conflict with the record as it is now).
    /// Redmine has no conditional update, so the record is read right before
    /// the PUT; its answer to a PUT has no body, so the new version is read
    /// back afterwards, for the whole batch at once (`read_back`).
    fn update(&self, kind: Kind, id: &str, change: &Change) -> Result<Written, Error> {
        let Some(current) = self.get_record(kind, id)? else {
            return Err(Error::new("not-found", format!("{} {id} no longer exists in Redmine", kind.singular()))
                .with_hint("it was deleted there; the link is kept until the deletion is synced"));
        };
        if change.expected_version.as_ref().is_some_and(|v| Some(v) != current.version.as_ref()) {
            return Ok(Written::Done(Outcome::Conflict(current)));
        }
        // Redmine would ignore a parent's derived values without a word.
        if kind == Kind::Issues && rollups::is_stripped_parent(&current, &self.derived) {
            rollups::refuse_derived(&change.fields, &self.derived, id)?;
        }
        let body = kind.to_body(&change.fields, &self.custom, |name| self.custom_id(name))?;
        let path = format!("/{}/{id}.json", kind.plural());
        self.change_for(kind, "PUT", &path, body, change.on_behalf_of.as_deref(), write_purpose(kind, false))?;
        Ok(Written::Sent(Box::new(current)))
    }

    /// The outcomes of the updates sent: each record read back (from the
    /// scope's list when there are many) for its new version, and reported
    /// as written only if Redmine kept what it was asked to. `sent` holds
    /// each update's slot and the record as it was just before.
    fn read_back(&self, kind: Kind, changes: &[Change], sent: &[(usize, Record)], outcomes: &mut [Outcome]) {
        if sent.is_empty() {
            return;
        }
        let ids: Vec<String> = sent.iter().map(|(_, before)| before.id.clone()).collect();
        let now: HashMap<String, Record> = match self.records_by_ids(kind, &ids) {
            Ok(records) => records.into_iter().map(|r| (r.id.clone(), r)).collect(),
            Err(error) => {
                let problem = error.into_problem();
                for (slot, before) in sent {
                    outcomes[*slot] = Outcome::Rejected(Problem {
                        code: "not-read-back".into(),
                        message: format!("{} {} was updated, but its new version could not be read: {}", kind.singular(), before.id, problem.message),
                        hint: Some("the change is sent again once Redmine answers; sending it again is harmless".into()),
                        retryable: true,
                    });
                }
                return;
            }
        };
        for (slot, before) in sent {
            outcomes[*slot] = match now.get(&before.id) {
                None => Outcome::Rejected(Error::transient("not-found", format!("{} {} vanished right after it was updated", kind.singular(), before.id)).into_problem()),
                Some(updated) => self.update_outcome(kind, &changes[*slot], before, updated),
            };
        }
    }

    /// What an update did, from the record read back: applied; or changed
    /// by someone else right after it (a value neither asked for nor there
    /// before): a conflict with the record as it is now, for the pipeline's
    /// policy; or values Redmine ignored without a word.
    fn update_outcome(&self, kind: Kind, change: &Change, before: &Record, updated: &Record) -> Outcome {
        if let Err(error) = self.check_custom_values_kept(change, updated) {
            return Outcome::Rejected(error.into_problem());
        }
        let missed = kind.not_kept(&change.fields, updated);
        if missed.is_empty() {
            return Outcome::Applied(Applied { id: updated.id.clone(), version: updated.version.clone() });
        }
        if changed_meanwhile(&missed, before) {
            return Outcome::Conflict(updated.clone());
        }
        let list: Vec<String> = missed.iter().map(|(name, asked, held)| format!("`{name}` (asked {}, it holds {})", show(asked), show(held))).collect();
        Outcome::Rejected(
            Error::new("not-kept", format!("Redmine did not keep {} of {} {}", list.join(", "), kind.singular(), updated.id))
                .with_hint(
                    "Redmine ignores a value it may not take: a parent issue's dates and done ratio derived from its subtasks (Administration > Settings > Issue tracking), a field the workflow makes read-only for the role, a field not enabled for the tracker; sync that field one way (from Redmine), or change the setting",
                )
                .into_problem(),
        )
    }

    /// Redmine says "User is invalid" when the entry's user may not log time in
    /// its project: says which, as far as this account can find out.
    fn explain_invalid_user(&self, body: &Json, error: Error) -> Error {
        let entry = &body["time_entry"];
        let (Some(user), Some(project)) = (entry["user_id"].as_i64(), entry["project_id"].as_i64()) else { return error };
        let who = self
            .api
            .get_optional(&format!("/users/{user}.json"), READ)
            .ok()
            .flatten()
            .and_then(|u| u["user"]["login"].as_str().map(|login| format!("`{login}` (user {user})")))
            .unwrap_or_else(|| format!("user {user}"));
        let place = self
            .api
            .get_optional(&format!("/projects/{project}.json"), READ)
            .ok()
            .flatten()
            .and_then(|p| p["project"]["identifier"].as_str().map(|id| format!("project `{id}`")))
            .unwrap_or_else(|| format!("project {project}"));
        let mut members: Vec<Json> = Vec::new();
        let mut listed = false;
        while let Ok(page) = self.api.get(&format!("/projects/{project}/memberships.json?limit=100&offset={}", members.len()), READ) {
            listed = true;
            let batch = page["memberships"].as_array().cloned().unwrap_or_default();
            let total = page["total_count"].as_u64().unwrap_or(0) as usize;
            members.extend(batch.iter().cloned());
            if batch.is_empty() || members.len() >= total {
                break;
            }
        }
        let member = members.iter().find(|m| m["user"]["id"].as_i64() == Some(user));
        let (message, hint) = match member {
            None if listed => (
                format!("Redmine refused the time entry: {who} is not a member of {place} (Redmine says: User is invalid)"),
                format!("add {who} to {place} in Redmine (Settings > Members) with a role that may log time, or enter the time under another user"),
            ),
            _ => (
                format!("Redmine refused the time entry: {who} may not log time in {place} (Redmine says: User is invalid)"),
                format!("give {who} a role with the permission `log_time` in {place} (Administration > Roles and permissions), or enter the time under another user"),
            ),
        };
        Error::new("invalid", message).with_hint(hint)
    }

    /// An issue or time entry made without a project goes into the scoped project.
    fn place_in_scope(&self, kind: Kind, body: &mut Json) -> Result<(), Error> {
        let record = &mut body[kind.singular()];
        if record.get("project_id").is_none_or(Json::is_null) {
            if let Some(id) = self.scope_id()? {
                record["project_id"] = id;
            }
        }
        Ok(())
    }

    /// The scoped project's id (None when the endpoint is not scoped).
    fn scope_id(&self) -> Result<Option<Json>, Error> {
        let Some(scope) = &self.settings.project else { return Ok(None) };
        if let Some(id) = self.scope_id.get() {
            return Ok(Some(id.clone()));
        }
        let json = self.api.get(&format!("/projects/{}.json", encode(scope)), READ)?;
        Ok(Some(self.scope_id.get_or_init(|| json["project"]["id"].clone()).clone()))
    }

    /// Redmine's ids of the issue custom fields by name. A project's own
    /// custom fields are visible to its members; fields for all projects only
    /// to administrators, through the list of all custom fields.
    fn custom_field_ids(&self) -> Result<&HashMap<String, i64>, Error> {
        if let Some(ids) = self.custom_ids.get() {
            return Ok(ids);
        }
        let mut ids = HashMap::new();
        let add = |ids: &mut HashMap<String, i64>, list: &Json, only_issues: bool| {
            for field in list.as_array().into_iter().flatten() {
                if only_issues && field["customized_type"] != "issue" {
                    continue;
                }
                if let (Some(name), Some(id)) = (field["name"].as_str(), field["id"].as_i64()) {
                    ids.entry(name.to_owned()).or_insert(id);
                }
            }
        };
        if let Some(scope) = &self.settings.project {
            let project = self.api.get(&format!("/projects/{}.json?include=issue_custom_fields", encode(scope)), READ)?;
            add(&mut ids, &project["project"]["issue_custom_fields"], false);
        }
        if self.custom.iter().any(|c| !ids.contains_key(&c.name)) {
            match self.api.get("/custom_fields.json", Purpose { action: "list custom fields", permission: "admin" }) {
                Ok(all) => add(&mut ids, &all["custom_fields"], true),
                Err(error) if error.problem().code == "missing-permission" => {}
                Err(error) => return Err(error),
            }
        }
        Ok(self.custom_ids.get_or_init(|| ids))
    }

    fn custom_id(&self, name: &str) -> Result<i64, Error> {
        self.custom_field_ids()?.get(name).copied().ok_or_else(|| {
            Error::new("unknown-custom-field", format!("Redmine has no issue custom field `{name}` that this account can see"))
                .with_hint(format!(
                    "create it in Redmine (Administration > Custom fields > New custom field > Issues) for the project and its trackers, or correct [endpoints.{}.settings] issue_custom_fields",
                    self.endpoint
                ))
        })
    }

    /// Redmine ignores a custom field that is not enabled for the issue's
    /// tracker or project: an update that set one and reads it back empty says so.
    fn check_custom_values_kept(&self, change: &Change, updated: &Record) -> Result<(), Error> {
        for field in &change.fields {
            let is_custom = self.custom.iter().any(|c| c.name == field.name);
            if is_custom && field.value != Value::Null && updated.fields.iter().any(|f| f.name == field.name && f.value == Value::Null) {
                return Err(Error::new(
                    "custom-field-not-kept",
                    format!("Redmine did not keep `{}` on issue {}: the custom field is not enabled for the issue's tracker or project", field.name, updated.id),
                )
                .with_hint(format!("in Redmine, tick the issue's tracker and the project in the settings of custom field `{}` (Administration > Custom fields)", field.name)));
            }
        }
        Ok(())
    }

    /// A project made from another system's record: a place under the scoped
    /// project, and an identifier from its name (prefixed with the scoped
    /// project's) when it has none. Returns whether the identifier was made here.
    fn complete_new_project(&self, body: &mut Json) -> Result<bool, Error> {
        let project = &mut body["project"];
        if project.get("parent_id").is_none_or(Json::is_null) {
            if let Some(id) = self.scope_id()? {
                project["parent_id"] = id;
            }
        }
        if project.get("identifier").is_none_or(Json::is_null) {
            let name = project.get("name").and_then(Json::as_str).unwrap_or("");
            let name = match &self.settings.project {
                Some(scope) => format!("{scope} {name}"),
                None => name.to_owned(),
            };
            project["identifier"] = Json::String(identifier_from(&name));
            return Ok(true);
        }
        Ok(false)
    }
}

/// A Redmine project identifier from a name: lower-case letters, digits and
/// dashes, starting with a letter, at most 100 characters.
fn identifier_from(name: &str) -> String {
    let mut identifier = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            identifier.push(c);
        } else if !identifier.ends_with('-') && !identifier.is_empty() {
            identifier.push('-');
        }
    }
    let mut identifier = identifier.trim_end_matches('-').to_owned();
    if !identifier.starts_with(|c: char| c.is_ascii_lowercase()) {
        identifier.insert_str(0, "p-");
    }
    identifier.truncate(100);
    identifier
}

export_connector!(Redmine);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_neither_asked_for_nor_there_before_is_someone_elses_edit() {
        let before = Record::new("912").with("comments", "step 62").with("hours", 4.0);
        // Someone wrote "step 78" right after the update asked for "step 75".
        let edited = vec![("comments".to_owned(), Value::from("step 75"), Value::from("step 78"))];
        assert!(changed_meanwhile(&edited, &before));
        // Redmine ignored the value: it still holds the one from before.
        let ignored = vec![("comments".to_owned(), Value::from("step 75"), Value::from("step 62"))];
        assert!(!changed_meanwhile(&ignored, &before));
    }

    use super::identifier_from;

    #[test]
    fn identifiers_follow_redmines_rules() {
        assert_eq!(identifier_from("Website Relaunch 2027"), "website-relaunch-2027");
        assert_eq!(identifier_from("  Äpfel & Birnen!"), "pfel-birnen");
        assert_eq!(identifier_from("2027 plan"), "p-2027-plan");
    }
}

/// A value as a person reads it in a message.
fn show(value: &Value) -> String {
    match value {
        Value::Null => "nothing".to_owned(),
        other => format!("{:?}", other.to_display_string()),
    }
}
