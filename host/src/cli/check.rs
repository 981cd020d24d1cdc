//! `synchost check [CONFIG]`: validate the config and plugins, probe every connection.

use crate::cli::output::{say};
use std::path::Path;
use std::time::Duration;

use super::{load_catalog, CommandError};
use crate::catalog::Catalog;
use crate::config::LoadedConfig;
use crate::model::{Direction, EntityDef};
use crate::runtime::{CallError, Instance};

/// The report, a line per check; counts the problems.
pub(super) struct Report {
    pub problems: usize,
}

impl Report {
    pub fn ok(&self, name: &str, detail: &str) {
        say!("  ok    {name:<20} {detail}");
    }

    pub fn fail(&mut self, name: &str, message: &str, hint: Option<&str>) {
        self.problems += 1;
        say!("  FAIL  {name:<20} {message}");
        if let Some(hint) = hint {
            say!("        {:<20} fix: {hint}", "");
        }
    }

    fn call_failed(&mut self, name: &str, error: &CallError) {
        self.fail(name, &error.to_string(), error.hint().as_deref());
    }

    /// A failed call; a complaint about the instance's settings also says
    /// where in the config the setting it names is written.
    fn instance_failed(&mut self, config: &LoadedConfig, section: &str, name: &str, error: &CallError) {
        self.call_failed(name, error);
        let Some(problem) = error.problem().filter(|p| p.code == "bad-settings") else { return };
        // Serde names the field: "unknown field `colour`", "missing field `connection`".
        let key = problem.message.split("field `").nth(1).and_then(|rest| rest.split('`').next());
        if let Some(place) = config.settings_place(section, name, key) {
            say!("        {:<20} at {place}", "");
        }
    }
}

