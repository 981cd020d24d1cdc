//! The sql-table connector on real SQLite files: change feed with a cursor,
//! full scans, upserts with an outcome per record, soft and hard deletes.

use synchost::model::{Change, ChangeKind, Field, Outcome, Value};
use synchost::runtime::Instance;
use synchost_tests::{instance, Scene};

const CRM: &str = "
CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    email TEXT,
    score INTEGER,
    updated_at TEXT NOT NULL,
    record_status TEXT NOT NULL DEFAULT 'active',
    origin TEXT UNIQUE
);
CREATE TABLE notes (code TEXT PRIMARY KEY, body TEXT);
INSERT INTO contacts (name, email, score, updated_at) VALUES
    ('Ada', 'ada@example.com', 10, '2026-01-01T00:00:00.000Z'),
    ('Grace', 'grace@example.com', 20, '2026-01-01T00:00:00.000Z'),
    ('Alan', NULL, 30, '2026-01-02T00:00:00.000Z');
INSERT INTO notes VALUES ('a', 'one'), ('b', 'two'), ('c', 'three'), ('d', 'four'), ('e', 'five');
";

const CONFIG: &str = r#"
[endpoints.crm]
plugin = "sql-table"
grants.sql.crm = { dsn = "sqlite:crm.sqlite" }

[endpoints.crm.settings]
connection = "crm"

[endpoints.crm.settings.entities.contacts]
updated_at = "updated_at"
soft_delete = { column = "record_status" }
origin = "origin"

[endpoints.crm.settings.entities.notes]
key = "code"
"#;

fn setup() -> (Scene, synchost::catalog::Catalog) {
    let scene = Scene::new();
    scene.database("crm.sqlite", CRM);
    let catalog = scene.load(CONFIG);
    (scene, catalog)
}

fn upsert(origin: &str, target: Option<&str>, fields: Vec<(&str, Value)>) -> Change {
    Change {
        origin: origin.into(),
        target_id: target.map(Into::into),
        expected_version: None,
        kind: ChangeKind::Upsert,
        repeated: false,
        on_behalf_of: None,
        fields: fields.into_iter().map(|(n, v)| Field { name: n.into(), value: v }).collect(),
    }
}

fn ids(records: &[synchost::model::Record]) -> Vec<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

// Covers: C1, C7
#[tokio::test(flavor = "multi_thread")]
async fn a_changed_row_appears_on_the_next_read_and_only_it() {
    let (scene, catalog) = setup();
    let crm = instance(&catalog, "crm");
    let first = crm.read("contacts", None, 100).await.unwrap();
    assert_eq!(ids(&first.records), ["1", "2", "3"]);
    assert!(!first.has_more);
    // A read from the start says how many records it returns in all (the
    // progress of a big first sync shows the time left); later pages do not count.
    assert_eq!(first.total, Some(3));
    let ada = &first.records[0];
    // The stamp, and a digest of the values (an edit within the same tick is another version).
    assert!(ada.version.as_deref().unwrap().starts_with("2026-01-01T00:00:00.000Z/"), "{:?}", ada.version);
    assert_eq!(ada.get("score"), Some(&Value::Integer(10)));
    assert_eq!(ada.get("updated_at"), None, "system columns are not fields");
    assert_eq!(ada.get("id"), None, "the system id is the record id, never a field (C9)");

    scene.sql("crm.sqlite", "UPDATE contacts SET score = 11, updated_at = '2026-02-01T00:00:00.000Z' WHERE id = 1");
    let next = crm.read("contacts", first.cursor.as_deref(), 100).await.unwrap();
    assert_eq!(ids(&next.records), ["1"]);
    assert_eq!(next.total, None);
    assert_eq!(next.records[0].get("score"), Some(&Value::Integer(11)));

    let nothing = crm.read("contacts", next.cursor.as_deref(), 100).await.unwrap();
    assert!(nothing.records.is_empty() && !nothing.has_more);
    assert_eq!(nothing.cursor, next.cursor, "an empty read keeps the cursor");
}

