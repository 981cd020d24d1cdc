//! The sync engine through the real host, the sql-table plugin and real SQLite
//! files: per-field directions, every conflict policy, deletes, failed items,
//! and convergence under random edits.

use synchost::engine::{Engine, Mode, Resolution};
use synchost::config::Side;
use synchost_tests::Scene;

pub(crate) const TABLE: &str = "CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT,
    phone TEXT,
    status TEXT,
    notes TEXT,
    phone_other TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    record_status TEXT NOT NULL DEFAULT 'active',
    origin TEXT UNIQUE
);";

pub(crate) fn endpoints(soft_delete_right: bool) -> String {
    let right_delete = if soft_delete_right { ", soft_delete = { column = \"record_status\" }" } else { "" };
    format!(
        r#"
[endpoints.hq]
plugin = "sql-table"
grants.sql.db = {{ dsn = "sqlite:hq.sqlite" }}
settings = {{ connection = "db", entities = {{ contacts = {{ updated_at = "updated_at", soft_delete = {{ column = "record_status" }}, origin = "origin" }} }} }}

[endpoints.branch]
plugin = "sql-table"
grants.sql.db = {{ dsn = "sqlite:branch.sqlite" }}
settings = {{ connection = "db", entities = {{ contacts = {{ updated_at = "updated_at", origin = "origin"{right_delete} }} }} }}
"#
    )
}

fn scene(pipeline: &str) -> (Scene, Engine) {
    scene_with(pipeline, true)
}

fn scene_with(pipeline: &str, soft_delete_right: bool) -> (Scene, Engine) {
    let scene = Scene::new();
    scene.database("hq.sqlite", TABLE);
    scene.database("branch.sqlite", TABLE);
    let engine = scene.engine(&format!("{}\n{pipeline}", endpoints(soft_delete_right)));
    (scene, engine)
}

async fn sync(engine: &Engine) -> synchost::engine::RunReport {
    engine.run("p", "test", Mode::Apply).await.unwrap_or_else(|e| panic!("run failed: {e}"))
}

/// Edits a row as a user would, stamping the change time (explicitly, so tests control the order).
fn edit(scene: &Scene, db: &str, id: i64, set: &str, at: &str) {
    scene.sql(db, &format!("UPDATE contacts SET {set}, updated_at = '{at}' WHERE id = {id}"));
}

const BOTH_WAYS: &str = r#"
[pipelines.p]
left = { endpoint = "hq", entity = "contacts" }
right = { endpoint = "branch", entity = "contacts" }
conflict = "left-wins"
fields = { name = {}, phone = {}, status = {} }
"#;

// Covers: C1, C2, C5, C9
#[tokio::test(flavor = "multi_thread")]
async fn each_field_flows_only_in_its_direction() {
    let (scene, engine) = scene(
        r#"
[pipelines.p]
left = { endpoint = "hq", entity = "contacts" }
right = { endpoint = "branch", entity = "contacts" }
conflict = "left-wins"
[pipelines.p.fields]
name = {}
phone = { right = "phone_other", direction = "left-to-right" }
status = { direction = "right-to-left" }
notes = { direction = "off" }
"#,
    );
    scene.sql("hq.sqlite", "INSERT INTO contacts (name, phone, status, notes) VALUES ('Ada', '030 1', 'A', 'hq note')");
    sync(&engine).await;
    // Created on the right with its own id; status flows only right to left, notes never.
    assert_eq!(scene.rows("branch.sqlite", "SELECT id, name, phone, phone_other, status, notes, origin FROM contacts"), ["1|Ada|∅|030 1|∅|∅|p/left/1"]);

    edit(&scene, "branch.sqlite", 1, "name = 'Ada L.', phone_other = '999', status = 'L', notes = 'branch note'", "2030-01-01T00:00:01Z");
    edit(&scene, "hq.sqlite", 1, "phone = '030 2'", "2030-01-01T00:00:02Z");
    sync(&engine).await;
    assert_eq!(scene.rows("hq.sqlite", "SELECT name, phone, status, notes FROM contacts"), ["Ada L.|030 2|L|hq note"]);
    // The right's own edit of a left-to-right field stays until the left changes it again: here it did.
    assert_eq!(scene.rows("branch.sqlite", "SELECT name, phone_other, status, notes FROM contacts"), ["Ada L.|030 2|L|branch note"]);

    // The system ids never cross: each side kept its own numbering.
    scene.sql("branch.sqlite", "INSERT INTO contacts (id, name) VALUES (50, 'Branch only')");
    sync(&engine).await;
    assert_eq!(scene.rows("hq.sqlite", "SELECT id, name, origin FROM contacts ORDER BY id"), ["1|Ada L.|∅", "2|Branch only|p/right/50"]);
}

