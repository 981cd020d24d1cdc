//! A reload (H5): the config read again and everything it changes built and
//! checked beside the running version, before anything is swapped.
//!
//! In order: parse and validate the whole file; load the plugins (compiling
//! only those whose bytes changed, on a blocking thread, off the scheduler's
//! path); diff against the running config; refuse if any added or changed
//! plugin, endpoint or mapper does not load; probe the connections of the
//! endpoints it adds or changes (T4). Only then is the result handed to the
//! supervisor to swap. Any failure leaves the running version serving, and
//! every reason is reported with its place and fix.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::config::{diff, ConfigDiff, ConfigView, LoadedConfig, PieceChange};
use crate::engine::Engine;

/// One reason a reload was refused, with the fix: a catalog's failure or any other.
pub use crate::catalog::Failure as Reason;

/// What reading the config again came to.
pub enum Prepared {
    /// A new engine, built and checked, and what it changes.
    Ready { engine: Box<Engine>, diff: ConfigDiff },
    /// The files changed in nothing that matters (a comment, a touch).
    Unchanged,
    /// Refused, for these reasons; the running version stays.
    Rejected(Vec<Reason>),
}

/// A short digest of what a config serves: its tables and its plugins' bytes.
/// Reformatting the file or editing a comment leaves it as it is.
pub fn revision(raw: &toml::Table, plugin_digests: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(raw.to_string());
    for (id, digest) in plugin_digests {
        hasher.update(format!("\n{id}={digest}"));
    }
    hex::encode(hasher.finalize())[..12].to_owned()
}

/// The revision `engine` serves.
pub fn serving_revision(engine: &Engine) -> String {
    revision(&engine.config.raw, &engine.catalog.digests)
}

/// Reads the config of `current` again and builds what it changes.
pub async fn prepare(current: &Engine) -> Prepared {
    let path = current.config.path.clone();
    let config = match LoadedConfig::load(&path).and_then(|config| config.missing_variables().map(|()| config)) {
        Ok(config) => config,
        Err(errors) => {
            return Prepared::Rejected(
                errors
                    .0
                    .into_iter()
                    .map(|error| {
                        let place = match error.location {
                            Some((line, column)) => format!("{}:{line}:{column}", error.file.display()),
                            None => error.file.display().to_string(),
                        };
                        Reason { message: format!("{place}: {}", error.message), hint: error.fix }
                    })
                    .collect(),
            );
        }
    };
    if let Some(reason) = fixed_at_start(&current.config, &config) {
        return Prepared::Rejected(vec![reason]);
    }
    let previous = current.catalog.clone();
    let built = tokio::task::spawn_blocking(move || {
        let catalog = previous.reload(&config);
        (config, catalog)
    })
    .await;
    let (config, catalog) = match built {
        Ok(built) => built,
        Err(error) => return Prepared::Rejected(vec![Reason { message: format!("loading the plugins failed: {error}"), hint: None }]),
    };
    let diff = diff(
        &ConfigView { raw: &current.config.raw, plugin_digests: &current.catalog.digests },
        &ConfigView { raw: &config.raw, plugin_digests: &catalog.digests },
    );
    if diff.is_empty() {
        return Prepared::Unchanged;
    }
    let mut reasons = not_loaded(&diff, &catalog);
    let engine = current.successor(Arc::new(config), Arc::new(catalog));
    if reasons.is_empty() {
        let probed = diff.endpoints_to_probe();
        for result in engine.probe_some(|endpoint| probed.contains(endpoint)).await {
            for problem in result.problems {
                reasons.push(Reason {
                    message: format!("endpoint `{}`: {}: {}", result.endpoint, problem.code, problem.message),
                    hint: problem.hint.or_else(|| Some(format!("check [endpoints.{}] in {}", result.endpoint, path.display()))),
                });
            }
        }
    }
    if reasons.is_empty() { Prepared::Ready { engine: Box::new(engine), diff } } else { Prepared::Rejected(reasons) }
}

/// What a running host cannot change: where its state lives.
fn fixed_at_start(running: &LoadedConfig, new: &LoadedConfig) -> Option<Reason> {
    let moved = |what: &str, from: std::path::PathBuf, to: std::path::PathBuf| {
        (from != to).then(|| Reason {
            message: format!("[host] {what} changed from {} to {}: a running host keeps its {what}", from.display(), to.display()),
            hint: Some(format!("restart `synchost run` to use the new {what}, or put the old value back")),
        })
    };
    moved("data_dir", running.data_dir(), new.data_dir()).or_else(|| moved("cache_dir", running.cache_dir(), new.cache_dir()))
}

/// Every added or changed plugin, endpoint and mapper that did not load.
fn not_loaded(diff: &ConfigDiff, catalog: &Catalog) -> Vec<Reason> {
    let live = |change: &PieceChange| *change != PieceChange::Removed;
    let mut reasons = Vec::new();
    for id in diff.plugins.iter().filter(|(_, c)| live(c)).map(|(id, _)| id) {
        if let Some(Err(failure)) = catalog.plugins.get(id) {
            reasons.push(Reason { message: failure.message.clone(), hint: failure.hint.clone() });
        }
    }
    for name in diff.endpoints.iter().chain(&diff.mappers).filter(|(_, c)| live(c)).map(|(name, _)| name) {
        if let Some(Err(failure)) = catalog.instances.get(name) {
            // A plugin's failure is already told once, under the plugin.
            if !reasons.iter().any(|r| r.message == failure.message) {
                reasons.push(Reason { message: failure.message.clone(), hint: failure.hint.clone() });
            }
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_follows_content_not_layout() {
        let digests = BTreeMap::from([("p".to_owned(), "d1".to_owned())]);
        let a: toml::Table = "[pipelines.p]\nschedule = \"5s\"\n".parse().unwrap();
        let b: toml::Table = "# a comment\n[pipelines]\np = { schedule = \"5s\" }\n".parse().unwrap();
        assert_eq!(revision(&a, &digests), revision(&b, &digests));
        let other = BTreeMap::from([("p".to_owned(), "d2".to_owned())]);
        assert_ne!(revision(&a, &digests), revision(&a, &other));
        assert_eq!(revision(&a, &digests).len(), 12);
    }
}
