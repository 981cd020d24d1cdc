//! Change detection that cannot hide a person's edit, with change times of
//! whole seconds (`unix-seconds`): an edit in the same second as synchost's
//! own write is not taken for its echo, and a row committed late, stamped
//! behind what was read, still arrives.

use synchost::engine::Mode;
use synchost_tests::Scene;

const TABLE: &str = "CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT, changed INTEGER NOT NULL, origin TEXT UNIQUE);";

fn endpoint(name: &str) -> String {
    format!(
        r#"
[endpoints.{name}]
plugin = "sql-table"
grants.sql.db = {{ dsn = "sqlite:{name}.sqlite" }}
settings = {{ connection = "db", entities = {{ tasks = {{ updated_at = "changed", updated_at_format = "unix-seconds", origin = "origin" }} }} }}
"#
    )
}

fn scene() -> (Scene, synchost::engine::Engine) {
    let scene = Scene::new();
    scene.database("office.sqlite", TABLE);
    scene.database("field.sqlite", TABLE);
    let engine = scene.engine(&format!(
        "{}{}
[pipelines.p]
left = {{ endpoint = \"office\", entity = \"tasks\" }}
right = {{ endpoint = \"field\", entity = \"tasks\" }}
conflict = \"last-writer-wins\"
fields = {{ title = {{}} }}
",
        endpoint("office"),
        endpoint("field")
    ));
    (scene, engine)
}

// Covers: C7, C8, H6
#[tokio::test(flavor = "multi_thread")]
async fn an_edit_in_the_same_second_as_the_engines_write_is_not_taken_for_its_echo() {
    let (scene, engine) = scene();
    scene.sql("office.sqlite", "INSERT INTO tasks (title, changed) VALUES ('survey', strftime('%s', 'now'))");
    engine.run("p", "test", Mode::Apply).await.unwrap();
    assert_eq!(scene.rows("field.sqlite", "SELECT title FROM tasks"), ["survey"]);
    // A person edits the row synchost wrote, within the same second (the
    // stamp stays what the write set).
    scene.sql("field.sqlite", "UPDATE tasks SET title = 'survey, north side' WHERE id = 1");
    let report = engine.run("p", "test", Mode::Apply).await.unwrap();
    assert_eq!(report.counts.updated, 1, "{:?}", report.plan);
    assert_eq!(scene.rows("office.sqlite", "SELECT title FROM tasks"), ["survey, north side"]);
    // The engine's own write back is an echo: a further run has nothing to do.
    let quiet = engine.run("p", "test", Mode::Apply).await.unwrap();
    assert_eq!((quiet.counts.created, quiet.counts.updated), (0, 0), "{:?}", quiet.plan);
}

// Covers: C7, C8
#[tokio::test(flavor = "multi_thread")]
async fn a_row_committed_late_behind_what_was_read_still_arrives() {
    let (scene, engine) = scene();
    scene.sql("office.sqlite", "INSERT INTO tasks (id, title, changed) VALUES (5, 'fence', strftime('%s', 'now'))");
    engine.run("p", "test", Mode::Apply).await.unwrap();
    // A transaction that stamped its row a second earlier commits only now.
    scene.sql("office.sqlite", "INSERT INTO tasks (id, title, changed) VALUES (2, 'gate', strftime('%s', 'now') - 1)");
    let report = engine.run("p", "test", Mode::Apply).await.unwrap();
    assert_eq!(report.counts.created, 1, "{:?}", report.plan);
    let mut titles = scene.rows("field.sqlite", "SELECT title FROM tasks");
    titles.sort();
    assert_eq!(titles, ["fence", "gate"]);
}