/// One conflicting edit on both sides, the left one earlier, under a policy.
async fn conflict_under(policy: &str) -> (Scene, Engine) {
    let (scene, engine) = scene(&format!(
        r#"
[pipelines.p]
left = {{ endpoint = "hq", entity = "contacts" }}
right = {{ endpoint = "branch", entity = "contacts" }}
conflict = "{policy}"
[pipelines.p.fields]
name = {{}}
phone = {{ conflict = "{policy}"{mirror} }}
"#,
        // Mirror fields are for the mirror policy only (elsewhere never written: a config error).
        mirror = if policy == "mirror" { r#", mirror = { left = "phone_other", right = "phone_other" }"# } else { "" },
    ));
    scene.sql("hq.sqlite", "INSERT INTO contacts (name, phone) VALUES ('Ada', '030 0')");
    sync(&engine).await;
    edit(&scene, "hq.sqlite", 1, "phone = 'left'", "2030-01-01T00:00:01Z");
    edit(&scene, "branch.sqlite", 1, "phone = 'right'", "2030-01-01T00:00:02Z");
    sync(&engine).await;
    (scene, engine)
}

fn phones(scene: &Scene) -> (String, String) {
    let left = scene.rows("hq.sqlite", "SELECT phone FROM contacts").join("");
    let right = scene.rows("branch.sqlite", "SELECT phone FROM contacts").join("");
    (left, right)
}

// Covers: C8, H6, L1, P10
#[tokio::test(flavor = "multi_thread")]
async fn every_conflict_policy_decides_as_documented() {
    for (policy, expected) in [
        ("left-wins", ("left", "left")),
        ("right-wins", ("right", "right")),
        ("last-writer-wins", ("right", "right")),
        ("first-writer-wins", ("left", "left")),
        ("mirror", ("left", "right")),
    ] {
        let (scene, engine) = conflict_under(policy).await;
        assert_eq!(phones(&scene), (expected.0.to_owned(), expected.1.to_owned()), "policy {policy}");
        let history = engine.state.history("p", None, 50).unwrap();
        assert!(history.iter().any(|h| h.rule.contains(policy)), "policy {policy} is in the history: {history:#?}");
        // A second run changes nothing: the policy's outcome is stable.
        let again = sync(&engine).await;
        assert_eq!((again.counts.updated, again.counts.conflicts), (0, 0), "policy {policy}");
        assert_eq!(phones(&scene), (expected.0.to_owned(), expected.1.to_owned()), "policy {policy}");
        if policy == "mirror" {
            // Two sets of books: each side keeps its value and sees the other's,
            // and the items where they differ can be listed.
            assert_eq!(scene.rows("hq.sqlite", "SELECT phone_other FROM contacts"), ["right"]);
            assert_eq!(scene.rows("branch.sqlite", "SELECT phone_other FROM contacts"), ["left"]);
            let differences = engine.mirror_diff("p").await.unwrap();
            assert_eq!(differences.len(), 1);
            assert_eq!((differences[0].left_id.as_str(), differences[0].field.as_str()), ("1", "phone"));
        }
        if policy == "first-writer-wins" {
            assert!(history.iter().any(|h| h.message.as_deref().is_some_and(|m| m.contains("must refresh"))), "{history:#?}");
        }
    }
}

// Covers: H6, C7
#[tokio::test(flavor = "multi_thread")]
async fn manual_conflicts_wait_for_an_admin() {
    let (scene, engine) = conflict_under("manual").await;
    assert_eq!(phones(&scene), ("left".to_owned(), "right".to_owned()), "nothing is overwritten");
    let open = engine.state.conflicts(Some("p"), true).unwrap();
    assert_eq!(open.len(), 1, "one conflict, however often it is seen");
    assert_eq!(open[0].field, "phone");
    sync(&engine).await;
    assert_eq!(engine.state.conflicts(Some("p"), true).unwrap().len(), 1);

    engine.resolve_conflict(open[0].id, Resolution::Value(synchost::model::Value::Text("agreed".into())), "alice").await.unwrap();
    assert_eq!(phones(&scene), ("agreed".to_owned(), "agreed".to_owned()));
    assert!(engine.state.conflicts(Some("p"), true).unwrap().is_empty());
    let report = sync(&engine).await;
    assert_eq!((report.counts.updated, report.counts.conflicts), (0, 0));
    let history = engine.state.history("p", Some("left:1"), 50).unwrap();
    assert!(history.iter().any(|h| h.action == "resolve" && h.rule == "admin alice"), "{history:#?}");
}

// Covers: C8
#[tokio::test(flavor = "multi_thread")]
async fn soft_deletes_propagate_as_tombstones_and_never_resurrect() {
    let (scene, engine) = scene(BOTH_WAYS);
    scene.sql("hq.sqlite", "INSERT INTO contacts (name) VALUES ('Ada'), ('Grace')");
    sync(&engine).await;
    edit(&scene, "hq.sqlite", 1, "record_status = 'deleted'", "2030-01-01T00:00:01Z");
    let report = sync(&engine).await;
    assert_eq!(report.counts.deleted, 1);
    assert_eq!(scene.rows("branch.sqlite", "SELECT name, record_status FROM contacts ORDER BY id"), ["Ada|deleted", "Grace|active"]);
    // Editing the tombstone on the other side does not bring the record back.
    edit(&scene, "branch.sqlite", 1, "name = 'Ada again'", "2030-01-01T00:00:02Z");
    sync(&engine).await;
    assert_eq!(scene.rows("hq.sqlite", "SELECT name, record_status FROM contacts ORDER BY id"), ["Ada|deleted", "Grace|active"]);
}

// Covers: C8
#[tokio::test(flavor = "multi_thread")]
async fn a_delete_against_an_edit_goes_through_the_policy() {
    // The edit that wins is made anew on the side that deleted it (a new
    // record: the tombstone stays one).
    for (policy, branch_after, hq_after) in [("left-wins", "deleted", &["deleted"][..]), ("right-wins", "active", &["deleted", "active"][..]), ("manual", "active", &["deleted"][..])] {
        let (scene, engine) = scene(&BOTH_WAYS.replace("left-wins", policy));
        scene.sql("hq.sqlite", "INSERT INTO contacts (name) VALUES ('Ada')");
        sync(&engine).await;
        edit(&scene, "hq.sqlite", 1, "record_status = 'deleted'", "2030-01-01T00:00:01Z");
        edit(&scene, "branch.sqlite", 1, "name = 'Ada edited'", "2030-01-01T00:00:02Z");
        sync(&engine).await;
        assert_eq!(scene.rows("branch.sqlite", "SELECT record_status FROM contacts"), [branch_after], "policy {policy}");
        assert_eq!(scene.rows("hq.sqlite", "SELECT record_status FROM contacts ORDER BY id"), hq_after, "policy {policy}: no resurrection");
        if policy == "right-wins" {
            assert_eq!(scene.rows("hq.sqlite", "SELECT name FROM contacts WHERE record_status = 'active'"), ["Ada edited"]);
            let quiet = sync(&engine).await;
            assert_eq!((quiet.counts.created, quiet.counts.updated, quiet.counts.deleted), (0, 0, 0), "{:#?}", quiet.plan);
        }
        if policy == "manual" {
            let open = engine.state.conflicts(Some("p"), true).unwrap();
            assert_eq!(open[0].field, "*");
            engine.resolve_conflict(open[0].id, Resolution::Take(Side::Left), "bob").await.unwrap();
            assert_eq!(scene.rows("branch.sqlite", "SELECT record_status FROM contacts"), ["deleted"]);
        }
    }
}

// Covers: C8
#[tokio::test(flavor = "multi_thread")]
async fn deletes_need_soft_delete_on_both_sides_unless_hard_is_configured() {
    let (scene, engine) = scene_with(BOTH_WAYS, false);
    scene.sql("hq.sqlite", "INSERT INTO contacts (name) VALUES ('Ada')");
    sync(&engine).await;
    edit(&scene, "hq.sqlite", 1, "record_status = 'deleted'", "2030-01-01T00:00:01Z");
    sync(&engine).await;
    assert_eq!(scene.rows("branch.sqlite", "SELECT count(*) FROM contacts"), ["1"], "not propagated");
    let history = engine.state.history("p", None, 10).unwrap();
    assert!(history[0].message.as_deref().unwrap().contains("set deletes = \"hard\""), "{history:#?}");

    let (scene, engine) = scene_with(&BOTH_WAYS.replace("conflict = \"left-wins\"", "conflict = \"left-wins\"\ndeletes = \"hard\""), false);
    scene.sql("hq.sqlite", "INSERT INTO contacts (name) VALUES ('Ada')");
    sync(&engine).await;
    edit(&scene, "hq.sqlite", 1, "record_status = 'deleted'", "2030-01-01T00:00:01Z");
    sync(&engine).await;
    assert_eq!(scene.rows("branch.sqlite", "SELECT count(*) FROM contacts"), ["0"], "hard delete");
}

// Covers: P4, P12, T2
#[tokio::test(flavor = "multi_thread")]
async fn invalid_records_become_failed_items_and_are_resubmitted_once_fixed() {
    let (scene, engine) = scene(&format!("{BOTH_WAYS}required = [\"phone\"]\n"));
    scene.sql("hq.sqlite", "INSERT INTO contacts (name, phone) VALUES ('Ada', '030 1'), ('Grace', NULL)");
    let report = sync(&engine).await;
    assert_eq!((report.counts.created, report.counts.failed), (1, 1));
    let failed = engine.state.failed(Some("p")).unwrap();
    assert_eq!((failed[0].side.as_str(), failed[0].source_id.as_str()), ("left", "2"));
    assert!(failed[0].reason.contains("`phone` is required"), "{}", failed[0].reason);
    assert_eq!(failed[0].hint.as_deref(), Some("fill in `phone` on the left side"));

    // Fixed at the source with a change time long before what was read (far
    // behind the feed's cursor and its window): only resubmission finds it.
    scene.sql("hq.sqlite", "UPDATE contacts SET phone = '089 2', updated_at = '2000-01-01T00:00:00.000Z' WHERE id = 2");
    assert_eq!(sync(&engine).await.counts.created, 0);
    let report = engine.resubmit_failed("p", None, "test").await.unwrap();
    assert_eq!(report.counts.created, 1);
    assert!(engine.state.failed(Some("p")).unwrap().is_empty());
    assert_eq!(scene.rows("branch.sqlite", "SELECT name, phone FROM contacts ORDER BY id"), ["Ada|030 1", "Grace|089 2"]);
}

// Covers: P12
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_plans_and_changes_nothing() {
    let (scene, engine) = scene(BOTH_WAYS);
    scene.sql("hq.sqlite", "INSERT INTO contacts (name) VALUES ('Ada')");
    scene.sql("branch.sqlite", "INSERT INTO contacts (name) VALUES ('Alan')");
    let report = engine.run("p", "test", Mode::DryRun).await.unwrap();
    assert_eq!(report.counts.created, 2);
    assert_eq!(report.plan.iter().filter(|e| e.action == "create").count(), 2);
    assert_eq!(scene.rows("branch.sqlite", "SELECT count(*) FROM contacts"), ["1"]);
    assert!(engine.state.links("p", 10).unwrap().is_empty());
    assert!(engine.state.runs("p", 10).unwrap().is_empty());
}

mod convergence {
    //! Random inserts, edits and deletes on both sides between runs always
    //! converge to the state the policy (left-wins) defines.

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert { left: bool, name: u8 },
        Edit { left: bool, pick: u8, field: u8, value: u8 },
        Delete { left: bool, pick: u8 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<bool>(), any::<u8>()).prop_map(|(left, name)| Op::Insert { left, name }),
            (any::<bool>(), any::<u8>(), 0u8..3, any::<u8>()).prop_map(|(left, pick, field, value)| Op::Edit { left, pick, field, value }),
            (any::<bool>(), any::<u8>()).prop_map(|(left, pick)| Op::Delete { left, pick }),
        ]
    }

    const FIELDS: [&str; 3] = ["name", "phone", "status"];

    proptest! {
        // PROPTEST_CASES raises the number of cases for a longer search.
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(12),
            ..ProptestConfig::default()
        })]

        // Covers: C1, C2, C8, C9, H6, P7
        #[test]
        fn random_edits_on_both_sides_converge(rounds in prop::collection::vec(prop::collection::vec(op(), 0..6), 1..4)) {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
            runtime.block_on(check(rounds));
        }
    }

    async fn check(rounds: Vec<Vec<Op>>) {
        let (scene, engine) = scene(BOTH_WAYS);
        let mut clock = 0u32;
        let mut stamp = || {
            clock += 1;
            format!("2030-01-01T00:{:02}:{:02}Z", clock / 60, clock % 60)
        };
        for round in rounds {
            for op in round {
                match op {
                    Op::Insert { left, name } => {
                        let db = if left { "hq.sqlite" } else { "branch.sqlite" };
                        scene.sql(db, &format!("INSERT INTO contacts (name, phone, status, updated_at) VALUES ('n{name}', 'p{name}', 's', '{}')", stamp()));
                    }
                    Op::Edit { left, pick, field, value } => {
                        let db = if left { "hq.sqlite" } else { "branch.sqlite" };
                        let live = scene.rows(db, "SELECT id FROM contacts WHERE record_status = 'active' ORDER BY id");
                        if let Some(id) = (!live.is_empty()).then(|| &live[pick as usize % live.len()]) {
                            let at = stamp();
                            scene.sql(db, &format!("UPDATE contacts SET {} = 'v{value}', updated_at = '{at}' WHERE id = {id}", FIELDS[field as usize]));
                        }
                    }
                    Op::Delete { left, pick } => {
                        let db = if left { "hq.sqlite" } else { "branch.sqlite" };
                        let live = scene.rows(db, "SELECT id FROM contacts WHERE record_status = 'active' ORDER BY id");
                        if let Some(id) = (!live.is_empty()).then(|| &live[pick as usize % live.len()]) {
                            let at = stamp();
                            scene.sql(db, &format!("UPDATE contacts SET record_status = 'deleted', updated_at = '{at}' WHERE id = {id}"));
                        }
                    }
                }
            }
            sync(&engine).await;
        }
        // Once nobody edits, one more run changes nothing, and both sides agree.
        let settled = sync(&engine).await;
        assert_eq!((settled.counts.created, settled.counts.updated, settled.counts.deleted), (0, 0, 0), "a settled pipeline is quiet");
        let links = engine.state.links("p", 10_000).unwrap();
        let mut pairs = Vec::new();
        for link in &links {
            let left = scene.rows("hq.sqlite", &format!("SELECT name, phone, status, record_status FROM contacts WHERE id = {}", link.left_id));
            let right = scene.rows("branch.sqlite", &format!("SELECT name, phone, status, record_status FROM contacts WHERE id = {}", link.right_id));
            pairs.push((link.left_id.clone(), link.right_id.clone()));
            if link.state == "active" {
                assert_eq!(left, right, "linked records agree (left {}, right {})", link.left_id, link.right_id);
            } else {
                // A delete happened on at least one side; neither came back to life.
                assert!(left[0].ends_with("|deleted") || right[0].ends_with("|deleted"), "{left:?} {right:?}");
            }
        }
        // Every live record is linked exactly once: nothing lost, nothing duplicated.
        for (db, side) in [("hq.sqlite", 0), ("branch.sqlite", 1)] {
            for id in scene.rows(db, "SELECT id FROM contacts WHERE record_status = 'active'") {
                let count = pairs.iter().filter(|p| if side == 0 { p.0 == id } else { p.1 == id }).count();
                assert_eq!(count, 1, "{db} record {id} is linked once");
            }
        }
    }
}