// Covers: C1
#[tokio::test(flavor = "multi_thread")]
async fn paging_through_equal_timestamps_neither_skips_nor_repeats() {
    let scene = Scene::new();
    scene.database(
        "crm.sqlite",
        "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25)
         INSERT INTO contacts SELECT i, 'c' || i, '2026-01-0' || (1 + i % 3) || 'T00:00:00Z' FROM n;",
    );
    let catalog = scene.load(
        r#"
[endpoints.crm]
plugin = "sql-table"
settings = { connection = "crm", entities = { contacts = { updated_at = "updated_at" } } }
grants.sql.crm = { dsn = "sqlite:crm.sqlite" }
"#,
    );
    let crm = instance(&catalog, "crm");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let batch = crm.read("contacts", cursor.as_deref(), 4).await.unwrap();
        seen.extend(ids(&batch.records));
        cursor = batch.cursor;
        if !batch.has_more {
            break;
        }
    }
    let mut sorted: Vec<i64> = seen.iter().map(|s| s.parse().unwrap()).collect();
    sorted.sort();
    assert_eq!(sorted, (1..=25).collect::<Vec<_>>(), "every row exactly once: {seen:?}");
}

// Covers: C1
#[tokio::test(flavor = "multi_thread")]
async fn without_a_change_feed_reads_page_through_a_full_scan() {
    let (_scene, catalog) = setup();
    let crm = instance(&catalog, "crm");
    let entities = crm.describe().await.unwrap();
    let notes = entities.iter().find(|e| e.name == "notes").unwrap();
    assert!(!notes.change_feed && !notes.soft_delete);
    let contacts = entities.iter().find(|e| e.name == "contacts").unwrap();
    assert!(contacts.change_feed && contacts.soft_delete);
    assert_eq!(contacts.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["name", "email", "score"]);

    let page = crm.read("notes", None, 3).await.unwrap();
    assert_eq!(ids(&page.records), ["a", "b", "c"]);
    assert!(page.has_more);
    let rest = crm.read("notes", page.cursor.as_deref(), 3).await.unwrap();
    assert_eq!(ids(&rest.records), ["d", "e"]);
    assert!(!rest.has_more);
}

// Covers: C8, C9
#[tokio::test(flavor = "multi_thread")]
async fn writes_are_upserts_with_an_outcome_per_record() {
    let (scene, catalog) = setup();
    let crm: &Instance = instance(&catalog, "crm");
    let stale = Change { expected_version: Some("2025-12-31T00:00:00.000Z".into()), ..upsert("o-stale", Some("2"), vec![("score", Value::Integer(99))]) };
    let batch = vec![
        upsert("o-new", None, vec![("name", Value::Text("Barbara".into())), ("score", Value::Integer(40))]),
        upsert("o-ada", Some("1"), vec![("email", Value::Text("ada@lovelace.example".into()))]),
        upsert("o-bad", None, vec![("name", Value::Text("X".into())), ("shoe_size", Value::Integer(9))]),
        upsert("o-type", Some("3"), vec![("score", Value::Text("lots".into()))]),
        upsert("o-null", None, vec![("email", Value::Text("nobody@example.com".into()))]),
        stale,
        Change { kind: ChangeKind::Delete, ..upsert("o-del", Some("3"), vec![]) },
    ];
    let outcomes = crm.write("contacts", &batch).await.unwrap();
    let Outcome::Applied(created) = &outcomes[0] else { panic!("{:?}", outcomes[0]) };
    assert_eq!(created.id, "4", "the target keeps its own numbering");
    assert!(created.version.is_some());
    assert!(matches!(&outcomes[1], Outcome::Applied(a) if a.id == "1"));
    assert!(matches!(&outcomes[2], Outcome::Rejected(p) if p.code == "unknown-field" && p.hint.as_deref().unwrap().contains("name, email, score")), "{:?}", outcomes[2]);
    assert!(matches!(&outcomes[3], Outcome::Rejected(p) if p.code == "type-mismatch"), "{:?}", outcomes[3]);
    assert!(matches!(&outcomes[4], Outcome::Rejected(p) if p.code == "constraint-violation"), "{:?}", outcomes[4]);
    let Outcome::Conflict(current) = &outcomes[5] else { panic!("{:?}", outcomes[5]) };
    assert_eq!((current.id.as_str(), current.get("score")), ("2", Some(&Value::Integer(20))));
    assert!(matches!(&outcomes[6], Outcome::Applied(a) if a.id == "3"));

    assert_eq!(scene.query_one::<String>("crm.sqlite", "SELECT email FROM contacts WHERE id = 1"), "ada@lovelace.example");
    assert_eq!(scene.query_one::<i64>("crm.sqlite", "SELECT score FROM contacts WHERE id = 2"), 20, "a conflict changes nothing");
    assert_eq!(scene.query_one::<String>("crm.sqlite", "SELECT record_status FROM contacts WHERE id = 3"), "deleted");
    assert_eq!(scene.query_one::<i64>("crm.sqlite", "SELECT count(*) FROM contacts"), 4);

    // Redoing the create (e.g. after a crash before its link was stored) finds the row it made.
    let redo: Vec<Change> = batch[..1].iter().map(|c| Change { repeated: true, ..c.clone() }).collect();
    let again = crm.write("contacts", &redo).await.unwrap();
    let Outcome::Applied(redone) = &again[0] else { panic!("{:?}", again[0]) };
    assert_eq!(redone.id, "4");
    assert_eq!(scene.query_one::<i64>("crm.sqlite", "SELECT count(*) FROM contacts"), 4, "no duplicate");

    // The soft delete is a tombstone on the change feed.
    let all = crm.read("contacts", None, 100).await.unwrap();
    let alan = all.records.iter().find(|r| r.id == "3").unwrap();
    assert!(alan.deleted);
    let barbara = all.records.iter().find(|r| r.id == "4").unwrap();
    assert_eq!(barbara.version, redone.version);
}

