//! `synchost package shadow INSTANCE NAME@VERSION`: an installed version
//! run beside the active one on the same records, writing nothing.

use std::path::Path;
use std::sync::Arc;

use super::output::say;
use super::admin::{run_error, state_error};
use super::CommandError;
use crate::catalog::Catalog;
use crate::config::{LoadedConfig, PluginId};
use crate::engine::shadow::Pass;
use crate::engine::Engine;
use crate::state::State;

/// Records of one comparison listed before the rest are only counted.
const LISTED: usize = 20;

/// The config with every grant read-only: a shadow looks, it never changes
/// anything, whatever a plugin version tries.
fn read_only(path: &Path) -> Result<LoadedConfig, CommandError> {
    let mut config = LoadedConfig::load(path).map_err(CommandError::Config)?;
    config.missing_variables().map_err(CommandError::Config)?;
    for instance in config.config.endpoints.values_mut().chain(config.config.mappers.values_mut()) {
        instance.grants.sql.values_mut().for_each(|grant| grant.read_only = true);
        instance.grants.files.values_mut().for_each(|grant| grant.read_only = true);
        instance.grants.http.read_only = true;
    }
    Ok(config)
}

/// The plugin that `instance` runs now, as a person reads it.
fn active_plugin(config: &LoadedConfig, instance: &str) -> Result<String, CommandError> {
    let (_, found) = config.instance(instance).ok_or_else(|| {
        let names: Vec<String> = config.config.endpoints.keys().chain(config.config.mappers.keys()).map(ToString::to_string).collect();
        CommandError::Reported(format!(
            "there is no endpoint or mapper named `{instance}`\n  = fix: name one of the config's: {}",
            names.join(", ")
        ))
    })?;
    let id = found.plugin.get_ref();
    let version = config.packages().resolve(id.name(), id.pin()).ok().map(|resolved| resolved.manifest.package.version);
    Ok(match version {
        Some(version) => format!("{} {version}", id.name()),
        None => format!("plugin `{id}`"),
    })
}

pub async fn run(config_path: &Path, instance: &str, candidate: &str, records: u32, json: bool) -> Result<(), CommandError> {
    let Some((name, version)) = candidate.split_once('@').filter(|(_, v)| semver::Version::parse(v).is_ok()) else {
        return Err(CommandError::Reported(format!(
            "`{candidate}`: name the candidate as NAME@VERSION with its whole version, e.g. acme-tickets@1.3.0\n  = fix: `synchost package info NAME` lists the installed versions"
        )));
    };
    let active_config = read_only(config_path)?;
    let active = active_plugin(&active_config, instance)?;
    let mut candidate_config = read_only(config_path)?;
    let id = PluginId::try_from(format!("{name}@{version}")).map_err(CommandError::Reported)?;
    let section = candidate_config
        .config
        .endpoints
        .iter_mut()
        .chain(candidate_config.config.mappers.iter_mut())
        .find(|(n, _)| n.as_str() == instance)
        .map(|(_, i)| i)
        .expect("active_plugin found the instance");
    let span = section.plugin.span();
    section.plugin = toml::Spanned::new(span, id);

    let active_catalog = Catalog::load(&active_config).map_err(CommandError::Other)?;
    let candidate_catalog = active_catalog.reload(&candidate_config);
    // The candidate must at least load: without that there is nothing to compare.
    candidate_catalog.instance(instance).map_err(CommandError::Failure)?;
    let state = Arc::new(State::open(&active_config.state_path()).map_err(state_error)?);
    let active_engine = Engine::new(Arc::new(active_config), Arc::new(active_catalog), state.clone());
    let candidate_engine = Engine::new(Arc::new(candidate_config), Arc::new(candidate_catalog), state);
    let passes = active_engine.shadow(&candidate_engine, instance, records).await.map_err(run_error)?;
    if passes.is_empty() {
        return Err(CommandError::Reported(format!(
            "no pipeline uses `{instance}`: there are no records to compare on\n  = fix: shadow an endpoint or mapper that a pipeline of the config uses"
        )));
    }
    if json {
        let out = serde_json::json!({ "instance": instance, "active": active, "candidate": format!("{name} {version}"), "passes": passes });
        say!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialize"));
    } else {
        say!("shadow of {name} {version} as `{instance}` (active: {active}), on the last {records} records of each pipeline side; nothing is written");
        passes.iter().for_each(show);
        let compared: usize = passes.iter().map(|p| p.compared).sum();
        let differing: usize = passes.iter().map(|p| p.differing.len()).sum();
        say!();
        say!("{differing} of {compared} records compared differ");
    }
    let failed = passes.iter().filter(|p| p.candidate_error.is_some()).count();
    if failed > 0 {
        return Err(CommandError::Reported(format!(
            "the candidate failed in {failed} comparison(s) where the active version did not (see above)\n  = fix: do not accept {name} {version} until its vendor fixes that"
        )));
    }
    Ok(())
}

fn show(pass: &Pass) {
    say!();
    let header = format!("pipeline `{}`, {}", pass.pipeline, pass.what);
    if let Some(error) = &pass.active_error {
        say!("{header}: not compared, the active version failed: {error}");
        return;
    }
    if let Some(error) = &pass.candidate_error {
        say!("{header}: the CANDIDATE FAILED: {error}");
        return;
    }
    match pass.differing.len() {
        0 => say!("{header}: {} records, none differ", pass.compared),
        n => say!("{header}: {} records, {n} differ", pass.compared),
    }
    for record in pass.differing.iter().take(LISTED) {
        say!("  record {}", record.id);
        for difference in &record.differences {
            say!("    {difference}");
        }
    }
    if pass.differing.len() > LISTED {
        say!("  ... and {} more (--json lists every one)", pass.differing.len() - LISTED);
    }
}