// Covers: C2, C6
#[tokio::test(flavor = "multi_thread")]
async fn a_write_never_hides_a_change_waiting_on_the_same_record() {
    // Payments flow left to right, status right to left (the orders use case):
    // both sides edit the same record before a run.
    let (scene, engine) = scene(
        r#"
[pipelines.p]
left = { endpoint = "hq", entity = "contacts" }
right = { endpoint = "branch", entity = "contacts" }
[pipelines.p.fields]
name = {}
phone = { direction = "left-to-right" }
status = { direction = "right-to-left" }
"#,
    );
    scene.sql("hq.sqlite", "INSERT INTO contacts (name, phone, status) VALUES ('O-1', NULL, 'new')");
    sync(&engine).await;
    edit(&scene, "hq.sqlite", 1, "phone = 'paid'", "2030-01-01T00:00:01Z");
    edit(&scene, "branch.sqlite", 1, "status = 'shipped'", "2030-01-01T00:00:02Z");
    sync(&engine).await;
    assert_eq!(scene.rows("hq.sqlite", "SELECT phone, status FROM contacts"), ["paid|shipped"]);
    assert_eq!(scene.rows("branch.sqlite", "SELECT phone, status FROM contacts"), ["paid|shipped"]);
}

// Covers: T3, T4
#[tokio::test(flavor = "multi_thread")]
async fn an_outage_degrades_the_pipeline_with_the_reason_and_it_recovers_by_itself() {
    let (scene, engine) = scene(BOTH_WAYS);
    scene.sql("hq.sqlite", "INSERT INTO contacts (name) VALUES ('Ada')");
    sync(&engine).await;
    // The branch database goes away (a moved server, a restore in progress).
    std::fs::rename(scene.path("branch.sqlite"), scene.path("branch.moved")).unwrap();
    let error = engine.run("p", "test", Mode::Apply).await.unwrap_err();
    assert!(error.retryable() || error.to_string().contains("does not exist"), "{error}");
    let health = engine.state.health("p").unwrap().unwrap();
    assert_eq!(health.state, "degraded");
    assert!(health.reason.as_deref().unwrap().contains("branch.sqlite"), "{health:?}");
    assert!(health.hint.as_deref().unwrap().contains("check the dsn"), "{health:?}");
    let messages = engine.state.events(None, 10).unwrap();
    assert!(messages.iter().any(|m| m.level == "error" && m.message.contains("could not start")), "{messages:?}");

    // Back again: the next run succeeds and the pipeline is ok, without anyone turning it on.
    std::fs::rename(scene.path("branch.moved"), scene.path("branch.sqlite")).unwrap();
    scene.sql("hq.sqlite", "INSERT INTO contacts (name) VALUES ('Grace')");
    let report = sync(&engine).await;
    assert_eq!(report.counts.created, 1);
    assert_eq!(engine.state.health("p").unwrap().unwrap().state, "ok");
}

