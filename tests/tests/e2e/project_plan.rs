//! A project plan (MS Project XML) and a real Redmine: publishing flagged
//! tasks, team updates parked in the approval queue, approved ones written
//! into the plan (which MPXJ, a third-party reader, still opens and reads),
//! rejected ones noted in the Redmine issue's journal.

use serde_json::{json, Value};
use synchost::engine::{Engine, Mode};
use synchost_tests::redmine::{unique, Redmine};
use synchost_tests::Scene;

pub(crate) const PLAN: &str = include_str!("../../../examples/project-plan/plans/office-move.xml");

/// Redmine's tracker ids by name.
pub(crate) async fn trackers(redmine: &Redmine) -> std::collections::HashMap<String, i64> {
    let list = redmine.get("/trackers.json").await;
    list["trackers"].as_array().unwrap().iter().map(|t| (t["name"].as_str().unwrap().to_owned(), t["id"].as_i64().unwrap())).collect()
}

pub(crate) fn config(redmine: &Redmine, project: &str, trackers: &std::collections::HashMap<String, i64>) -> String {
    format!(
        r#"
[endpoints.plan]
plugin = "project-plan"
grants.files.plans = {{ path = "plans" }}
settings = {{ folder = "plans", file = "office-move.xml" }}

[endpoints.redmine]
plugin = "redmine"
grants.http.allow = ["{origin}"]
limits.timeout = "120s"
settings = {{ url = "{url}", api_key = "{key}", project = "{project}", timeout_ms = 5000, issue_custom_fields = {{ "Plan work" = "float", "Plan finish" = "date" }} }}

# The plan's work item types and Redmine's trackers: a type not listed is not published.
[mappers.work-rules]
plugin = "crm-mapper"
settings = {{ lookups = {{ work_item_type = {{ Feature = {feature}, Task = {support}, Bug = {bug} }} }} }}

[pipelines.people]
category = "project plan"
left = {{ endpoint = "plan", entity = "resources" }}
right = {{ endpoint = "redmine", entity = "members" }}
create = "off"
match_on = ["email"]
fields = {{ email = {{ right = "mail", direction = "off" }} }}

[pipelines.work]
category = "project plan"
right = {{ endpoint = "redmine", entity = "issues" }}
mapper = "work-rules"
conflict = "left-wins"
deletes = "ignore"
approval = {{ direction = "right-to-left", note_field = "notes" }}

[pipelines.work.left]
endpoint = "plan"
entity = "tasks"
where = {{ publish = true }}

[pipelines.work.left.checks]
assignments = {{ at_most = 1, hint = "keep one resource on the task" }}
unpublished_predecessors = {{ empty = true, hint = "publish the tasks it depends on with it" }}

[pipelines.work.fields]
name = {{ right = "subject" }}
start = {{ right = "start_date" }}
finish = {{ right = "due_date" }}
work = {{ right = "estimated_hours" }}
percent_complete = {{ right = "done_ratio" }}
parent_id = {{ right = "parent_issue_id", references = "work", frozen = true }}
resource_id = {{ right = "assigned_to_id", references = "people" }}
work_item_type = {{ right = "tracker_id", frozen = true }}
"#,
        origin = redmine.origin(),
        url = redmine.url,
        key = redmine.key,
        feature = trackers["Feature"],
        support = trackers["Support"],
        bug = trackers["Bug"],
    )
}

pub(crate) struct Setup {
    pub scene: Scene,
    pub engine: Engine,
    pub redmine: Redmine,
    pub project: String,
    /// The plan as the test started it.
    pub plan: String,
    /// The Redmine users of the plan's resources: Alice (a member of the
    /// project) and Bob (who is not).
    pub alice: i64,
    pub bob: i64,
}

/// A project, two users, and the example plan with the users' addresses.
/// Alice is a member of the project, Bob only when `bob_is_member`; `edit`
/// changes the test's config.
pub(crate) async fn setup_with(bob_is_member: bool, edit: fn(String) -> String) -> Setup {
    let redmine = Redmine::connect().await;
    let (project_id, project) = redmine.project(&unique("Office move"), None).await;
    let (alice, alice_login, _) = redmine.user().await;
    let (bob, bob_login, _) = redmine.user().await;
    redmine.member(project_id, alice, "Observer").await;
    if bob_is_member {
        redmine.member(project_id, bob, "Observer").await;
    }
    let plan = PLAN.replace("alice@example.com", &format!("{alice_login}@example.test")).replace("bob@example.com", &format!("{bob_login}@example.test"));
    let scene = Scene::new();
    std::fs::create_dir(scene.path("plans")).unwrap();
    std::fs::write(scene.path("plans/office-move.xml"), &plan).unwrap();
    let engine = scene.engine(&edit(config(&redmine, &project, &trackers(&redmine).await)));
    let report = engine.run("people", "test", Mode::Apply).await.unwrap();
    assert_eq!(report.counts.failed, 0);
    Setup { scene, engine, redmine, project, plan, alice, bob }
}

