//! Plugins reach nothing but what the admin granted: SQL connections by name,
//! HTTP origins by host and port. No ambient network access.

use std::sync::atomic::Ordering;

use synchost::runtime::CallError;
use synchost_tests::{guests, instance, toml_path, Scene};

fn config(port: u16, allowed_port: u16) -> String {
    format!(
        r#"
[plugins.misbehaving]
path = {guest}

[endpoints.sneaky-sql]
plugin = "misbehaving"
settings = {{ behaviour = "sql", connection = "secret" }}
grants.sql.crm = {{ dsn = "sqlite:crm.sqlite" }}

[endpoints.sneaky-http]
plugin = "misbehaving"
settings = {{ behaviour = "http", url = "http://127.0.0.1:{port}/" }}
grants.http.allow = ["127.0.0.1:{allowed_port}"]

[endpoints.polite-http]
plugin = "misbehaving"
settings = {{ behaviour = "http", url = "http://127.0.0.1:{port}/" }}
grants.http.allow = ["127.0.0.1:{port}"]

[endpoints.raw-tcp]
plugin = "misbehaving"
settings = {{ behaviour = "raw-tcp", url = "127.0.0.1:{port}" }}
grants.http.allow = ["127.0.0.1:{port}"]

[endpoints.reader]
plugin = "sql-table"
settings = {{ connection = "crm", entities = {{ contacts = {{}} }} }}
grants.sql.crm = {{ dsn = "sqlite:crm.sqlite", read_only = true }}
"#,
        guest = toml_path(std::path::Path::new(guests::MISBEHAVING))
    )
}

fn problem_code(error: &CallError) -> &str {
    error.problem().map(|p| p.code.as_str()).unwrap_or("<no problem>")
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn ungranted_sql_and_http_are_refused() {
    let scene = Scene::new();
    scene.database("crm.sqlite", "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO contacts VALUES (1, 'Ada');");
    let (port, connections) = synchost_tests::hello_server().await;
    let catalog = scene.load(&config(port, port + 1));

    let error = instance(&catalog, "sneaky-sql").read("items", None, 1).await.unwrap_err();
    assert_eq!(problem_code(&error), "capability-denied", "{error}");
    assert!(error.to_string().contains("no SQL connection named `secret`"), "{error}");
    assert!(error.hint().unwrap().contains("[endpoints.sneaky-sql.grants.sql.secret]"), "{:?}", error.hint());

    let error = instance(&catalog, "sneaky-http").read("items", None, 1).await.unwrap_err();
    assert_eq!(problem_code(&error), "capability-denied", "{error}");
    assert!(error.hint().unwrap().contains(&format!("127.0.0.1:{port}")), "{:?}", error.hint());

    let error = instance(&catalog, "raw-tcp").read("items", None, 1).await.unwrap_err();
    assert_eq!(problem_code(&error), "io", "{error}");
    assert_eq!(connections.load(Ordering::SeqCst), 0, "no refused request may reach the server");

    // The granted origin works, through the host.
    let batch = instance(&catalog, "polite-http").read("items", None, 1).await.expect("granted http");
    assert_eq!(batch.records[0].text("payload"), Some("hello"));
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_grant_refuses_writes() {
    let scene = Scene::new();
    scene.database("crm.sqlite", "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO contacts VALUES (1, 'Ada');");
    let catalog = scene.load(&config(1, 1));
    let reader = instance(&catalog, "reader");
    assert_eq!(reader.read("contacts", None, 10).await.unwrap().records.len(), 1);
    let change = synchost::model::Change {
        origin: "test/1".into(),
        target_id: None,
        expected_version: None,
        kind: synchost::model::ChangeKind::Upsert,
        repeated: false,
        on_behalf_of: None,
        fields: vec![synchost::model::Field {
            name: "name".into(),
            value: synchost::model::Value::Text("Grace".into()),
        }],
    };
    let error = reader.write("contacts", &[change]).await.unwrap_err();
    assert_eq!(problem_code(&error), "capability-denied", "{error}");
    assert_eq!(scene.query_one::<i64>("crm.sqlite", "SELECT count(*) FROM contacts"), 1);
}
