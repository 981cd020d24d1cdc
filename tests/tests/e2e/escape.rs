//! The escape suite: a plugin trying every way around its grants and budgets,
//! one test per attempt, through the real host, a real guest and real SQLite
//! files. Each attempt must be refused with a message naming the capability
//! or budget, and the host must keep serving the other plugins, on the same
//! database file too.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use synchost::catalog::Catalog;
use synchost::runtime::CallError;
use synchost_tests::{guests, hello_server, instance, toml_path, Scene};

const CONTACTS: &str = "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT);
     INSERT INTO contacts VALUES (1, 'Ada', '2026-01-01T00:00:00.000Z');";

/// A scene with the endpoint's database, another endpoint's database, the
/// host's own state store, and `sneaky` configured by `sneaky` (TOML body).
fn scene_with(sneaky: &str) -> (Scene, Catalog) {
    let scene = Scene::new();
    scene.database("crm.sqlite", CONTACTS);
    scene.database("other.sqlite", "CREATE TABLE secrets (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO secrets VALUES (1, 'other endpoint data');");
    let config = format!(
        r#"
[plugins.misbehaving]
path = {guest}

[endpoints.sneaky]
plugin = "misbehaving"
{sneaky}

[endpoints.neighbour]
plugin = "sql-table"
settings = {{ connection = "crm", entities = {{ contacts = {{ updated_at = "updated_at" }} }} }}
grants.sql.crm = {{ dsn = "sqlite:crm.sqlite" }}

[endpoints.other]
plugin = "sql-table"
settings = {{ connection = "other", entities = {{ secrets = {{}} }} }}
grants.sql.other = {{ dsn = "sqlite:other.sqlite" }}
"#,
        guest = toml_path(std::path::Path::new(guests::MISBEHAVING))
    );
    let catalog = scene.load(&config);
    // The host's state store, as `synchost run` keeps it.
    let path = scene.path("synchost-data/state.sqlite");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    synchost::state::State::open(&path).unwrap();
    (scene, catalog)
}

/// `sneaky` running `queries` on its grant of `crm.sqlite`.
fn queries_scene(queries: &[&str], execute: bool, read_only: bool, limits: &str) -> (Scene, Catalog) {
    let list: Vec<String> = queries.iter().map(|q| format!("{q:?}")).collect();
    scene_with(&format!(
        r#"settings = {{ behaviour = "queries", connection = "crm", execute = {execute}, queries = [{}] }}
grants.sql.crm = {{ dsn = "sqlite:crm.sqlite", read_only = {read_only} }}
limits = {{ {limits} }}"#,
        list.join(", ")
    ))
}

/// The neighbour on the same file and the other endpoint still read, and the
/// neighbour can still write (no transaction was left open).
async fn host_still_serves(scene: &Scene, catalog: &Catalog) {
    let batch = instance(catalog, "neighbour").read("contacts", None, 10).await.expect("neighbour reads");
    assert_eq!(batch.records[0].id, "1");
    let other = instance(catalog, "other").read("secrets", None, 10).await.expect("other endpoint reads");
    assert_eq!(other.records.len(), 1);
    let change = synchost::model::Change {
        origin: "escape/1".into(),
        target_id: Some("1".into()),
        expected_version: None,
        kind: synchost::model::ChangeKind::Upsert,
        repeated: false,
        on_behalf_of: None,
        fields: vec![synchost::model::Field {
            name: "name".into(),
            value: synchost::model::Value::Text("Ada L.".into()),
        }],
    };
    let outcomes = instance(catalog, "neighbour").write("contacts", &[change]).await.expect("neighbour writes");
    assert!(matches!(outcomes[0], synchost::model::Outcome::Applied(_)), "{:?}", outcomes[0]);
    assert_eq!(scene.query_one::<String>("crm.sqlite", "SELECT name FROM contacts WHERE id = 1"), "Ada L.");
}

fn refused(error: &CallError, what: &str) {
    let problem = error.problem().unwrap_or_else(|| panic!("expected a refusal, got {error}"));
    assert_eq!(problem.code, "capability-denied", "{error}");
    assert!(problem.message.contains(&format!("does not allow {what}")), "{error}");
    assert!(problem.message.contains("[endpoints.sneaky.grants.sql.crm]"), "{error}");
}