pub(crate) async fn setup() -> Setup {
    setup_with(true, |config| config).await
}

/// The plan file's text. A write by the plugin moves the plan aside for a
/// moment before the new one takes its name (a save made meanwhile is then
/// found and kept): a read in that moment is tried again.
pub(crate) fn plan_text(scene: &Scene) -> String {
    let path = scene.path("plans/office-move.xml");
    for _ in 0..100 {
        match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::thread::sleep(std::time::Duration::from_millis(20)),
            other => return other.unwrap(),
        }
    }
    panic!("the plan {} stayed missing for 2 s: a write left it aside", path.display())
}

/// The plan as MPXJ reads it (`scripts/mpxj install` puts MPXJ in target/).
pub(crate) fn read_with_mpxj(scene: &Scene) -> Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("target/mpxj-venv/bin/python");
    assert!(python.exists(), "this test reads plans with MPXJ, which is not installed: run `scripts/mpxj install` (or scripts/test)");
    let output = std::process::Command::new(python)
        .arg(root.join("scripts/mpxj-read.py"))
        .arg(scene.path("plans/office-move.xml"))
        .output()
        .expect("run MPXJ");
    assert!(output.status.success(), "MPXJ could not read the plan: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

pub(crate) fn mpxj_task<'v>(plan: &'v Value, name: &str) -> &'v Value {
    plan["tasks"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no task {name} in {plan}"))
}

pub(crate) async fn issues(redmine: &Redmine, project: &str) -> Vec<Value> {
    let list = redmine.get(&format!("/projects/{project}/issues.json?status_id=*&limit=100")).await;
    list["issues"].as_array().cloned().unwrap_or_default()
}

pub(crate) fn issue<'v>(issues: &'v [Value], subject: &str) -> &'v Value {
    issues.iter().find(|i| i["subject"] == subject).unwrap_or_else(|| panic!("no issue {subject}"))
}

pub(crate) async fn run(engine: &Engine) -> synchost::engine::RunReport {
    engine.run("work", "test", Mode::Apply).await.unwrap_or_else(|e| panic!("work: {e}"))
}