// Covers: C5, T4
#[tokio::test(flavor = "multi_thread")]
async fn a_field_the_entity_does_not_have_stops_the_run_with_the_fields_it_has() {
    let (_scene, engine) = scene(&BOTH_WAYS.replace("phone = {}", "phone = { right = \"phone_nr\" }"));
    let error = engine.run("p", "test", Mode::Apply).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("`phone_nr` is not a field of the right entity `contacts`"), "{message}");
    let hint = error.hint().unwrap();
    assert!(hint.contains("correct [pipelines.p.fields]") && hint.contains("right fields: name, phone, status"), "{hint}");
    assert_eq!(engine.state.health("p").unwrap().unwrap().state, "degraded");
}

/// Both ways through the fragile mapper (which crashes on `poison` and hangs
/// on `hang`), with its call timeout.
fn fragile_scene(timeout: &str) -> (Scene, Engine) {
    scene(&format!(
        r#"
[plugins.fragile]
path = {}

[mappers.fragile]
plugin = "fragile"
limits = {{ timeout = "{timeout}" }}

{}mapper = "fragile"
"#,
        synchost_tests::toml_path(std::path::Path::new(synchost_tests::guests::FRAGILE_MAPPER)),
        BOTH_WAYS
    ))
}

// Covers: H1, P4
#[tokio::test(flavor = "multi_thread")]
async fn a_mapper_crashing_on_one_record_fails_only_that_record() {
    let (scene, engine) = fragile_scene("30s");
    scene.sql("hq.sqlite", "INSERT INTO contacts (name) VALUES ('Ada'), ('poison'), ('Grace')");
    let report = sync(&engine).await;
    assert_eq!((report.counts.created, report.counts.failed), (2, 1));
    assert_eq!(scene.rows("branch.sqlite", "SELECT name FROM contacts ORDER BY id"), ["Ada", "Grace"]);
    let failed = engine.state.failed(Some("p")).unwrap();
    assert_eq!(failed[0].source_id, "2");
    assert!(failed[0].reason.contains("crashed") && failed[0].reason.contains("record 2 is poison"), "{}", failed[0].reason);
    assert_eq!(engine.state.health("p").unwrap().unwrap().state, "ok", "the pipeline goes on");
}