async fn attempt(scene: &Scene, catalog: &Catalog) -> CallError {
    let error = instance(catalog, "sneaky").read("items", None, 10).await.expect_err("the attempt must fail");
    host_still_serves(scene, catalog).await;
    error
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn attach_of_the_state_store_is_refused() {
    let scene = Scene::new();
    let state = scene.path("synchost-data/state.sqlite");
    let attach = format!("ATTACH '{}' AS s", state.display());
    for (execute, read_only) in [(false, true), (true, false)] {
        let (scene, catalog) = queries_scene(&[&attach, "SELECT count(*) FROM s.links"], execute, read_only, "");
        let error = attempt(&scene, &catalog).await;
        refused(&error, "ATTACH");
    }
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn attach_of_another_endpoints_file_is_refused() {
    let (scene, catalog) = queries_scene(&["ATTACH 'other.sqlite' AS o", "SELECT v FROM o.secrets"], false, true, "");
    let error = attempt(&scene, &catalog).await;
    refused(&error, "ATTACH");
    // Nor through VACUUM INTO, which writes a copy of the database anywhere.
    for vacuum in ["VACUUM INTO 'copy.sqlite'", "; /* x */ VACUUM INTO 'copy.sqlite'"] {
        for execute in [false, true] {
            let (scene, catalog) = queries_scene(&[vacuum], execute, false, "");
            refused(&attempt(&scene, &catalog).await, "VACUUM");
            assert!(!scene.path("copy.sqlite").exists());
        }
    }
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn pragmas_that_name_files_or_change_settings_are_refused() {
    let pragmas = [
        ("PRAGMA database_list", "PRAGMA database_list"),
        ("SELECT file FROM pragma_database_list", "PRAGMA database_list"),
        ("PRAGMA journal_mode = DELETE", "PRAGMA journal_mode"),
        ("PRAGMA writable_schema = ON", "PRAGMA writable_schema"),
        ("PRAGMA foreign_keys = OFF", "PRAGMA foreign_keys"),
        ("PRAGMA query_only = 1", "PRAGMA query_only"),
        ("PRAGMA user_version = 7", "PRAGMA user_version"),
        ("PRAGMA busy_timeout = 0", "PRAGMA busy_timeout"),
        ("PRAGMA temp_store = MEMORY", "PRAGMA temp_store"),
        ("PRAGMA trusted_schema = ON", "PRAGMA trusted_schema"),
        ("PRAGMA main.wal_checkpoint(TRUNCATE)", "PRAGMA wal_checkpoint"),
    ];
    for (pragma, what) in pragmas {
        let (scene, catalog) = queries_scene(&[pragma], true, false, "");
        let error = attempt(&scene, &catalog).await;
        refused(&error, what);
    }
    assert_eq!(Scene::new().dir.path().exists(), true);
    // What sql-table needs to learn a table's shape still works.
    let (scene, catalog) = queries_scene(&["SELECT name FROM pragma_table_info('contacts')"], false, true, "");
    let batch = instance(&catalog, "sneaky").read("items", None, 10).await.expect("table_info is allowed");
    assert!(batch.records[0].text("payload").unwrap().contains("updated_at"));
    host_still_serves(&scene, &catalog).await;
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn every_pragma_sqlite_knows_is_refused_but_the_six_that_read_a_tables_shape() {
    let names: Vec<String> = {
        let sqlite = rusqlite::Connection::open_in_memory().unwrap();
        let mut statement = sqlite.prepare("SELECT name FROM pragma_pragma_list ORDER BY name").unwrap();
        statement.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    };
    assert!(names.len() > 40, "{names:?}");
    let allowed = ["foreign_key_list", "index_info", "index_list", "index_xinfo", "table_info", "table_xinfo"];
    // Each as a statement, with a value, and as a table-valued function.
    let attempts: Vec<(String, &str)> = names
        .iter()
        .flat_map(|n| {
            [
                (format!("PRAGMA {n}"), n.as_str()),
                (format!("PRAGMA {n} = 0"), n.as_str()),
                (format!("SELECT * FROM pragma_{n}"), n.as_str()),
            ]
        })
        .collect();
    let queries: Vec<String> = attempts.iter().map(|(sql, _)| format!("{sql:?}")).collect();
    let (scene, catalog) = scene_with(&format!(
        r#"settings = {{ behaviour = "queries", connection = "crm", keep_going = true, queries = [{}] }}
grants.sql.crm = {{ dsn = "sqlite:crm.sqlite" }}"#,
        queries.join(", ")
    ));
    let batch = instance(&catalog, "sneaky").read("items", None, 10).await.expect("every outcome is reported");
    assert_eq!(batch.records.len(), attempts.len());
    let refused = batch.records.iter().filter(|r| r.text("payload").unwrap().starts_with("capability-denied")).count();
    assert!(refused >= 2 * (names.len() - allowed.len()), "{refused} of {} refused", attempts.len());
    for ((sql, name), record) in attempts.iter().zip(&batch.records) {
        let outcome = record.text("payload").unwrap();
        if allowed.contains(name) {
            assert!(!outcome.starts_with("capability-denied"), "{sql} is allowed: {outcome}");
        } else if outcome.starts_with("capability-denied") {
            assert!(outcome.contains(&format!("does not allow PRAGMA {name}")), "{sql}: {outcome}");
        } else {
            // Not a pragma SQLite compiles here (an unknown or disabled one):
            // it must not have run either.
            assert!(!outcome.starts_with("ok"), "{sql} ran: {outcome}");
        }
    }
    host_still_serves(&scene, &catalog).await;
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn functions_that_reach_out_or_run_unbounded_are_refused() {
    for (call, what) in [
        ("SELECT load_extension('/tmp/evil.so')", "load_extension()"),
        ("SELECT fts3_tokenizer('simple')", "fts3_tokenizer()"),
        ("SELECT json_patch('{\"a\":1}', '{\"b\":2}')", "json_patch()"),
    ] {
        let (scene, catalog) = queries_scene(&[call], false, true, "");
        refused(&attempt(&scene, &catalog).await, what);
    }
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn transaction_control_from_a_plugin_is_refused() {
    for (statements, execute, what) in [
        (vec!["BEGIN"], false, "BEGIN"),
        (vec!["BEGIN IMMEDIATE"], true, "BEGIN"),
        (vec!["COMMIT"], true, "COMMIT"),
        (vec!["SAVEPOINT s1"], true, "SAVEPOINT"),
        (vec!["ROLLBACK"], false, "ROLLBACK"),
    ] {
        let (scene, catalog) = queries_scene(&statements, execute, false, "");
        let error = attempt(&scene, &catalog).await;
        refused(&error, what);
    }
    // Temporary objects would live on the connection the neighbour shares.
    let (scene, catalog) = queries_scene(&["CREATE TEMP TABLE t (x)"], true, false, "");
    refused(&attempt(&scene, &catalog).await, "a TEMP object");
}

fn over_budget(error: &CallError, setting: &str) {
    let CallError::OverBudget { exceeded, .. } = error else { panic!("expected a budget refusal, got {error}") };
    assert!(exceeded.setting.contains(setting), "{exceeded:?}");
    assert!(error.to_string().contains("went over its"), "{error}");
    assert!(error.hint().unwrap().contains(setting), "{:?}", error.hint());
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn a_blob_bomb_through_query_is_refused() {
    for (bomb, setting) in [
        ("SELECT randomblob(200000000)", "limits.sql_value of `sneaky`"),
        (
            "WITH RECURSIVE r(n, b) AS (SELECT 1, randomblob(100000) UNION ALL SELECT n + 1, b || randomblob(100000) FROM r WHERE n < 2000) SELECT max(length(b)) FROM r",
            "limits.sql_value of `sneaky`",
        ),
        ("SELECT replace(printf('%.*c', 1000000, 'a'), 'a', 'bbbbbbbbbb')", "limits.sql_value of `sneaky`"),
        (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 10000000) SELECT randomblob(1000) FROM r",
            "limits.max_output of `sneaky`",
        ),
    ] {
        let started = Instant::now();
        let (scene, catalog) = queries_scene(&[bomb], false, true, r#"max_output = "1MiB""#);
        let error = attempt(&scene, &catalog).await;
        over_budget(&error, setting);
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    }
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn a_row_of_many_wide_columns_is_refused_before_it_takes_memory() {
    // 100 columns of 8 MiB each would be 800 MB in one row: each value may
    // have only its share of max_output.
    let columns: Vec<String> = (0..100).map(|i| format!("zeroblob(8388608) AS c{i}")).collect();
    let wide = format!("SELECT {}", columns.join(", "));
    let (scene, catalog) = queries_scene(&[&wide], false, true, r#"max_output = "32MiB""#);
    let error = attempt(&scene, &catalog).await;
    over_budget(&error, "limits.sql_value of `sneaky`");
    assert!(error.hint().unwrap().contains("limits.sql_value"), "{:?}", error.hint());
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn string_functions_cannot_outlast_the_deadline_in_one_step() {
    // SQLite's own instr, replace, trim, LIKE and GLOB take time proportional
    // to the product of their arguments inside one step, where no deadline
    // reaches; chained, the steps add up.
    let chain = |term: &str| {
        let terms: Vec<String> = (0..100).map(|_| format!("({term})")).collect();
        format!("WITH d(x) AS (SELECT printf('%.*c', 1000000, 'a')) SELECT {} FROM d", terms.join(" + "))
    };
    for slow in [
        "SELECT instr(printf('%.*c', 1000000, 'a'), printf('%.*c', 500000, 'a') || 'b')".to_owned(),
        "SELECT length(replace(printf('%.*c', 1000000, 'a'), printf('%.*c', 500000, 'a') || 'b', 'x'))".to_owned(),
        "SELECT length(trim(printf('%.*c', 1000000, 'a') || 'b', printf('%.*c', 500000, 'c') || 'a'))".to_owned(),
        chain("x LIKE '%' || printf('%.*c', 250, 'a') || 'b'"),
        chain("x GLOB '*' || printf('%.*c', 250, 'a') || 'b'"),
        chain("instr(x, printf('%.*c', 500000, 'a') || 'b')"),
    ] {
        let (scene, catalog) = queries_scene(&[&slow], false, true, r#"timeout = "2s""#);
        let started = Instant::now();
        let outcome = instance(&catalog, "sneaky").read("items", None, 10).await;
        assert!(started.elapsed() < Duration::from_secs(6), "{slow}: {:?}", started.elapsed());
        if let Err(error) = &outcome {
            let code = error.problem().map(|p| p.code.as_str());
            assert!(code == Some("sql-interrupted") || matches!(error, CallError::Timeout { .. }), "{slow}: {error}");
        }
        host_still_serves(&scene, &catalog).await;
    }
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_commit_leaves_no_transaction_open() {
    let (scene, catalog) = queries_scene(
        &[
            "CREATE TABLE IF NOT EXISTS p (id INTEGER PRIMARY KEY)",
            "CREATE TABLE IF NOT EXISTS c (id INTEGER PRIMARY KEY, pid REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)",
            "INSERT INTO c (pid) VALUES (999)",
        ],
        true,
        false,
        "",
    );
    let error = instance(&catalog, "sneaky").read("items", None, 10).await.expect_err("the deferred key fails the commit");
    assert!(error.to_string().contains("FOREIGN KEY"), "{error}");
    // Another program can write the file at once: no lock is left behind.
    scene.sql("crm.sqlite", "PRAGMA busy_timeout = 0; CREATE TABLE probe (x); INSERT INTO probe VALUES (1)");
    host_still_serves(&scene, &catalog).await;
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn a_blob_bomb_through_execute_returning_is_refused_and_rolled_back() {
    let bomb = "INSERT INTO contacts (name) SELECT hex(randomblob(5000)) FROM (WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 10000) SELECT n FROM r) RETURNING name";
    let (scene, catalog) = queries_scene(&[bomb], true, false, r#"max_output = "1MiB""#);
    let error = attempt(&scene, &catalog).await;
    over_budget(&error, "limits.max_output of `sneaky`");
    assert_eq!(scene.query_one::<i64>("crm.sqlite", "SELECT count(*) FROM contacts"), 1, "the batch was rolled back");
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn rows_over_the_sql_rows_budget_are_refused() {
    let many = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 500) SELECT n FROM r";
    let (scene, catalog) = queries_scene(&[many], false, true, "sql_rows = 100");
    let error = attempt(&scene, &catalog).await;
    over_budget(&error, "limits.sql_rows of `sneaky`");
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn an_endless_query_is_interrupted_at_its_deadline_while_the_neighbour_keeps_working() {
    let endless = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r";
    let (scene, catalog) = queries_scene(&[endless], false, true, r#"timeout = "1s""#);
    let started = Instant::now();
    let sneaky = instance(&catalog, "sneaky").clone();
    let running = tokio::spawn(async move { sneaky.read("items", None, 10).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The neighbour on the same file waits at most until the deadline.
    let batch = instance(&catalog, "neighbour").read("contacts", None, 10).await.expect("neighbour reads");
    assert_eq!(batch.records.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(4), "the file was freed at the deadline: {:?}", started.elapsed());
    let error = running.await.unwrap().expect_err("the endless query fails");
    assert_eq!(error.problem().map(|p| p.code.as_str()), Some("sql-interrupted"), "{error}");
    assert!(error.to_string().contains("limits.timeout"), "{error}");
    host_still_serves(&scene, &catalog).await;
}

/// A `tracing` writer that keeps what the host logs, for this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buffer);
        Ok(buffer.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber_for_tests(move || synchost::secrets::RedactingWriter(writer.clone()));
    (captured, tracing::subscriber::set_default(subscriber))
}

fn tracing_subscriber_for_tests<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt().with_writer(writer).with_ansi(false).with_max_level(tracing::Level::INFO).finish()
}

// Covers: H1
#[tokio::test]
async fn a_log_flood_is_cut_at_the_budget_and_counted() {
    let (scene, catalog) = scene_with(
        r#"settings = { behaviour = "log-flood", count = 20000, output_bytes = 100 }
limits = { log_lines = 50 }"#,
    );
    let (captured, _guard) = capture_logs();
    let batch = instance(&catalog, "sneaky").read("items", None, 10).await.expect("logging over budget does not fail the call");
    assert_eq!(batch.records.len(), 1);
    let text = captured.text();
    let plugin_lines = text.lines().filter(|l| l.contains(&"x".repeat(100))).count();
    assert_eq!(plugin_lines, 50, "only the budget's lines are written");
    assert!(text.contains("dropped_lines=19950"), "{}", &text[text.len().saturating_sub(600)..]);
    assert!(text.contains("limits.log_lines"), "the warning names the setting");
    // The next call in the same minute gets nothing more through.
    instance(&catalog, "sneaky").read("items", None, 10).await.unwrap();
    let text = captured.text();
    assert_eq!(text.lines().filter(|l| l.contains(&"x".repeat(100))).count(), 50);
    host_still_serves(&scene, &catalog).await;
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn a_folder_quota_holds_for_writes_and_appends() {
    for append in [false, true] {
        let (scene, catalog) = {
            let scene = Scene::new();
            std::fs::create_dir(scene.path("out")).unwrap();
            std::fs::write(scene.path("out/existing.bin"), vec![0u8; 512 * 1024]).unwrap();
            let guest = toml_path(std::path::Path::new(guests::MISBEHAVING));
            let catalog = scene.load(&format!(
                r#"
[plugins.misbehaving]
path = {guest}

[endpoints.sneaky]
plugin = "misbehaving"
settings = {{ behaviour = "write-file", connection = "out", output_bytes = 2097152, append = {append} }}
grants.files.out = {{ path = "out", quota = "1MiB" }}

[endpoints.modest]
plugin = "misbehaving"
settings = {{ behaviour = "write-file", connection = "out", output_bytes = 100000, append = {append} }}
grants.files.out = {{ path = "out", quota = "1MiB" }}
"#
            ));
            (scene, catalog)
        };
        let error = instance(&catalog, "sneaky").read("items", None, 10).await.expect_err("over quota");
        let CallError::OverBudget { exceeded, .. } = &error else { panic!("expected the quota, got {error}") };
        assert_eq!(exceeded.budget, "folder `out` quota");
        assert!(exceeded.setting.contains("`quota` of the `out` folder grant of `sneaky`"), "{exceeded:?}");
        let written = std::fs::metadata(scene.path("out/file.bin")).map(|m| m.len()).unwrap_or(0);
        assert!(written + 512 * 1024 <= 1024 * 1024, "the folder stayed within its quota: {written}");
        std::fs::remove_file(scene.path("out/file.bin")).ok();
        // A write within the quota goes through.
        instance(&catalog, "modest").read("items", None, 10).await.expect("within quota");
        assert_eq!(std::fs::metadata(scene.path("out/file.bin")).unwrap().len(), 100000);
    }
}

/// A scene with folders `a` and `b` (1 MiB quota each) and `sneaky` set up by `settings`.
fn folders_scene(settings: &str) -> (Scene, Catalog) {
    let scene = Scene::new();
    std::fs::create_dir(scene.path("a")).unwrap();
    std::fs::create_dir(scene.path("b")).unwrap();
    let guest = toml_path(std::path::Path::new(guests::MISBEHAVING));
    let catalog = scene.load(&format!(
        r#"
[plugins.misbehaving]
path = {guest}

[endpoints.sneaky]
plugin = "misbehaving"
settings = {settings}
grants.files.a = {{ path = "a", quota = "1MiB" }}
grants.files.b = {{ path = "b", quota = "1MiB" }}

[endpoints.twin]
plugin = "misbehaving"
settings = {{ behaviour = "write-file", connection = "a", output_bytes = 700000 }}
grants.files.a = {{ path = "a", quota = "1MiB" }}
"#
    ));
    (scene, catalog)
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn moving_a_file_from_one_granted_folder_into_another_fails_as_across_disks() {
    let (scene, catalog) = folders_scene(r#"{ behaviour = "move-file", connection = "a", target = "b", output_bytes = 800000 }"#);
    let error = instance(&catalog, "sneaky").read("items", None, 10).await.expect_err("no move past a quota");
    assert!(error.to_string().contains("cross-device") || error.to_string().contains("Cross-device"), "{error}");
    assert!(!scene.path("b/moving.bin").exists());
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn empty_folders_without_end_run_into_the_quota() {
    let (scene, catalog) = folders_scene(r#"{ behaviour = "make-folders", connection = "a", count = 100000 }"#);
    let error = instance(&catalog, "sneaky").read("items", None, 10).await.expect_err("entries cost");
    let CallError::OverBudget { exceeded, .. } = &error else { panic!("expected the quota, got {error}") };
    assert_eq!(exceeded.budget, "folder `a` quota");
    let made = std::fs::read_dir(scene.path("a")).unwrap().count() as u64;
    assert!(made <= (1 << 20) / 4096, "{made} folders");
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_granted_one_folder_share_its_quota() {
    let (scene, catalog) = folders_scene(r#"{ behaviour = "write-file", connection = "a", output_bytes = 700000 }"#);
    instance(&catalog, "sneaky").read("items", None, 10).await.expect("the first fits");
    let error = instance(&catalog, "twin").read("items", None, 10).await.expect_err("the folder is full for both");
    let CallError::OverBudget { exceeded, .. } = &error else { panic!("expected the quota, got {error}") };
    assert_eq!(exceeded.budget, "folder `a` quota");
    let held: u64 = std::fs::read_dir(scene.path("a")).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum();
    assert!(held <= 1 << 20, "{held}");
}

// Covers: H1
#[test]
fn a_folder_grant_reaching_the_hosts_files_or_another_grant_is_refused_by_the_config() {
    let scene = Scene::new();
    std::fs::create_dir_all(scene.path("data/synchost-data/cache")).unwrap();
    std::fs::create_dir_all(scene.path("plans/sub")).unwrap();
    scene.database("data/crm.sqlite", CONTACTS);
    for (files, found) in [
        (r#"grants.files.all = { path = "data" }"#, "the database of [endpoints.sneaky.grants.sql.crm]"),
        (r#"grants.files.all = { path = "data", read_only = true }"#, "the database of [endpoints.sneaky.grants.sql.crm]"),
        (r#"grants.files.all = { path = "." }"#, "the config file"),
        (r#"grants.files.all = { path = "data/synchost-data/cache" }"#, "the host's data folder"),
        (r#"grants.files.all = { path = "plans/../data/synchost-data" }"#, "the host's data folder"),
        (r#"grants.files.all = { path = "plans/sub" }"#, "the folder of [endpoints.other.grants.files.plans]"),
    ] {
        let config = format!(
            r#"
[host]
data_dir = "data/synchost-data"

[endpoints.sneaky]
plugin = "sql-table"
settings = {{ connection = "crm", entities = {{ contacts = {{}} }} }}
grants.sql.crm = {{ dsn = "sqlite:data/crm.sqlite" }}
{files}

[endpoints.other]
plugin = "project-plan"
settings = {{ folder = "plans", file = "p.xml" }}
grants.files.plans = {{ path = "plans" }}
"#
        );
        let error = synchost::config::LoadedConfig::parse(&scene.path("synchost.toml"), &config).expect_err(files).to_string();
        assert!(error.contains("[endpoints.sneaky.grants.files.all] reaches"), "{files}: {error}");
        assert!(error.contains(found), "{files}: {error}");
    }
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn host_and_hop_by_hop_headers_are_the_hosts() {
    let (port, requests) = hello_server().await;
    for header in ["Host", "host", "X-Forwarded-Host", "Forwarded", "Transfer-Encoding", "Connection", "Proxy-Authorization"] {
        let (scene, catalog) = scene_with(&format!(
            r#"settings = {{ behaviour = "http", url = "http://127.0.0.1:{port}/", headers = [["{header}", "internal.example"]] }}
grants.http.allow = ["127.0.0.1:{port}"]"#
        ));
        let error = attempt(&scene, &catalog).await;
        let problem = error.problem().unwrap_or_else(|| panic!("{error}"));
        assert_eq!(problem.code, "capability-denied", "{error}");
        assert!(problem.message.contains(&format!("may not set the `{header}` header")), "{error}");
    }
    assert_eq!(requests.load(Ordering::SeqCst), 0, "no refused request reached the server");
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn http_requests_over_the_budget_are_refused() {
    let (port, requests) = hello_server().await;
    let (scene, catalog) = scene_with(&format!(
        r#"settings = {{ behaviour = "http", url = "http://127.0.0.1:{port}/", count = 5 }}
grants.http.allow = ["127.0.0.1:{port}"]
limits = {{ http_requests = 3 }}"#
    ));
    let error = attempt(&scene, &catalog).await;
    over_budget(&error, "limits.http_requests of `sneaky`");
    assert_eq!(requests.load(Ordering::SeqCst), 3);
}

// Covers: H1
#[tokio::test]
async fn a_plugin_echoing_its_key_has_it_masked_everywhere() {
    const KEY: &str = "echo-Secret-9f3c2a7d";
    // SAFETY: set before anything reads the environment in this test; the
    // variable is unique to it.
    unsafe { std::env::set_var("SYNCHOST_TEST_ECHO_KEY", KEY) };
    let (scene, catalog) = scene_with(r#"settings = { behaviour = "echo-secret", secret = "${SYNCHOST_TEST_ECHO_KEY}" }"#);
    let (captured, _guard) = capture_logs();
    let error = instance(&catalog, "sneaky").read("items", None, 10).await.expect_err("the plugin fails");
    let shown = format!("{error} {:?}", error.hint());
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains("the server refused key ***"), "{shown}");
    let logs = captured.text();
    assert!(logs.contains("connecting with key ***"), "{logs}");
    assert!(logs.contains("debug: key=***"), "stdout is masked: {logs}");
    assert!(!logs.contains(KEY), "{logs}");
    host_still_serves(&scene, &catalog).await;
}