// Covers: P1, P2, P6, P7, P12
#[tokio::test(flavor = "multi_thread")]
async fn published_tasks_go_to_redmine_and_team_updates_reach_the_plan_once_approved() {
    let Setup { scene, engine, redmine, project, plan, alice, bob } = setup().await;

    // Publish: the flagged tasks become issues, level by level (a child goes
    // once its parent is linked); the unflagged task stays in the plan only.
    run(&engine).await;
    run(&engine).await;
    let published = issues(&redmine, &project).await;
    assert_eq!(published.len(), 4, "{published:?}");
    assert!(published.iter().all(|i| i["subject"] != "Sign the lease extension"));
    let parent = issue(&published, "New office ready")["id"].clone();
    let cabling = issue(&published, "Network cabling");
    assert_eq!(cabling["parent"]["id"], parent);
    assert_eq!(cabling["estimated_hours"], 24.0);
    assert_eq!(cabling["start_date"], "2026-11-02");
    // The assignee is the Redmine member the plan's resource is linked to.
    assert_eq!(cabling["assigned_to"]["id"], alice);
    assert_eq!(issue(&published, "Move the servers")["assigned_to"]["id"], bob);
    assert_eq!(engine.state.link_count("work").unwrap(), 4);
    // Publishing changed nothing in the plan file.
    assert_eq!(plan_text(&scene), plan);
    // Nothing waits for approval: the issues Redmine made are our own writes.
    assert!(engine.state.approvals(Some("work"), false).unwrap().is_empty());

    // Status: the team re-estimates an issue; the change waits for approval.
    let cabling_id = cabling["id"].as_i64().unwrap();
    redmine.put(&format!("/issues/{cabling_id}.json"), json!({"issue": {"estimated_hours": 30, "due_date": "2026-11-05"}})).await;
    assert_eq!(run(&engine).await.counts.queued, 1);
    let queue = engine.state.approvals(Some("work"), false).unwrap();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert!(queue[0].summary.contains("work: 24 -> 30"), "{}", queue[0].summary);
    assert!(queue[0].summary.contains("finish: 2026-11-04 -> 2026-11-05"), "{}", queue[0].summary);
    assert_eq!(plan_text(&scene), plan, "nothing is written before approval");
    // Running again neither writes it nor queues it twice.
    assert_eq!(run(&engine).await.counts.queued, 0);
    assert_eq!(engine.state.approvals(Some("work"), false).unwrap().len(), 1);

    // Approval: written into the plan, which MPXJ reads with the new values.
    let outcome = engine.decide_approval(queue[0].id, Some(queue[0].revision), true, "pm", None).await.unwrap();
    assert!(outcome.contains("written to the left record"), "{outcome}");
    let text = plan_text(&scene);
    assert!(text.contains("<Work>PT30H0M0S</Work>"), "{text}");
    assert!(text.contains("<Finish>2026-11-05T17:00:00</Finish>"));
    // Only the approved values changed: the rest of the file is as it was.
    assert_eq!(text.replace("<Work>PT30H0M0S</Work>", "<Work>PT24H0M0S</Work>").replace("<Finish>2026-11-05T17:00:00</Finish>", "<Finish>2026-11-04T17:00:00</Finish>"), plan);
    let read = read_with_mpxj(&scene);
    let task = mpxj_task(&read, "Network cabling");
    assert_eq!(task["work"], 30.0);
    assert_eq!(task["finish"], "2026-11-05T17:00");
    assert_eq!(task["resources"], json!(["Alice Smith"]));
    // The plan's write is not read back as a change for Redmine.
    let report = run(&engine).await;
    assert_eq!(report.counts.updated + report.counts.created, 0, "{:?}", report.plan);
    let all = engine.state.approvals(Some("work"), true).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, "approved");
    assert!(all[0].applied_at.is_some());
    // The children that waited for their parent in the first run went through.
    assert!(engine.state.failed(Some("work")).unwrap().is_empty());
}

// Covers: P2, P12
#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_update_is_noted_in_the_redmine_journal_and_not_proposed_again() {
    let Setup { scene, engine, redmine, project, plan, .. } = setup().await;
    run(&engine).await;
    run(&engine).await;
    let furniture = issue(&issues(&redmine, &project).await, "Furniture delivery")["id"].as_i64().unwrap();
    redmine.put(&format!("/issues/{furniture}.json"), json!({"issue": {"subject": "Furniture delivery and assembly"}})).await;
    run(&engine).await;
    let queue = engine.state.approvals(Some("work"), false).unwrap();
    assert_eq!(queue.len(), 1, "{queue:?}");

    let outcome = engine.decide_approval(queue[0].id, Some(queue[0].revision), false, "pm", Some("assembly is a separate task")).await.unwrap();
    assert!(outcome.contains("noted on the right record"), "{outcome}");
    let journal = redmine.get(&format!("/issues/{furniture}.json?include=journals")).await;
    let notes: Vec<&str> = journal["issue"]["journals"].as_array().unwrap().iter().filter_map(|j| j["notes"].as_str()).collect();
    let note = notes.iter().find(|n| n.contains("rejected")).unwrap_or_else(|| panic!("no rejection note in {notes:?}"));
    assert!(note.contains("name: Furniture delivery -> Furniture delivery and assembly"), "{note}");
    assert!(note.contains("pm"), "{note}");
    assert!(note.contains("assembly is a separate task"), "{note}");
    // The plan kept its value; the same proposal does not come back.
    assert_eq!(plan_text(&scene), plan);
    run(&engine).await;
    assert!(engine.state.approvals(Some("work"), false).unwrap().is_empty());
    let all = engine.state.approvals(Some("work"), true).unwrap();
    assert_eq!((all[0].status.as_str(), all[0].comment.as_deref()), ("rejected", Some("assembly is a separate task")));
}