// Covers: H1, P4, T3
#[tokio::test(flavor = "multi_thread")]
async fn a_mapper_hanging_on_one_record_of_1000_fails_only_that_record() {
    let (scene, engine) = fragile_scene("1s");
    scene.sql(
        "hq.sqlite",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO contacts (name) SELECT CASE WHEN i = 613 THEN 'hang' ELSE 'contact ' || i END FROM n",
    );
    let started = std::time::Instant::now();
    let report = sync(&engine).await;
    assert_eq!((report.counts.created, report.counts.failed), (999, 1), "{:?}", report.counts);
    let failed = engine.state.failed(Some("p")).unwrap();
    assert_eq!(failed[0].source_id, "613");
    assert!(failed[0].reason.contains("ran longer than its 1s limit"), "{}", failed[0].reason);
    assert_eq!(engine.state.health("p").unwrap().unwrap().state, "ok", "the pipeline goes on");
    // Halving finds it in a few timeouts, not one per record.
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "{:?}", started.elapsed());
}

// Covers: C1, C9, P7
#[tokio::test(flavor = "multi_thread")]
async fn records_on_both_sides_before_the_first_sync_are_matched_not_copied() {
    let (scene, engine) = scene(&format!("{BOTH_WAYS}match_on = [\"phone\"]\n"));
    scene.sql("hq.sqlite", "INSERT INTO contacts (name, phone, status) VALUES ('Ada L.', '030 1', 'A'), ('Grace', '089 2', 'A'), ('Twin', '000', 'A'), ('Twin too', '000', 'A')");
    scene.sql("branch.sqlite", "INSERT INTO contacts (name, phone, status) VALUES ('Alan', '040 3', 'L'), ('ada l.', ' 030 1 ', NULL), ('Edsger', NULL, 'X'), ('Twin', '000', 'A')");

    // The preview shows the matches and creates only the unmatched records.
    let preview = engine.run("p", "test", Mode::DryRun).await.unwrap();
    assert_eq!(preview.plan.iter().filter(|e| e.action == "link").count(), 1, "{:#?}", preview.plan);
    assert_eq!(preview.counts.created, 6);

    let report = sync(&engine).await;
    assert_eq!(report.counts.created, 6, "Grace + two ambiguous twins to the right; Alan, Edsger, the branch twin to the left");
    let links = engine.state.links("p", 100).unwrap();
    assert!(links.iter().any(|l| l.left_id == "1" && l.right_id == "2"), "Ada matched by phone: {links:?}");
    // The matched pair's differences were settled by the policy (left wins).
    assert_eq!(scene.rows("branch.sqlite", "SELECT name, phone, status FROM contacts WHERE id = 2"), ["Ada L.|030 1|A"]);
    assert_eq!(scene.rows("hq.sqlite", "SELECT count(*) FROM contacts"), ["7"]);
    assert_eq!(scene.rows("branch.sqlite", "SELECT count(*) FROM contacts"), ["7"]);
    let events = engine.state.events(None, 10).unwrap();
    assert!(events.iter().any(|e| e.message.contains("held by more than one record")), "{events:?}");
    // Later runs do not match again; new records are just synced.
    let quiet = sync(&engine).await;
    assert_eq!((quiet.counts.created, quiet.counts.updated), (0, 0));
}

