//! The host reads a plugin's declared API version before it compiles or
//! instantiates anything, and refuses incompatible ones with a clear message.

use synchost::engine::Mode;
use synchost::runtime::metadata::{Binding, MetadataError};
use synchost::runtime::{LoadError, Runtime};
use synchost_tests::{guests, toml_path, Scene};

// Covers: H2
#[test]
fn an_incompatible_api_version_is_refused_before_instantiation() {
    let runtime = Runtime::new(None).unwrap();
    let bytes = std::fs::read(guests::FUTURE_API).unwrap();
    let error = match runtime.load_plugin("future-api", &bytes) {
        Ok(_) => panic!("a plugin for API 0.9.0 must be refused"),
        Err(error) => error,
    };
    // Refused while reading metadata: nothing was compiled, linked or instantiated.
    let LoadError::Metadata { plugin, source: MetadataError::Incompatible { found, accepts } } = &error else {
        panic!("expected an API version refusal, got {error:?}")
    };
    assert_eq!(plugin, "future-api");
    assert_eq!(found.to_string(), "0.9.0");
    assert_eq!(accepts, "0.5.x or 0.4.x or 0.3.x");
    let message = error.to_string();
    assert!(message.contains("it was built for plugin API 0.9.0, but this host runs plugin API 0.5.x or 0.4.x or 0.3.x"), "{message}");
    assert!(message.contains("rebuild it against synchost-plugin-sdk 0.5.0"), "{message}");
}

// Covers: H2
#[test]
fn compatible_plugins_load_and_incompatible_ones_fail_only_their_instances() {
    let scene = Scene::new();
    let catalog = scene.load(&format!(
        r#"
[plugins.future]
path = {}

[mappers.from-the-future]
plugin = "future"

[mappers.crm]
plugin = "crm-mapper"
"#,
        toml_path(std::path::Path::new(guests::FUTURE_API))
    ));
    let failure = catalog.instance("from-the-future").err().expect("refused");
    assert!(failure.message.contains("built for plugin API 0.9.0"), "{failure}");
    let crm = catalog.instance("crm").expect("a compatible plugin still loads");
    assert_eq!(crm.plugin().metadata.api_version.to_string(), "0.5.0");
}

// Covers: H2
#[test]
fn files_that_are_not_sdk_components_are_refused_with_the_reason() {
    let runtime = Runtime::new(None).unwrap();
    let refuse = |bytes: &[u8]| match runtime.load_plugin("odd", bytes) {
        Ok(_) => panic!("must be refused"),
        Err(error) => error.to_string(),
    };
    assert!(refuse(b"not wasm at all").contains("not a valid WebAssembly file"));
    // A core module header (version 1) and an empty component (version 0x0d, layer 1).
    assert!(refuse(b"\0asm\x01\0\0\0").contains("core WebAssembly module, not a component"));
    assert!(refuse(b"\0asm\x0d\0\x01\0").contains("no `synchost:api-version` section"));
}

// Covers: H2, P12, C5
#[tokio::test(flavor = "multi_thread")]
async fn plugins_built_against_api_0_3_run_beside_current_ones() {
    earlier_plugins_run_beside_current_ones(guests::API_0_3_CONNECTOR, guests::API_0_3_MAPPER, Binding::V0_3).await;
}

// Covers: H2, P12, C5
#[tokio::test(flavor = "multi_thread")]
async fn plugins_built_against_api_0_4_run_beside_current_ones() {
    earlier_plugins_run_beside_current_ones(guests::API_0_4_CONNECTOR, guests::API_0_4_MAPPER, Binding::V0_4).await;
}

/// A connector and a mapper of an earlier API, in a pipeline with a current connector.
async fn earlier_plugins_run_beside_current_ones(connector: &str, mapper: &str, binding: Binding) {
    let scene = Scene::new();
    scene.database(
        "people.sqlite",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT NOT NULL);
         INSERT INTO people VALUES (1, 'ada', '2026-01-01T00:00:00Z'), (2, 'grace', '2026-01-01T00:00:00Z'), (3, ' ', '2026-01-01T00:00:00Z');",
    );
    scene.database("items.sqlite", "CREATE TABLE items (id TEXT PRIMARY KEY, name TEXT);");
    let engine = scene.engine(&format!(
        r#"
[plugins.items-0-3]
path = {connector}

[plugins.shout-0-3]
path = {mapper}

[endpoints.people]
plugin = "sql-table"
grants.sql.db = {{ dsn = "sqlite:people.sqlite" }}
settings = {{ connection = "db", entities.people = {{ updated_at = "updated_at" }} }}

[endpoints.items]
plugin = "items-0-3"
grants.sql.db = {{ dsn = "sqlite:items.sqlite" }}

[mappers.shout]
plugin = "shout-0-3"

[pipelines.p]
left = {{ endpoint = "people", entity = "people" }}
right = {{ endpoint = "items", entity = "items" }}
mapper = "shout"
create = "left-to-right"
fields = {{ name = {{}} }}
"#,
        connector = toml_path(std::path::Path::new(connector)),
        mapper = toml_path(std::path::Path::new(mapper)),
    ));
    for (name, binding) in [("items", binding), ("shout", binding), ("people", Binding::V0_5)] {
        let instance = engine.catalog.instance(name).unwrap_or_else(|f| panic!("{name} loads: {f}"));
        assert_eq!(instance.plugin().metadata.binding, binding, "{name}");
    }

    // The earlier mapper maps and validates (0.3: in two calls); the earlier
    // connector reads and writes through its version's SQL service.
    let report = engine.run("p", "test", Mode::Apply).await.unwrap_or_else(|e| panic!("run failed: {e}"));
    assert_eq!((report.counts.created, report.counts.failed), (2, 1));
    assert_eq!(scene.rows("items.sqlite", "SELECT name FROM items ORDER BY name"), ["ADA", "GRACE"]);
    let failed = engine.state.failed(Some("p")).unwrap();
    assert_eq!(failed[0].source_id, "3");
    assert!(failed[0].reason.contains("a name is required"), "{}", failed[0].reason);

    // An edit goes through as an update of the record linked, by the id the
    // earlier connector gave it; its own echo is passed over.
    scene.sql("people.sqlite", "UPDATE people SET name = 'ada lovelace', updated_at = '2026-01-02T00:00:00Z' WHERE id = 1");
    let report = engine.run("p", "test", Mode::Apply).await.unwrap_or_else(|e| panic!("run failed: {e}"));
    assert_eq!((report.counts.created, report.counts.updated), (0, 1));
    assert_eq!(scene.rows("items.sqlite", "SELECT name FROM items ORDER BY name"), ["ADA LOVELACE", "GRACE"]);
    let report = engine.run("p", "test", Mode::Apply).await.unwrap_or_else(|e| panic!("run failed: {e}"));
    assert_eq!((report.counts.created, report.counts.updated, report.counts.failed), (0, 0, 0));
}