// Covers: P8, P9, P11
#[tokio::test(flavor = "multi_thread")]
async fn a_task_assigned_to_someone_outside_the_redmine_project_is_not_published_and_says_why() {
    let Setup { scene, engine, redmine, project, plan, bob, .. } = setup_with(false, |config| config).await;
    run(&engine).await;
    run(&engine).await;
    let published = issues(&redmine, &project).await;
    assert_eq!(published.len(), 3, "all but Bob's task: {published:?}");
    let failed = engine.state.failed(Some("work")).unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].source_id, "4");
    // The message names the person; the fix is one that works for `people`,
    // which links by e-mail address and creates nobody.
    assert!(failed[0].reason.contains("resource_id") && failed[0].reason.contains("\"Bob Jones\"") && failed[0].reason.contains("pipeline `people`"), "{}", failed[0].reason);
    let hint = failed[0].hint.as_deref().unwrap_or("");
    assert!(hint.contains("Add \"Bob Jones\"") && hint.contains("same email") && hint.contains("member of the project"), "{hint}");

    // Bob becomes a member: `people` links him on its next run (no --match),
    // and his task goes once `work`'s failed items are resubmitted.
    let project_id = redmine.get(&format!("/projects/{project}.json")).await["project"]["id"].as_i64().unwrap();
    redmine.member(project_id, bob, "Observer").await;
    engine.run("people", "test", Mode::Apply).await.unwrap();
    assert_eq!(engine.state.link_count("people").unwrap(), 2);
    engine.resubmit_failed("work", None, "test").await.unwrap();
    assert_eq!(issue(&issues(&redmine, &project).await, "Move the servers")["assigned_to"]["id"], bob);
    assert!(engine.state.failed(Some("work")).unwrap().is_empty());

    // The team assigns an issue to Bob, who is no plan resource of theirs: the
    // change is refused before it reaches the approval queue.
    let cabling = issue(&published, "Network cabling")["id"].as_i64().unwrap();
    let (outsider, _, _) = redmine.user().await;
    redmine.member(project_id, outsider, "Observer").await;
    redmine.put(&format!("/issues/{cabling}.json"), json!({"issue": {"assigned_to_id": outsider}})).await;
    let report = run(&engine).await;
    assert_eq!(report.counts.queued, 0);
    assert!(engine.state.failed(Some("work")).unwrap().iter().any(|f| f.source_id == cabling.to_string() && f.reason.contains("resource_id")));
    assert_eq!(plan_text(&scene), plan);
}

/// Edits the plan file as the planner would: the first `from` at or after the task's name becomes `to`.
pub(crate) fn edit_task(scene: &Scene, task: &str, from: &str, to: &str) {
    let text = plan_text(scene);
    let at = text.find(&format!("<Name>{task}</Name>")).unwrap();
    let (head, tail) = text.split_at(at);
    assert!(tail.contains(from), "no {from} after task {task}");
    std::fs::write(scene.path("plans/office-move.xml"), format!("{head}{}", tail.replacen(from, to, 1))).unwrap();
}

pub(crate) fn custom_value<'v>(issue: &'v Value, name: &str) -> &'v Value {
    let fields = issue["custom_fields"].as_array().unwrap_or_else(|| panic!("no custom fields in {issue}"));
    &fields.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no custom field {name} in {issue}"))["value"]
}

