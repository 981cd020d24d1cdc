//! Records that refer to each other (a task's parent): a child waits for its
//! parent's link, and one resubmission settles a whole hierarchy, level by
//! level, instead of one level per hourly resubmission.

use synchost::engine::Mode;
use synchost_tests::Scene;

const TABLE: &str = "CREATE TABLE tasks (id INTEGER PRIMARY KEY, name TEXT, parent_id INTEGER, updated_at TEXT NOT NULL, origin TEXT UNIQUE);";

// Covers: C1, P6, P7
#[tokio::test(flavor = "multi_thread")]
async fn a_three_level_hierarchy_goes_through_in_one_resubmission() {
    let scene = Scene::new();
    scene.database("plan.sqlite", TABLE);
    scene.database("tracker.sqlite", TABLE);
    let entity = r#"{ updated_at = "updated_at", origin = "origin" }"#;
    let engine = scene.engine(&format!(
        r#"
[endpoints.plan]
plugin = "sql-table"
grants.sql.db = {{ dsn = "sqlite:plan.sqlite" }}
settings = {{ connection = "db", entities = {{ tasks = {entity} }} }}

[endpoints.tracker]
plugin = "sql-table"
grants.sql.db = {{ dsn = "sqlite:tracker.sqlite" }}
settings = {{ connection = "db", entities = {{ tasks = {entity} }} }}

[pipelines.work]
left = {{ endpoint = "plan", entity = "tasks" }}
right = {{ endpoint = "tracker", entity = "tasks" }}
create = "left-to-right"
fields = {{ name = {{}}, parent_id = {{ references = "work" }} }}
"#
    ));
    // The change feed brings the grandchild first and the root last.
    scene.sql(
        "plan.sqlite",
        "INSERT INTO tasks VALUES (1, 'Move office', NULL, '2030-01-01T00:00:03Z', NULL),
                                  (2, 'Pack', 1, '2030-01-01T00:00:02Z', NULL),
                                  (3, 'Label boxes', 2, '2030-01-01T00:00:01Z', NULL);",
    );
    let first = engine.run("work", "test", Mode::Apply).await.unwrap();
    assert_eq!((first.counts.created, first.counts.failed), (1, 2), "{:#?}", first.plan);
    let resubmitted = engine.resubmit_failed("work", None, "test").await.unwrap();
    assert_eq!((resubmitted.counts.created, resubmitted.counts.failed), (2, 0), "{:#?}", resubmitted.plan);
    assert!(engine.state.failed(Some("work")).unwrap().is_empty());
    // Each child points at its parent's counterpart.
    let rows = scene.rows(
        "tracker.sqlite",
        "SELECT t.name, coalesce(p.name, '-') FROM tasks t LEFT JOIN tasks p ON p.id = t.parent_id ORDER BY t.name",
    );
    assert_eq!(rows, ["Label boxes|Pack", "Move office|-", "Pack|Move office"]);
}
