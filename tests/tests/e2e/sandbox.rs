//! A plugin's trap, hang, memory blow-up or oversized output fails that call
//! only, with an error naming the plugin, the function and the cause; the host
//! and every other plugin keep serving.

use std::time::{Duration, Instant};

use synchost::model::Value;
use synchost::runtime::CallError;
use synchost_tests::{guests, instance, toml_path, Scene};

fn scene_config(scene: &Scene) -> String {
    scene.database(
        "crm.sqlite",
        "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT);
         INSERT INTO contacts VALUES (1, 'Ada', '2026-01-01T00:00:00.000Z');",
    );
    format!(
        r#"
[plugins.misbehaving]
path = {guest}

[endpoints.trap]
plugin = "misbehaving"
settings = {{ behaviour = "trap" }}

[endpoints.panic]
plugin = "misbehaving"
settings = {{ behaviour = "panic" }}

[endpoints.hang]
plugin = "misbehaving"
settings = {{ behaviour = "loop" }}
limits = {{ timeout = "1s" }}

[endpoints.hog]
plugin = "misbehaving"
settings = {{ behaviour = "allocate" }}
limits = {{ memory = "32MiB" }}

[endpoints.flood]
plugin = "misbehaving"
settings = {{ behaviour = "huge-output", output_bytes = 4194304 }}
limits = {{ max_output = "1MiB" }}

[endpoints.fine]
plugin = "misbehaving"
settings = {{ behaviour = "ok" }}

[endpoints.remember]
plugin = "misbehaving"
settings = {{ behaviour = "remember" }}

[endpoints.crm]
plugin = "sql-table"
settings = {{ connection = "crm", entities = {{ contacts = {{ updated_at = "updated_at" }} }} }}
grants.sql.crm = {{ dsn = "sqlite:crm.sqlite" }}
"#,
        guest = toml_path(std::path::Path::new(guests::MISBEHAVING))
    )
}

/// The host still serves the same plugin and another plugin after a failure.
async fn host_still_serves(catalog: &synchost::catalog::Catalog) {
    let fine = instance(catalog, "fine").read("items", None, 10).await.expect("same plugin, other instance");
    assert_eq!(fine.records.len(), 1);
    let crm = instance(catalog, "crm").read("contacts", None, 10).await.expect("other plugin");
    assert_eq!(crm.records[0].id, "1");
}

// Covers: H1, H3
#[tokio::test(flavor = "multi_thread")]
async fn a_call_finds_nothing_an_earlier_call_left_in_memory() {
    // Each call gets a fresh instance; the slot's memory is kept mapped
    // between calls for speed, so it must come back zeroed.
    let scene = Scene::new();
    let catalog = scene.load(&scene_config(&scene));
    for call in 0..4 {
        let batch = instance(&catalog, "remember").read("items", None, 10).await.unwrap();
        let record = &batch.records[0];
        assert_eq!(record.get("calls_before"), Some(&Value::Integer(0)), "call {call} saw a static of an earlier call");
        assert_eq!(record.get("residue"), Some(&Value::Integer(0)), "call {call} saw memory an earlier call wrote");
    }
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn a_trap_fails_only_its_call() {
    let scene = Scene::new();
    let catalog = scene.load(&scene_config(&scene));
    let error = instance(&catalog, "trap").read("items", None, 10).await.unwrap_err();
    let CallError::Trap { site, message } = &error else { panic!("expected a trap, got {error:?}") };
    assert_eq!((site.plugin.as_str(), site.instance.as_str(), site.function), ("misbehaving", "trap", "read"));
    assert!(message.contains("unreachable"), "{message}");
    let text = error.to_string();
    assert!(text.contains("`trap` (plugin `misbehaving`) in `read`"), "{text}");
    host_still_serves(&catalog).await;
    // The same instance works again on its next call (a fresh store each call).
    assert!(matches!(instance(&catalog, "trap").describe().await, Ok(entities) if entities.len() == 1));
}

// Covers: H1, H3
#[tokio::test(flavor = "multi_thread")]
async fn a_panic_reports_the_panic_message() {
    let scene = Scene::new();
    let catalog = scene.load(&scene_config(&scene));
    let error = instance(&catalog, "panic").read("items", None, 10).await.unwrap_err();
    assert!(matches!(error, CallError::Trap { .. }), "{error:?}");
    assert!(error.to_string().contains("the misbehaving guest panics on purpose"), "{error}");
    assert!(error.hint().unwrap().contains("bug in plugin `misbehaving`"));
    host_still_serves(&catalog).await;
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn a_hang_is_stopped_at_its_deadline_while_others_run() {
    let scene = Scene::new();
    let catalog = scene.load(&scene_config(&scene));
    let started = Instant::now();
    let hang = instance(&catalog, "hang").clone();
    let hanging = tokio::spawn(async move { hang.read("items", None, 10).await });
    // While the plugin spins, other plugins answer.
    tokio::time::sleep(Duration::from_millis(100)).await;
    host_still_serves(&catalog).await;
    assert!(!hanging.is_finished(), "the hanging call should still be running");
    let error = hanging.await.unwrap().unwrap_err();
    let elapsed = started.elapsed();
    let CallError::Timeout { site, limit } = &error else { panic!("expected a timeout, got {error:?}") };
    assert_eq!((site.instance.as_str(), *limit), ("hang", Duration::from_secs(1)));
    assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(error.to_string().contains("ran longer than its 1s limit"), "{error}");
    assert!(error.retryable());
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn a_memory_bomb_hits_its_limit() {
    let scene = Scene::new();
    let catalog = scene.load(&scene_config(&scene));
    let error = instance(&catalog, "hog").read("items", None, 10).await.unwrap_err();
    let CallError::MemoryLimit { attempted, limit, .. } = &error else { panic!("expected memory limit, got {error:?}") };
    assert_eq!(*limit, 32 << 20);
    assert!(*attempted as u64 > *limit);
    assert!(error.hint().unwrap().contains("limits.memory of `hog`"));
    host_still_serves(&catalog).await;
}

// Covers: H1
#[tokio::test(flavor = "multi_thread")]
async fn huge_output_is_refused() {
    let scene = Scene::new();
    let catalog = scene.load(&scene_config(&scene));
    let error = instance(&catalog, "flood").read("items", None, 10).await.unwrap_err();
    let CallError::OutputTooLarge { size, limit, .. } = &error else { panic!("expected output limit, got {error:?}") };
    assert_eq!(*limit, 1 << 20);
    assert!(*size >= 4 << 20, "{size}");
    host_still_serves(&catalog).await;
}