// Covers: P10
#[tokio::test(flavor = "multi_thread")]
async fn keep_both_keeps_the_teams_estimate_beside_the_plans_while_plan_wins_overwrites() {
    // Work: two sets of books, the plan's value in the custom field "Plan
    // work". Finish: the plan wins (the pipeline's left-wins policy).
    let Setup { scene, engine, redmine, project, .. } = setup_with(true, |config| {
        config.replace(
            r#"work = { right = "estimated_hours" }"#,
            r#"work = { right = "estimated_hours", direction = "left-to-right", mirror = { right = "Plan work", always = true } }"#,
        )
    })
    .await;
    run(&engine).await;
    run(&engine).await;
    let cabling = issue(&issues(&redmine, &project).await, "Network cabling").clone();
    let id = cabling["id"].as_i64().unwrap();
    // Published: both books start with the plan's value.
    assert_eq!(cabling["estimated_hours"], 24.0);
    assert_eq!(custom_value(&cabling, "Plan work"), "24.0");
    assert!(engine.mirror_diff("work").await.unwrap().is_empty());

    // The team re-estimates and moves the due date; the planner changes both too.
    redmine.put(&format!("/issues/{id}.json"), json!({"issue": {"estimated_hours": 30, "due_date": "2026-11-06"}})).await;
    edit_task(&scene, "Network cabling", "<Work>PT24H0M0S</Work>", "<Work>PT40H0M0S</Work>");
    edit_task(&scene, "Network cabling", "<Finish>2026-11-04T17:00:00</Finish>", "<Finish>2026-11-09T17:00:00</Finish>");
    run(&engine).await;
    let cabling = redmine.get(&format!("/issues/{id}.json")).await["issue"].clone();
    assert_eq!(cabling["estimated_hours"], 30.0, "keep both: the team's value stays");
    assert_eq!(custom_value(&cabling, "Plan work"), "40.0", "keep both: the plan's value in the mirror field");
    assert_eq!(cabling["due_date"], "2026-11-09", "plan wins: the plan's value overwrites the team's");
    let differences = engine.mirror_diff("work").await.unwrap();
    assert_eq!(differences.len(), 1, "{differences:?}");
    assert_eq!((differences[0].field.as_str(), differences[0].right_id.as_str()), ("work", id.to_string().as_str()));
    assert_eq!((differences[0].left_value.to_text(), differences[0].right_value.to_text()), ("40".to_owned(), "30".to_owned()));
    // The plan kept its own values: the team's estimate is not proposed to it.
    run(&engine).await;
    let task = mpxj_task(&read_with_mpxj(&scene), "Network cabling").clone();
    assert_eq!((task["work"].clone(), task["finish"].clone()), (json!(40.0), json!("2026-11-09T17:00")));
    assert!(engine.state.approvals(Some("work"), false).unwrap().iter().all(|a| !a.summary.contains("work:")));

    // The planner's next estimate goes to the mirror field again.
    edit_task(&scene, "Network cabling", "<Work>PT40H0M0S</Work>", "<Work>PT44H0M0S</Work>");
    run(&engine).await;
    let cabling = redmine.get(&format!("/issues/{id}.json")).await["issue"].clone();
    assert_eq!((cabling["estimated_hours"].clone(), custom_value(&cabling, "Plan work").clone()), (json!(30.0), json!("44.0")));
}

const PUBLISH_FLAG: &str = "<FieldID>188743752</FieldID>\n        <Value>";

/// Sets or clears a task's "Publish to team project" flag in the plan file.
fn flag(scene: &Scene, task: &str, publish: bool) {
    let (from, to) = if publish { ("0", "1") } else { ("1", "0") };
    edit_task(scene, task, &format!("{PUBLISH_FLAG}{from}</Value>"), &format!("{PUBLISH_FLAG}{to}</Value>"));
}

const TWO_ASSIGNMENTS: &str = "    <Assignment>\n      <UID>8</UID>\n      <TaskUID>3</TaskUID>\n      <ResourceUID>1</ResourceUID>\n    </Assignment>\n    <Assignment>\n      <UID>9</UID>\n      <TaskUID>3</TaskUID>\n      <ResourceUID>2</ResourceUID>\n    </Assignment>\n  </Assignments>";

// Covers: P8, P9
#[tokio::test(flavor = "multi_thread")]
async fn a_task_is_published_only_with_its_dependencies_and_one_assignment_and_stays_published() {
    let Setup { scene, engine, redmine, project, .. } = setup().await;
    // "Furniture delivery" depends on "Network cabling", which the planner
    // did not flag, and has two people assigned.
    flag(&scene, "Network cabling", false);
    let text = plan_text(&scene).replacen("  </Assignments>", TWO_ASSIGNMENTS, 1);
    std::fs::write(scene.path("plans/office-move.xml"), text).unwrap();
    run(&engine).await;
    run(&engine).await;
    let published = issues(&redmine, &project).await;
    let subjects: Vec<&str> = published.iter().filter_map(|i| i["subject"].as_str()).collect();
    assert_eq!(subjects.len(), 2, "the summary task and Move the servers: {subjects:?}");
    assert!(subjects.contains(&"Move the servers") && subjects.contains(&"New office ready"), "{subjects:?}");
    let failed = engine.state.failed(Some("work")).unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].source_id, "3");
    // Both violations together, each with its hint.
    assert!(failed[0].reason.contains("`assignments` is 2, at most 1 is allowed"), "{}", failed[0].reason);
    assert!(failed[0].reason.contains("`unpublished_predecessors` must be empty, but is 2 Network cabling"), "{}", failed[0].reason);
    let hint = failed[0].hint.clone().unwrap_or_default();
    assert!(hint.contains("keep one resource") && hint.contains("publish the tasks it depends on"), "{hint}");

    // The planner fixes both: the next runs publish the rest.
    flag(&scene, "Network cabling", true);
    let text = plan_text(&scene).replacen(TWO_ASSIGNMENTS, "  </Assignments>", 1);
    std::fs::write(scene.path("plans/office-move.xml"), text).unwrap();
    engine.resubmit_failed("work", None, "test").await.unwrap();
    run(&engine).await;
    assert_eq!(issues(&redmine, &project).await.len(), 4);
    assert!(engine.state.failed(Some("work")).unwrap().is_empty());

    // A published task stays published: clearing its flag fails it with the
    // fix, and its issue stays as it is.
    flag(&scene, "Move the servers", false);
    edit_task(&scene, "Move the servers", "<Name>Move the servers</Name>", "<Name>Move the servers twice</Name>");
    run(&engine).await;
    let failed = engine.state.failed(Some("work")).unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].reason.contains("`publish` is false, but the record is linked and stays in the pipeline's scope (where publish = true)"), "{}", failed[0].reason);
    assert!(failed[0].hint.as_deref().unwrap_or("").contains("set `publish` back to true"), "{:?}", failed[0].hint);
    assert!(issues(&redmine, &project).await.iter().any(|i| i["subject"] == "Move the servers"), "nothing of the un-flagged task was written");
}