// Covers: C8
#[tokio::test(flavor = "multi_thread")]
async fn hard_deletes_remove_rows_and_are_idempotent() {
    let (scene, catalog) = setup();
    let crm = instance(&catalog, "crm");
    let delete = Change { kind: ChangeKind::Delete, ..upsert("d", Some("b"), vec![]) };
    for _ in 0..2 {
        let outcomes = crm.write("notes", std::slice::from_ref(&delete)).await.unwrap();
        assert!(matches!(&outcomes[0], Outcome::Applied(a) if a.id == "b"), "{:?}", outcomes[0]);
    }
    assert_eq!(scene.query_one::<i64>("crm.sqlite", "SELECT count(*) FROM notes"), 4);
    let fetched = crm.fetch("notes", &["a".into(), "b".into(), "zz".into()]).await.unwrap();
    assert_eq!(ids(&fetched), ["a"], "unknown ids are left out");
}

// Covers: T4
#[tokio::test(flavor = "multi_thread")]
async fn settings_that_do_not_fit_the_database_say_what_to_change() {
    let scene = Scene::new();
    scene.database("crm.sqlite", CRM);
    let catalog = scene.load(
        r#"
[endpoints.typo]
plugin = "sql-table"
settings = { connection = "crm", entities = { contacts = { updated_at = "modified" } } }
grants.sql.crm = { dsn = "sqlite:crm.sqlite" }

[endpoints.no-table]
plugin = "sql-table"
settings = { connection = "crm", entities = { orders = {} } }
grants.sql.crm = { dsn = "sqlite:crm.sqlite" }

[endpoints.moved]
plugin = "sql-table"
settings = { connection = "crm", entities = { contacts = {} } }
grants.sql.crm = { dsn = "sqlite:old-server/crm.sqlite" }
"#,
    );
    let problem = |name: &str, error: synchost::runtime::CallError| {
        let problem = error.problem().unwrap_or_else(|| panic!("{name}: {error}")).clone();
        (problem.code, problem.message, problem.hint.unwrap_or_default())
    };
    let (code, message, hint) = problem("typo", instance(&catalog, "typo").describe().await.unwrap_err());
    assert_eq!(code, "bad-settings");
    assert!(message.contains("updated_at column `modified` is not in table `contacts`"), "{message}");
    assert!(hint.contains("name, email, score, updated_at"), "{hint}");

    let (code, _, hint) = problem("no-table", instance(&catalog, "no-table").read("orders", None, 1).await.unwrap_err());
    assert_eq!(code, "table-not-found");
    assert!(hint.contains("create the table"), "{hint}");

    let (code, message, hint) = problem("moved", instance(&catalog, "moved").describe().await.unwrap_err());
    assert_eq!(code, "database-not-found");
    assert!(message.contains("old-server/crm.sqlite") && message.contains("[endpoints.moved.grants.sql.crm]"), "{message}");
    assert!(hint.contains("check the dsn"), "{hint}");

    let (code, _, hint) = problem("unknown", instance(&catalog, "typo").read("invoices", None, 1).await.unwrap_err());
    assert_eq!(code, "unknown-entity");
    assert!(hint.contains("contacts"), "{hint}");
}

/// A table stamped in whole seconds (`unix-seconds`), as many applications do.
const SECONDS: &str = "
CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT, changed INTEGER NOT NULL);
INSERT INTO tasks VALUES (1, 'one', 1000), (2, 'two', 1000), (3, 'three', 1000);
";