fn describe_entities(entities: &[EntityDef]) -> String {
    entities
        .iter()
        .map(|e| {
            let mut traits = vec![format!("{} fields", e.fields.len())];
            traits.push(if e.change_feed { "change feed".into() } else { "full scan".into() });
            if e.soft_delete {
                traits.push("soft delete".into());
            }
            if !e.writable {
                traits.push("read-only".into());
            }
            format!("{} ({})", e.name, traits.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub async fn run(config_path: &Path) -> Result<(), CommandError> {
    let mut report = Report { problems: 0 };
    checks(config_path, &mut report).await?;
    verdict(&report, "everything is ready")
}

/// The end of a report: all well, or how many problems.
pub(super) fn verdict(report: &Report, all_well: &str) -> Result<(), CommandError> {
    say!();
    if report.problems == 0 {
        say!("{all_well}");
        Ok(())
    } else {
        Err(CommandError::Reported(format!("{} problem(s) found", report.problems)))
    }
}

/// The config, its plugins and instances, every granted connection, the
/// pipelines and the permissions they need.
pub(super) async fn checks(config_path: &Path, report: &mut Report) -> Result<(), CommandError> {
    let (config, catalog) = load_catalog(config_path)?;
    say!(
        "config {}: ok ({} endpoint(s), {} mapper(s))",
        config.path.display(),
        config.config.endpoints.len(),
        config.config.mappers.len()
    );
    check_plugins(&catalog, report);
    check_instances(&config, &catalog, report).await;
    if !config.config.pipelines.is_empty() {
        say!("\npipelines:");
        let state = crate::state::State::open(&config.state_path()).map_err(|e| CommandError::Other(e.into()))?;
        match state.verify() {
            Ok(()) => report.ok("state", &format!("{} is intact", config.state_path().display())),
            Err(error) => report.fail("state", &error.to_string(), None),
        }
        for (pipeline, warning) in contradictions(&config) {
            say!("  warn  {pipeline:<20} {warning}");
        }
        let engine = crate::engine::Engine::new(std::sync::Arc::new(config), std::sync::Arc::new(catalog), std::sync::Arc::new(state));
        for name in engine.config.config.pipelines.keys() {
            match engine.check_pipeline(name.as_str()).await {
                Ok((summary, warnings)) => {
                    report.ok(name.as_str(), &summary);
                    for warning in warnings {
                        say!("  warn  {:<20} {warning}", name.as_str());
                    }
                }
                Err(error) => report.fail(name.as_str(), &error.to_string(), error.hint().as_deref()),
            }
        }
        say!("\npermissions (what the pipelines need from each endpoint):");
        for result in engine.probe_endpoints().await {
            let wants = result
                .needs
                .iter()
                .map(|n| format!("{} {}", n.entity, if n.write { "read+write" } else { "read" }))
                .collect::<Vec<_>>()
                .join(", ");
            if result.problems.is_empty() {
                report.ok(&result.endpoint, &format!("may {wants}"));
            }
            for problem in &result.problems {
                report.fail(&result.endpoint, &problem.message, problem.hint.as_deref());
            }
        }
    }
    Ok(())
}

/// Settings that can never take effect: said, so that nobody relies on them.
fn contradictions(config: &LoadedConfig) -> Vec<(String, String)> {
    use crate::config::Flow;
    let mut found = Vec::new();
    for (name, pipeline) in &config.config.pipelines {
        for (field, rule) in &pipeline.fields {
            if let (Some(policy), true) = (rule.conflict, rule.direction != Flow::Both) {
                found.push((
                    name.to_string(),
                    format!(
                        "fields.{field}: conflict = \"{}\" never applies: with direction = \"{}\" only one side's changes flow; remove `conflict`",
                        policy.as_str(),
                        rule.direction.as_str()
                    ),
                ));
            }
        }
    }
    found
}

fn check_plugins(catalog: &Catalog, report: &mut Report) {
    say!("\nplugins:");
    for (name, plugin) in &catalog.plugins {
        match plugin {
            Ok(plugin) => report.ok(
                name,
                &format!("{}, plugin API {}, sha256 {}", plugin.kind(), plugin.metadata.api_version, &plugin.sha256[..16]),
            ),
            Err(failure) => report.fail(name, &failure.message, failure.hint.as_deref()),
        }
    }
}

async fn check_instances(config: &LoadedConfig, catalog: &Catalog, report: &mut Report) {
    for (title, names) in [
        ("endpoints", config.config.endpoints.keys().map(|n| n.to_string()).collect::<Vec<_>>()),
        ("mappers", config.config.mappers.keys().map(|n| n.to_string()).collect()),
    ] {
        if names.is_empty() {
            continue;
        }
        say!("\n{title}:");
        for name in names {
            match catalog.instance(&name) {
                Err(failure) => report.fail(&name, &failure.message, failure.hint.as_deref()),
                Ok(instance) => check_instance(config, title, instance, report).await,
            }
        }
    }
}

async fn check_instance(config: &LoadedConfig, section: &str, instance: &Instance, report: &mut Report) {
    let name = instance.name();
    let context = instance.context();
    for (connection, grant) in &context.sql {
        let label = format!("{name} sql:{connection}");
        let path = grant.database.path().display();
        match grant.database.probe(&grant.origin).and_then(|()| grant.database.integrity(&grant.origin)) {
            Ok(damage) if damage.is_empty() => report.ok(&label, &format!("{path} opens and is intact")),
            Ok(damage) => report.fail(
                &label,
                &format!("{path} is damaged: {}", damage.join("; ")),
                Some("restore the file from a backup (or repair it with sqlite3's .recover) before synchronising it"),
            ),
            Err(problem) => report.fail(&label, &problem.message, problem.hint.as_deref()),
        }
    }
    for origin in &context.http.allow {
        let label = format!("{name} http");
        let port = origin.port.unwrap_or(if origin.scheme.as_deref() == Some("https") { 443 } else { 80 });
        let address = format!("{}:{port}", origin.host);
        match tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(&address)).await {
            Ok(Ok(_)) => report.ok(&label, &format!("{address} reachable")),
            Ok(Err(error)) => report.fail(
                &label,
                &format!("{address} is not reachable: {error}"),
                Some(&format!("start the service at {address}, or correct [endpoints.{name}.grants.http] allow")),
            ),
            Err(_) => report.fail(&label, &format!("{address} did not answer within 3 s"), Some("check the network path to it")),
        }
    }
    let plugin = &instance.plugin().name;
    match instance.plugin().kind() {
        crate::runtime::PluginKind::Connector => match instance.describe().await {
            Ok(entities) => report.ok(name, &format!("{plugin}: {}", describe_entities(&entities))),
            Err(error) => report.instance_failed(config, section, name, &error),
        },
        crate::runtime::PluginKind::Mapper => match instance.map_and_validate(Direction::LeftToRight, &[]).await {
            Ok(_) => report.ok(name, &format!("{plugin}: settings accepted")),
            Err(error) => report.instance_failed(config, section, name, &error),
        },
    }
}