/// Changes a task's work item type in the plan file, as the planner would.
fn set_type(scene: &Scene, task: &str, from: &str, to: &str) {
    let field = "<FieldID>188743731</FieldID>\n        <Value>";
    edit_task(scene, task, &format!("{field}{from}</Value>"), &format!("{field}{to}</Value>"));
}

// Covers: P5, P8
#[tokio::test(flavor = "multi_thread")]
async fn the_work_item_type_must_be_configured_and_cannot_change_after_publish() {
    let Setup { scene, engine, redmine, project, .. } = setup().await;
    let redmine_trackers = trackers(&redmine).await;
    // "Furniture delivery" gets a type the admin did not map.
    set_type(&scene, "Furniture delivery", "Task", "Epic");
    run(&engine).await;
    run(&engine).await;
    let failed = engine.state.failed(Some("work")).unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].source_id, "3");
    assert!(failed[0].reason.contains("`work_item_type` value `Epic` has no counterpart"), "{}", failed[0].reason);
    assert!(failed[0].hint.as_deref().unwrap_or("").contains("lookups.work_item_type"), "{:?}", failed[0].hint);
    let published = issues(&redmine, &project).await;
    assert_eq!(published.len(), 3);
    assert_eq!(issue(&published, "Network cabling")["tracker"]["id"], redmine_trackers["Support"]);
    assert_eq!(issue(&published, "New office ready")["tracker"]["id"], redmine_trackers["Feature"]);

    // A published task's type is frozen: changing it in the plan fails the task.
    set_type(&scene, "Network cabling", "Task", "Bug");
    run(&engine).await;
    let failed = engine.state.failed(Some("work")).unwrap();
    let cabling = failed.iter().find(|f| f.source_id == "2").expect("the re-typed task failed");
    assert!(cabling.reason.contains("cannot change once the record is linked (Task -> Bug)"), "{}", cabling.reason);
    assert_eq!(issue(&issues(&redmine, &project).await, "Network cabling")["tracker"]["id"], redmine_trackers["Support"]);
}