// Covers: P8, P9
#[tokio::test(flavor = "multi_thread")]
async fn a_record_reports_all_its_violations_together_and_frozen_fields_cannot_change_once_linked() {
    let pipeline = r#"
[pipelines.p]
left = { endpoint = "hq", entity = "contacts" }
right = { endpoint = "branch", entity = "contacts" }
conflict = "left-wins"
required = ["phone", "notes"]
fields = { name = {}, phone = {}, notes = {}, status = { frozen = true } }
"#;
    let (scene, engine) = scene(pipeline);
    scene.sql("hq.sqlite", "INSERT INTO contacts (name, phone, notes, status) VALUES ('Ada', NULL, NULL, 'lead'), ('Grace', '030 1', 'vip', 'lead')");
    let report = sync(&engine).await;
    assert_eq!((report.counts.created, report.counts.failed), (1, 1));
    let failed = engine.state.failed(Some("p")).unwrap();
    assert!(failed[0].reason.contains("`phone` is required") && failed[0].reason.contains("`notes` is required"), "{}", failed[0].reason);

    // The frozen field of a linked record: a change fails it, with the old value in the hint.
    edit(&scene, "hq.sqlite", 2, "status = 'customer', name = 'Grace H.'", "2030-01-01T00:00:00.000Z");
    let report = sync(&engine).await;
    assert_eq!((report.counts.updated, report.counts.failed), (0, 1));
    let failed = engine.state.failed(Some("p")).unwrap();
    let frozen = failed.iter().find(|f| f.source_id == "2").expect("the linked record failed");
    assert!(frozen.reason.contains("`status` cannot change once the record is linked (lead -> customer)"), "{}", frozen.reason);
    assert!(frozen.hint.as_deref().unwrap_or("").contains("set `status` back to lead"), "{:?}", frozen.hint);
    assert_eq!(scene.rows("branch.sqlite", "SELECT name, status FROM contacts"), ["Grace|lead"]);

    // Set back, the record's other change goes through.
    edit(&scene, "hq.sqlite", 2, "status = 'lead'", "2030-01-01T00:00:01.000Z");
    let report = sync(&engine).await;
    assert_eq!((report.counts.updated, report.counts.failed), (1, 0), "{:?}", report.plan);
    assert_eq!(scene.rows("branch.sqlite", "SELECT name, status FROM contacts"), ["Grace H.|lead"]);
}

// Covers: P8, P9
#[tokio::test(flavor = "multi_thread")]
async fn a_scope_sends_each_new_record_to_its_own_pipeline_and_keeps_linked_ones_in() {
    // Two pipelines share hq's contacts, each with its own scope (as two plans
    // share one tracker project): a new record goes to the one it belongs to.
    let scene = Scene::new();
    for db in ["hq.sqlite", "branch.sqlite", "shop.sqlite"] {
        scene.database(db, TABLE);
    }
    let shop = r#"
[endpoints.shop]
plugin = "sql-table"
grants.sql.db = { dsn = "sqlite:shop.sqlite" }
settings = { connection = "db", entities = { contacts = { updated_at = "updated_at", origin = "origin" } } }

[pipelines.to-branch]
left = { endpoint = "hq", entity = "contacts", where = { status = "branch" } }
right = { endpoint = "branch", entity = "contacts" }
fields = { name = {} }

[pipelines.to-shop]
left = { endpoint = "hq", entity = "contacts", where = { status = "shop" } }
right = { endpoint = "shop", entity = "contacts" }
fields = { name = {} }
"#;
    let engine = scene.engine(&format!("{}\n{shop}", endpoints(true)));
    let run = |name: &'static str| {
        let engine = &engine;
        async move { engine.run(name, "test", Mode::Apply).await.unwrap_or_else(|e| panic!("{name}: {e}")) }
    };
    scene.sql("hq.sqlite", "INSERT INTO contacts (name, status) VALUES ('Bea', 'shop'), ('Cy', NULL)");
    run("to-branch").await;
    run("to-shop").await;
    assert_eq!(scene.query_one::<Option<String>>("shop.sqlite", "SELECT group_concat(name) FROM contacts").as_deref(), Some("Bea"));
    assert_eq!(scene.query_one::<i64>("branch.sqlite", "SELECT count(*) FROM contacts"), 0, "out of every scope: Cy stays in hq");

    // A record made on the other side is created in the scope.
    scene.sql("branch.sqlite", "INSERT INTO contacts (name) VALUES ('Al')");
    run("to-branch").await;
    assert_eq!(scene.query_one::<String>("hq.sqlite", "SELECT status FROM contacts WHERE name = 'Al'"), "branch");

    // A linked record may not leave its scope: it fails with the fix, nothing is written.
    edit(&scene, "hq.sqlite", 1, "status = 'gone', name = 'Bea B.'", "2030-01-01T00:00:00Z");
    let report = run("to-shop").await;
    assert_eq!(report.counts.failed, 1);
    let failed = engine.state.failed(Some("to-shop")).unwrap();
    assert!(failed[0].reason.contains("`status` is gone, but the record is linked and stays in the pipeline's scope (where status = shop)"), "{}", failed[0].reason);
    assert!(failed[0].hint.as_deref().unwrap_or("").contains("set `status` back to shop on the left side"), "{:?}", failed[0].hint);
    assert_eq!(scene.query_one::<Option<String>>("shop.sqlite", "SELECT group_concat(name) FROM contacts").as_deref(), Some("Bea"));
}

