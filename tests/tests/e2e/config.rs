//! A bad config reports every error at once, each with file, line, column and fix.

use synchost::config::LoadedConfig;

const BAD: &str = r#"[host]
data_dir = 5

[endpoints.Bad_Name]
plugin = "sql-table"

[endpoints.crm]
plugin = "sql-tabel"

[endpoints.colourful]
plugin = "sql-table"
colour = "blue"

[endpoints.remote]
plugin = "sql-table"
grants.sql.main = { dsn = "postgres://db.example.com/crm" }
limits = { timeout = "soon" }

[pipeline.x]
left = "crm"

[mappers.big]
plugin = "crm-mapper"
limits = { memory = "2GiB" }
"#;

// Covers: H6
#[test]
fn every_config_error_is_reported_with_its_location_and_fix() {
    let errors = LoadedConfig::parse(std::path::Path::new("bad.toml"), BAD).unwrap_err();
    let found: Vec<(usize, String)> = errors
        .0
        .iter()
        .map(|e| (e.location.expect("every error here has a place").0, e.message.clone()))
        .collect();
    let expect = |line: usize, text: &str| {
        assert!(
            found.iter().any(|(l, m)| *l == line && m.contains(text)),
            "no error on line {line} containing {text:?}; found {found:#?}"
        );
    };
    expect(2, "invalid type: integer `5`");
    expect(4, "`Bad_Name` is not a valid instance name");
    expect(8, "uses plugin `sql-tabel`, which is neither bundled, declared, nor an installed package");
    expect(12, "unknown field `colour`");
    expect(19, "unknown section `pipeline`");
    expect(24, "memory limit 2.0 GiB is over the host's maximum of 1 GiB");
    // The same entry can hold only its first error; `remote` has its own.
    assert!(found.iter().any(|(l, m)| (16..=17).contains(l) && (m.contains("PostgreSQL") || m.contains("soon"))), "{found:#?}");
    assert_eq!(found.len(), 7, "{found:#?}");
    assert!(errors.0.iter().all(|e| e.fix.is_some()), "every error says how to fix it");

    let text = errors.to_string();
    assert!(text.contains("--> bad.toml:8:10"), "{text}");
    assert!(text.contains("plugin = \"sql-tabel\"\n  |          ^^^^^^^^^^^"), "{text}");
    assert!(text.contains("= fix: use one of: sql-table, crm-mapper"), "{text}");
    assert!(text.ends_with("7 errors in the config"), "{text}");
}

// Covers: H6
#[test]
fn syntax_errors_are_reported_with_their_location() {
    let errors = LoadedConfig::parse(std::path::Path::new("broken.toml"), "[endpoints.a]\nplugin = \"sql-table\nx = 1\n").unwrap_err();
    let first = &errors.0[0];
    assert_eq!(first.location.map(|l| l.0), Some(2), "{errors}");
    assert!(first.fix.as_deref().unwrap().contains("TOML syntax"));
}

// Covers: H6
#[test]
fn a_good_config_resolves_paths_and_limits() {
    let config = LoadedConfig::parse(
        std::path::Path::new("/etc/synchost/synchost.toml"),
        r#"
[host]
limits = { timeout = "10s" }

[endpoints.crm]
plugin = "sql-table"
limits = { memory = "64MiB" }
grants.sql.main = { dsn = "sqlite:data/crm.sqlite" }
"#,
    )
    .unwrap();
    assert_eq!(config.data_dir(), std::path::Path::new("/etc/synchost/synchost-data"));
    let (_, crm) = config.instance("crm").unwrap();
    let limits = config.limits(crm);
    assert_eq!(limits.timeout, std::time::Duration::from_secs(10));
    assert_eq!(limits.memory, 64 << 20);
    assert_eq!(limits.max_output, 32 << 20);
}

// Covers: H6, P10
#[test]
fn mirror_fields_that_would_never_be_written_are_a_config_error() {
    let config = |mirror: &str| {
        format!(
            r#"
[endpoints.a]
plugin = "sql-table"
grants.sql.main = {{ dsn = "sqlite:a.sqlite" }}

[pipelines.p]
left = {{ endpoint = "a", entity = "x" }}
right = {{ endpoint = "a", entity = "y" }}
conflict = "left-wins"
fields = {{ work = {{ mirror = {mirror} }} }}
"#
        )
    };
    let errors = LoadedConfig::parse(std::path::Path::new("m.toml"), &config(r#"{ right = "plan_work" }"#)).unwrap_err();
    assert!(errors.to_string().contains("field `work` has mirror fields that are never written: its conflict policy is left-wins"), "{errors}");
    assert!(errors.to_string().contains("always = true"), "{errors}");
    let errors = LoadedConfig::parse(std::path::Path::new("m.toml"), &config("{ always = true }")).unwrap_err();
    assert!(errors.to_string().contains("has a mirror that names no field"), "{errors}");
    LoadedConfig::parse(std::path::Path::new("m.toml"), &config(r#"{ right = "plan_work", always = true }"#)).unwrap();
}