// Covers: P3, P2
#[tokio::test(flavor = "multi_thread")]
async fn a_three_level_hierarchy_from_redmine_reaches_the_plan_one_approved_level_at_a_time() {
    let Setup { scene, engine, redmine, project, .. } = setup().await;
    run(&engine).await;
    run(&engine).await;
    // The team adds a feature with a story and a task under it.
    let feature = redmine.post("/issues.json", json!({"issue": {"project_id": project, "subject": "Meeting rooms"}})).await["issue"]["id"].clone();
    let story = redmine.post("/issues.json", json!({"issue": {"project_id": project, "subject": "Room booking", "parent_issue_id": feature}})).await["issue"]["id"].clone();
    redmine.post("/issues.json", json!({"issue": {"project_id": project, "subject": "Booking screens", "parent_issue_id": story, "estimated_hours": 6}})).await;

    for (round, name) in ["Meeting rooms", "Room booking", "Booking screens"].into_iter().enumerate() {
        run(&engine).await;
        let queue = engine.state.approvals(Some("work"), false).unwrap();
        assert_eq!(queue.len(), 1, "round {round}: only the next level waits: {queue:?}");
        assert!(queue[0].summary.starts_with("new record") && queue[0].summary.contains(name), "{}", queue[0].summary);
        // The approval links the level and resubmits what waited for it: no `failed retry`.
        engine.decide_approval(queue[0].id, Some(queue[0].revision), true, "pm", None).await.unwrap();
    }
    let read = read_with_mpxj(&scene);
    let rooms = mpxj_task(&read, "Meeting rooms");
    let booking = mpxj_task(&read, "Room booking");
    let screens = mpxj_task(&read, "Booking screens");
    assert_eq!(rooms["outline_level"], 1);
    assert_eq!((booking["parent"].clone(), booking["outline_level"].clone()), (rooms["uid"].clone(), json!(2)));
    assert_eq!((screens["parent"].clone(), screens["outline_level"].clone()), (booking["uid"].clone(), json!(3)));
    assert_eq!(screens["work"], 6.0);
    assert!(screens["publish"].as_bool().unwrap(), "tasks made from work items are published");
    // IDs stay row numbers after the insertions.
    let ids: Vec<i64> = read["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>());

    // The hierarchy of linked items cannot change: the team moving the task
    // under the feature fails before it reaches the approval queue.
    let screens_issue = issue(&issues(&redmine, &project).await, "Booking screens")["id"].as_i64().unwrap();
    redmine.put(&format!("/issues/{screens_issue}.json"), json!({"issue": {"parent_issue_id": feature}})).await;
    run(&engine).await;
    // (The story it left is a leaf now: the dates Redmine derived for it
    // become its own values, a change for the plan's owner to see.)
    let queue = engine.state.approvals(Some("work"), false).unwrap();
    assert!(queue.iter().all(|a| a.source_id != screens_issue.to_string()), "{queue:?}");
    let failed = engine.state.failed(Some("work")).unwrap();
    let moved = failed.iter().find(|f| f.source_id == screens_issue.to_string()).unwrap_or_else(|| panic!("{failed:?}"));
    assert!(moved.reason.contains("`parent_issue_id` cannot change once the record is linked"), "{}", moved.reason);
}

pub(crate) fn plan_only(scene: &Scene, read_only: bool) -> synchost::catalog::Catalog {
    std::fs::create_dir_all(scene.path("plans")).unwrap();
    scene.load(&format!(
        r#"
[endpoints.plan]
plugin = "project-plan"
grants.files.plans = {{ path = "plans", read_only = {read_only} }}
settings = {{ folder = "plans", file = "office-move.xml" }}
"#
    ))
}

pub(crate) fn rename(id: &str, name: &str) -> synchost::model::Change {
    use synchost::model::{Change, ChangeKind, Field, Value};
    Change {
        origin: "test".into(),
        target_id: Some(id.into()),
        expected_version: None,
        kind: ChangeKind::Upsert,
        repeated: false,
        on_behalf_of: None,
        fields: vec![Field { name: "name".into(), value: Value::Text(name.into()) }],
    }
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_plan_file_is_named_with_its_line_and_left_as_it_was() {
    let scene = Scene::new();
    let catalog = plan_only(&scene, false);
    let broken = PLAN.replacen("</Tasks>", "</Task>", 1);
    std::fs::write(scene.path("plans/office-move.xml"), &broken).unwrap();
    let plan = synchost_tests::instance(&catalog, "plan");
    let error = plan.read("tasks", None, 100).await.unwrap_err().to_string();
    assert!(error.contains("not well-formed XML at line"), "{error}");
    let error = plan.write("tasks", &[rename("2", "Cabling")]).await.unwrap_err().to_string();
    assert!(error.contains("not well-formed"), "{error}");
    assert_eq!(std::fs::read_to_string(scene.path("plans/office-move.xml")).unwrap(), broken);

    // A missing plan names the file, the folder grant and the fix.
    std::fs::remove_file(scene.path("plans/office-move.xml")).unwrap();
    let error = plan.read("tasks", None, 100).await.unwrap_err();
    assert!(error.to_string().contains("cannot read the plan `office-move.xml`"), "{error}");
    assert!(error.hint().unwrap_or_default().contains("grants.files.plans"), "{:?}", error.hint());
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_folder_grant_lets_the_plan_be_read_but_not_written() {
    let scene = Scene::new();
    let catalog = plan_only(&scene, true);
    std::fs::write(scene.path("plans/office-move.xml"), PLAN).unwrap();
    let plan = synchost_tests::instance(&catalog, "plan");
    let tasks = plan.read("tasks", None, 100).await.unwrap().records;
    assert_eq!(tasks.len(), 5);
    let error = plan.write("tasks", &[rename("2", "Cabling")]).await.unwrap_err();
    assert!(error.to_string().contains("cannot write the plan"), "{error}");
    assert!(error.hint().unwrap_or_default().contains("read_only = false"), "{:?}", error.hint());
    assert_eq!(std::fs::read_to_string(scene.path("plans/office-move.xml")).unwrap(), PLAN);
    // The plugin sees only its folder: nothing next to the plan is written.
    assert_eq!(std::fs::read_dir(scene.path("plans")).unwrap().count(), 1);
}

// Covers: P7, C9
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_tasks_uid_is_never_given_to_a_new_task() {
    use synchost::model::{Change, ChangeKind, Field, Outcome, Value};
    let scene = Scene::new();
    let catalog = plan_only(&scene, false);
    std::fs::write(scene.path("plans/office-move.xml"), PLAN).unwrap();
    let plan = synchost_tests::instance(&catalog, "plan");
    let create = |name: &str| Change {
        origin: format!("test/{name}"),
        target_id: None,
        expected_version: None,
        kind: ChangeKind::Upsert,
        repeated: false,
        on_behalf_of: None,
        fields: vec![Field { name: "name".into(), value: Value::Text(name.into()) }],
    };
    let uid_of = |outcomes: Vec<Outcome>| match &outcomes[0] {
        Outcome::Applied(applied) => applied.id.parse::<i64>().unwrap(),
        other => panic!("{other:?}"),
    };
    let first = uid_of(plan.write("tasks", &[create("Signage")]).await.unwrap());
    // The planner deletes the new task again, in the plan.
    let text = std::fs::read_to_string(scene.path("plans/office-move.xml")).unwrap();
    let marker = format!("<UID>{first}</UID>");
    let at = text.find(&marker).unwrap();
    let start = text[..at].rfind("<Task>").unwrap();
    let end = at + text[at..].find("</Task>").unwrap() + "</Task>".len();
    std::fs::write(scene.path("plans/office-move.xml"), format!("{}{}", &text[..start], &text[end..])).unwrap();
    assert!(!plan.read("tasks", None, 100).await.unwrap().records.iter().any(|r| r.id == first.to_string()));
    let second = uid_of(plan.write("tasks", &[create("Keys")]).await.unwrap());
    assert!(second > first, "a new task got {second}, the deleted one had {first}");
    // Nothing of synchronisation's is left beside the plan but the UID mark.
    let names: Vec<String> = std::fs::read_dir(scene.path("plans")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

// Covers: P7
#[tokio::test(flavor = "multi_thread")]
async fn a_second_writer_waits_for_the_plans_lock() {
    let scene = Scene::new();
    let catalog = plan_only(&scene, false);
    std::fs::write(scene.path("plans/office-move.xml"), PLAN).unwrap();
    std::fs::write(scene.path("plans/.office-move.xml.synchost-lock"), "").unwrap();
    let plan = synchost_tests::instance(&catalog, "plan");
    let error = plan.write("tasks", &[rename("2", "Cabling")]).await.unwrap_err();
    assert_eq!(error.problem().map(|p| p.code.as_str()), Some("plan-locked"), "{error}");
    assert!(error.retryable());
    assert_eq!(std::fs::read_to_string(scene.path("plans/office-move.xml")).unwrap(), PLAN);
    std::fs::remove_file(scene.path("plans/.office-move.xml.synchost-lock")).unwrap();
    plan.write("tasks", &[rename("2", "Cabling")]).await.expect("written once the lock is gone");
}

// Covers: H1
#[test]
fn a_granted_folder_that_does_not_exist_is_a_config_error_with_the_fix() {
    let scene = Scene::new();
    let path = scene.write_config(
        r#"
[endpoints.plan]
plugin = "project-plan"
grants.files.plans = { path = "no-such-folder" }
settings = { folder = "plans", file = "office-move.xml" }
"#,
    );
    let error = synchost::config::LoadedConfig::load(&path).unwrap_err().to_string();
    assert!(error.contains("[endpoints.plan.grants.files.plans] path"), "{error}");
    assert!(error.contains("is not a folder"), "{error}");
    assert!(error.contains("create the folder"), "{error}");
}