// Covers: C9, P7, H1
#[tokio::test(flavor = "multi_thread")]
async fn a_connectors_empty_or_repeated_ids_fail_only_their_records() {
    let scene = Scene::new();
    scene.database(
        "crm.sqlite",
        "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT);
         INSERT INTO contacts VALUES (1, 'Ada', '2026-01-01T00:00:00Z'), (2, 'Grace', '2026-01-01T00:00:00Z'),
                                     (3, 'Alan', '2026-01-01T00:00:00Z'), (4, 'Edsger', '2026-01-01T00:00:00Z');",
    );
    let guest = synchost_tests::toml_path(std::path::Path::new(synchost_tests::guests::MISBEHAVING));
    let engine = scene.engine(&format!(
        r#"
[plugins.misbehaving]
path = {guest}

[endpoints.crm]
plugin = "sql-table"
grants.sql.db = {{ dsn = "sqlite:crm.sqlite" }}
settings = {{ connection = "db", entities = {{ contacts = {{ updated_at = "updated_at" }} }} }}

[endpoints.sloppy]
plugin = "misbehaving"
settings = {{ behaviour = "ok", write_ids = ["7", "", "7", "9"] }}

[pipelines.p]
left = {{ endpoint = "crm", entity = "contacts" }}
right = {{ endpoint = "sloppy", entity = "items" }}
create = "left-to-right"
fields.name = {{ right = "payload", direction = "left-to-right" }}
"#
    ));
    let report = engine.run("p", "test", Mode::Apply).await.unwrap_or_else(|e| panic!("the batch commits: {e}"));
    assert_eq!((report.counts.created, report.counts.failed), (2, 2), "{:?}", report.counts);
    assert_eq!(engine.state.link_count("p").unwrap(), 2);
    let failed = engine.state.failed(Some("p")).unwrap();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|f| f.code == "bad-outcome" && f.reason.contains("`sloppy`")), "{failed:?}");
    assert!(failed.iter().any(|f| f.reason.contains("named no record id")), "{failed:?}");
    assert!(failed.iter().any(|f| f.reason.contains("same id `7`")), "{failed:?}");
    // Resubmitted, the first gets `7` again, which is linked already.
    engine.resubmit_failed("p", None, "test").await.unwrap();
    assert_eq!(engine.state.link_count("p").unwrap(), 2);
    let failed = engine.state.failed(Some("p")).unwrap();
    assert!(failed.iter().any(|f| f.reason.contains("`7`, which is already linked")), "{failed:?}");
}

// Covers: H6, C7
#[tokio::test(flavor = "multi_thread")]
async fn taking_a_side_whose_record_is_gone_is_refused_and_loses_nothing() {
    let (scene, engine) = conflict_under("manual").await;
    let open = engine.state.conflicts(Some("p"), true).unwrap();
    // The left record is removed behind synchost's back.
    scene.sql("hq.sqlite", "DELETE FROM contacts WHERE id = 1");
    let error = engine.resolve_conflict(open[0].id, Resolution::Take(Side::Left), "alice").await.unwrap_err();
    let text = format!("{error} {:?}", error.hint());
    assert!(text.contains("cannot be read any more") && text.contains("--take right"), "{text}");
    assert_eq!(scene.rows("branch.sqlite", "SELECT phone FROM contacts"), ["right"], "the other side keeps its value");
    assert_eq!(engine.state.conflicts(Some("p"), true).unwrap().len(), 1, "the conflict stays open");
}

// Covers: H6, C7
#[tokio::test(flavor = "multi_thread")]
async fn a_nan_or_infinite_number_fails_its_record_instead_of_churning() {
    let scene = Scene::new();
    let table = "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, amount REAL,
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), origin TEXT UNIQUE)";
    scene.database("hq.sqlite", table);
    scene.database("branch.sqlite", table);
    let engine = scene.engine(
        r#"
[endpoints.hq]
plugin = "sql-table"
grants.sql.db = { dsn = "sqlite:hq.sqlite" }
settings = { connection = "db", entities = { contacts = { updated_at = "updated_at", origin = "origin" } } }

[endpoints.branch]
plugin = "sql-table"
grants.sql.db = { dsn = "sqlite:branch.sqlite" }
settings = { connection = "db", entities = { contacts = { updated_at = "updated_at", origin = "origin" } } }

[pipelines.p]
left = { endpoint = "hq", entity = "contacts" }
right = { endpoint = "branch", entity = "contacts" }
fields = { name = {}, amount = {} }
"#,
    );
    scene.sql("hq.sqlite", "INSERT INTO contacts (name, amount) VALUES ('Ada', 9e999), ('Grace', 1.5)");
    let report = sync(&engine).await;
    assert_eq!((report.counts.created, report.counts.failed), (1, 1), "{:?}", report.counts);
    let failed = engine.state.failed(Some("p")).unwrap();
    assert!(failed[0].reason.contains("`amount` is inf"), "{failed:?}");
    assert!(failed[0].hint.as_deref().unwrap_or_default().contains("store a number or nothing"), "{failed:?}");
    let again = sync(&engine).await;
    assert_eq!((again.counts.created, again.counts.updated), (0, 0), "nothing churns");
}