fn seconds_table(overlap: &str) -> (Scene, synchost::catalog::Catalog) {
    let scene = Scene::new();
    scene.database("tasks.sqlite", SECONDS);
    let catalog = scene.load(&format!(
        r#"
[endpoints.todo]
plugin = "sql-table"
grants.sql.db = {{ dsn = "sqlite:tasks.sqlite" }}
settings = {{ connection = "db", entities = {{ tasks = {{ updated_at = "changed", updated_at_format = "unix-seconds"{overlap} }} }} }}
"#
    ));
    (scene, catalog)
}

// Covers: C7, C8
#[tokio::test(flavor = "multi_thread")]
async fn rows_that_sort_behind_the_cursor_are_read_once_at_their_new_version() {
    let (scene, catalog) = seconds_table("");
    let todo = instance(&catalog, "todo");
    let first = todo.read("tasks", None, 100).await.unwrap();
    assert_eq!(ids(&first.records), ["1", "2", "3"]);
    // Nothing new: the window behind the cursor holds only rows already returned.
    let quiet = todo.read("tasks", first.cursor.as_deref(), 100).await.unwrap();
    assert!(quiet.records.is_empty(), "{:?}", quiet.records);

    // Edited within the same second as the rows read, with a smaller key than the
    // cursor's; and a row committed late, stamped a second before the cursor.
    scene.sql("tasks.sqlite", "UPDATE tasks SET title = 'one, edited' WHERE id = 1; INSERT INTO tasks VALUES (0, 'late', 999);");
    let next = todo.read("tasks", quiet.cursor.as_deref(), 100).await.unwrap();
    assert_eq!(ids(&next.records), ["0", "1"]);
    assert_eq!(next.records[1].get("title"), Some(&Value::Text("one, edited".into())));
    assert_ne!(next.records[1].version, first.records[0].version, "same stamp, another version");
    // Each is returned once.
    let after = todo.read("tasks", next.cursor.as_deref(), 100).await.unwrap();
    assert!(after.records.is_empty(), "{:?}", after.records);

    // Paging through the window returns each row once too.
    let mut cursor = None;
    let mut seen = Vec::new();
    loop {
        let page = todo.read("tasks", cursor.as_deref(), 1).await.unwrap();
        seen.extend(ids(&page.records));
        cursor = page.cursor;
        if !page.has_more {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, ["0", "1", "2", "3"]);
}

// Covers: C7
#[tokio::test(flavor = "multi_thread")]
async fn without_an_overlap_rows_behind_the_cursor_stay_unread() {
    let (scene, catalog) = seconds_table(", overlap_ms = 0");
    let todo = instance(&catalog, "todo");
    let first = todo.read("tasks", None, 100).await.unwrap();
    scene.sql("tasks.sqlite", "INSERT INTO tasks VALUES (0, 'late', 999);");
    let next = todo.read("tasks", first.cursor.as_deref(), 100).await.unwrap();
    assert!(next.records.is_empty(), "overlap_ms = 0 turns the window off");
}

// Covers: C7, C8
#[tokio::test(flavor = "multi_thread")]
async fn rows_long_settled_behind_the_newest_stamp_are_not_looked_at_again() {
    let (scene, catalog) = seconds_table("");
    scene.sql("tasks.sqlite", "INSERT INTO tasks VALUES (4, 'four', 5000);");
    let todo = instance(&catalog, "todo");
    // The table held a stamp of 5000 before the read: what sorts behind the
    // cursor at 1000 can no longer change within the overlap, so the cursor
    // remembers none of it and the next read does not look behind it.
    let first = todo.read("tasks", None, 3).await.unwrap();
    assert_eq!(ids(&first.records), ["1", "2", "3"]);
    let cursor = first.cursor.clone().unwrap();
    assert!(!cursor.contains("seen"), "settled rows are not remembered: {cursor}");
    let rest = todo.read("tasks", first.cursor.as_deref(), 100).await.unwrap();
    assert_eq!(ids(&rest.records), ["4"]);
    // Caught up: a late row within the overlap of the newest stamp, and an
    // edit in the newest stamp's second, are read as before.
    scene.sql("tasks.sqlite", "INSERT INTO tasks VALUES (0, 'late', 4999); UPDATE tasks SET title = 'four, edited' WHERE id = 4;");
    let next = todo.read("tasks", rest.cursor.as_deref(), 100).await.unwrap();
    assert_eq!(ids(&next.records), ["0", "4"]);
    assert_eq!(next.records[1].get("title"), Some(&Value::Text("four, edited".into())));
    let after = todo.read("tasks", next.cursor.as_deref(), 100).await.unwrap();
    assert!(after.records.is_empty(), "{:?}", after.records);
}