// Covers: H6, C7
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_base_is_an_error_naming_it_never_an_empty_base() {
    let (scene, engine) = scene(BOTH_WAYS);
    scene.sql("hq.sqlite", "INSERT INTO contacts (name, phone) VALUES ('Ada', '030 0')");
    sync(&engine).await;
    scene.sql("synchost-data/state.sqlite", "UPDATE links SET base = substr(base, 1, length(base) - 1)");
    edit(&scene, "hq.sqlite", 1, "phone = 'left'", "2030-01-01T00:00:01Z");
    let error = engine.run("p", "test", Mode::Apply).await.unwrap_err().to_string();
    assert!(error.contains("is damaged") && error.contains("the base of link 1 is cut short"), "{error}");
    assert_eq!(scene.rows("branch.sqlite", "SELECT phone FROM contacts"), ["030 0"], "nothing was overwritten");
}

// Covers: P4, T3
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_target_is_retried_by_the_next_run_not_left_for_the_hourly_resubmission() {
    let (scene, engine) = scene(BOTH_WAYS);
    scene.sql("hq.sqlite", "INSERT INTO contacts (name) VALUES ('Ada'), ('Grace')");
    // Another program holds the branch database locked for longer than the
    // connector waits.
    let holder = rusqlite::Connection::open(scene.path("branch.sqlite")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let first = engine.run("p", "test", Mode::Apply).await;
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    assert!(first.is_err(), "the run says the target stopped taking changes");
    let failed = engine.state.failed(Some("p")).unwrap();
    assert!(failed.iter().all(|f| f.retryable && f.code == "database-busy"), "{failed:?}");
    // The backoff (5 s by default) passes; the next run takes them again.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    sync(&engine).await;
    assert_eq!(scene.rows("branch.sqlite", "SELECT name FROM contacts ORDER BY id"), ["Ada", "Grace"], "synced by the next run");
    assert!(engine.state.failed(Some("p")).unwrap().is_empty());
}

// Covers: C8, T2
#[tokio::test(flavor = "multi_thread")]
async fn a_record_deleted_on_one_side_only_shows_and_its_edits_say_why_they_do_not_sync() {
    // The edit wins, but the right side may not create records on the left:
    // the pair stays half-deleted.
    let (scene, engine) = scene(&BOTH_WAYS.replace("left-wins", "right-wins").replace("fields =", "create = \"left-to-right\"\nfields ="));
    scene.sql("hq.sqlite", "INSERT INTO contacts (name) VALUES ('Ada')");
    sync(&engine).await;
    edit(&scene, "hq.sqlite", 1, "record_status = 'deleted'", "2030-01-01T00:00:01Z");
    edit(&scene, "branch.sqlite", 1, "name = 'Ada edited'", "2030-01-01T00:00:02Z");
    sync(&engine).await;
    let half = engine.state.half_deleted_links("p").unwrap();
    assert_eq!((half.len(), half[0].state.as_str()), (1, "left-deleted"), "{half:?}");
    // A later edit of the kept record is not silently dropped.
    edit(&scene, "branch.sqlite", 1, "name = 'Ada again'", "2030-01-01T00:00:03Z");
    sync(&engine).await;
    let history = engine.state.history("p", Some("right:1"), 10).unwrap();
    let skip = history.iter().find(|h| h.rule == "deleted on one side").unwrap_or_else(|| panic!("{history:#?}"));
    assert!(skip.message.as_deref().unwrap().contains("links unlink p 1"), "{skip:?}");
    assert_eq!(scene.rows("hq.sqlite", "SELECT name, record_status FROM contacts"), ["Ada|deleted"]);
}

// Covers: P2
#[tokio::test(flavor = "multi_thread")]
async fn an_approval_whose_source_record_is_deleted_is_withdrawn() {
    let (scene, engine) = scene(&format!("{BOTH_WAYS}approval = {{ direction = \"left-to-right\" }}\n"));
    scene.sql("hq.sqlite", "INSERT INTO contacts (name) VALUES ('Ada')");
    let report = sync(&engine).await;
    assert_eq!(report.counts.queued, 1);
    let pending = engine.state.approvals(Some("p"), false).unwrap();
    assert_eq!(pending.len(), 1);
    edit(&scene, "hq.sqlite", 1, "record_status = 'deleted'", "2030-01-01T00:00:01Z");
    sync(&engine).await;
    assert!(engine.state.approvals(Some("p"), false).unwrap().is_empty(), "nothing waits any more");
    let all = engine.state.approvals(Some("p"), true).unwrap();
    assert_eq!(all[0].status, "withdrawn");
    let history = engine.state.history("p", Some("left:1"), 10).unwrap();
    assert!(history.iter().any(|h| h.action == "withdraw" && h.message.as_deref().unwrap_or("").contains("was deleted")), "{history:#?}");
    let error = engine.decide_approval(pending[0].id, Some(1), true, "pm", None).await.unwrap_err();
    assert!(error.to_string().contains("withdrawn: the source record was deleted"), "{error}");
    assert_eq!(scene.rows("branch.sqlite", "SELECT count(*) FROM contacts"), ["0"]);
}
