//! What a reload changes: the running config against the new one, per
//! plugin, endpoint, mapper and pipeline.
//!
//! A piece counts as changed when its own table in the file changed, or when
//! something it is built from changed: an instance whose plugin's bytes
//! changed (a new build at the same path), a pipeline whose endpoint or mapper
//! changed. `[host.limits]` applies to every instance that does not set its
//! own, so a change there changes every instance. Pipelines that did not
//! change keep running undisturbed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// What happened to one piece of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PieceChange {
    Added,
    Changed,
    Removed,
}

impl std::fmt::Display for PieceChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PieceChange::Added => "added",
            PieceChange::Changed => "changed",
            PieceChange::Removed => "removed",
        })
    }
}

/// The running config's view a diff needs: the file's tables and the
/// SHA-256 of each plugin's bytes.
pub struct ConfigView<'a> {
    pub raw: &'a toml::Table,
    pub plugin_digests: &'a BTreeMap<String, String>,
}

/// Every piece a reload adds, changes or removes; unchanged pieces are only counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigDiff {
    pub plugins: BTreeMap<String, PieceChange>,
    pub endpoints: BTreeMap<String, PieceChange>,
    pub mappers: BTreeMap<String, PieceChange>,
    pub pipelines: BTreeMap<String, PieceChange>,
    /// Pipelines that keep running as they are.
    pub unchanged_pipelines: usize,
    /// Whether `[host.limits]` changed (they apply to every instance).
    pub host: bool,
}

fn table<'a>(raw: &'a toml::Table, section: &str) -> BTreeMap<&'a str, &'a toml::Value> {
    raw.get(section).and_then(toml::Value::as_table).map(|t| t.iter().map(|(k, v)| (k.as_str(), v)).collect()).unwrap_or_default()
}

fn compare<'a>(old: &BTreeMap<&'a str, &toml::Value>, new: &BTreeMap<&'a str, &toml::Value>, also_changed: impl Fn(&str, &toml::Value) -> bool) -> BTreeMap<String, PieceChange> {
    let mut changes = BTreeMap::new();
    for (name, value) in new {
        match old.get(name) {
            None => {
                changes.insert(name.to_string(), PieceChange::Added);
            }
            Some(before) if before != value || also_changed(name, value) => {
                changes.insert(name.to_string(), PieceChange::Changed);
            }
            Some(_) => {}
        }
    }
    for name in old.keys().filter(|name| !new.contains_key(*name)) {
        changes.insert(name.to_string(), PieceChange::Removed);
    }
    changes
}

fn text<'a>(value: &'a toml::Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(toml::Value::as_str)
}

/// The pieces `new` adds, changes or removes against `old`.
pub fn diff(old: &ConfigView<'_>, new: &ConfigView<'_>) -> ConfigDiff {
    // Only `[host.limits]` reaches the instances; the data folder is checked
    // apart (it cannot change while a host runs), the trust list only matters to installs.
    let limits = |raw: &toml::Table| raw.get("host").and_then(|host| host.get("limits")).cloned();
    let host = limits(old.raw) != limits(new.raw);
    // A plugin is known by the digest of its bytes, bundled or from a file.
    let mut plugins = BTreeMap::new();
    for (id, digest) in new.plugin_digests {
        match old.plugin_digests.get(id) {
            None => {
                plugins.insert(id.clone(), PieceChange::Added);
            }
            Some(before) if before != digest => {
                plugins.insert(id.clone(), PieceChange::Changed);
            }
            Some(_) => {}
        }
    }
    for id in old.plugin_digests.keys().filter(|id| !new.plugin_digests.contains_key(*id)) {
        plugins.insert(id.clone(), PieceChange::Removed);
    }
    let plugin_changed = |value: &toml::Value| text(value, "plugin").is_some_and(|id| plugins.get(id) == Some(&PieceChange::Changed));
    let instance_changed = |_: &str, value: &toml::Value| host || plugin_changed(value);
    let endpoints = compare(&table(old.raw, "endpoints"), &table(new.raw, "endpoints"), instance_changed);
    let mappers = compare(&table(old.raw, "mappers"), &table(new.raw, "mappers"), instance_changed);

    let moved = |changes: &BTreeMap<String, PieceChange>, name: Option<&str>| name.is_some_and(|name| changes.contains_key(name));
    let new_pipelines = table(new.raw, "pipelines");
    let pipelines = compare(&table(old.raw, "pipelines"), &new_pipelines, |_, pipeline| {
        let endpoint = |side: &str| pipeline.get(side).and_then(|s| text(s, "endpoint"));
        moved(&endpoints, endpoint("left")) || moved(&endpoints, endpoint("right")) || moved(&mappers, text(pipeline, "mapper"))
    });
    let unchanged_pipelines = new_pipelines.keys().filter(|name| !pipelines.contains_key(**name)).count();
    ConfigDiff { plugins, endpoints, mappers, pipelines, unchanged_pipelines, host }
}

impl ConfigDiff {
    /// Whether the reload changes anything.
    pub fn is_empty(&self) -> bool {
        !self.host && self.plugins.is_empty() && self.endpoints.is_empty() && self.mappers.is_empty() && self.pipelines.is_empty()
    }

    /// Pipelines added or changed: they start their next run on the new config at once.
    pub fn restarted_pipelines(&self) -> BTreeSet<String> {
        self.pipelines.iter().filter(|(_, change)| **change != PieceChange::Removed).map(|(name, _)| name.clone()).collect()
    }

    /// Pipelines whose current run must end after its in-flight batch: changed or removed.
    pub fn superseded_pipelines(&self) -> BTreeSet<String> {
        self.pipelines.iter().filter(|(_, change)| **change != PieceChange::Added).map(|(name, _)| name.clone()).collect()
    }

    /// Endpoints added or changed: their connections are probed before the reload applies.
    pub fn endpoints_to_probe(&self) -> BTreeSet<String> {
        self.endpoints.iter().filter(|(_, change)| **change != PieceChange::Removed).map(|(name, _)| name.clone()).collect()
    }

    /// One line: `pipeline contacts changed; endpoint crm changed; 2 pipelines unchanged`.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "nothing changed".into();
        }
        let mut parts = Vec::new();
        if self.host {
            parts.push("[host.limits] changed".to_owned());
        }
        for (kind, changes) in [("plugin", &self.plugins), ("endpoint", &self.endpoints), ("mapper", &self.mappers), ("pipeline", &self.pipelines)] {
            for (name, change) in changes {
                parts.push(format!("{kind} {name} {change}"));
            }
        }
        parts.push(format!("{} pipeline{} unchanged", self.unchanged_pipelines, if self.unchanged_pipelines == 1 { "" } else { "s" }));
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[plugins.tickets]
path = "tickets.wasm"
[endpoints.a]
plugin = "sql-table"
settings = { connection = "db" }
[endpoints.b]
plugin = "tickets"
[mappers.m]
plugin = "crm-mapper"
[pipelines.p]
left = { endpoint = "a", entity = "contacts" }
right = { endpoint = "a", entity = "copy" }
fields = { name = {} }
[pipelines.q]
left = { endpoint = "a", entity = "contacts" }
right = { endpoint = "b", entity = "tickets" }
mapper = "m"
fields = { name = {} }
"#;

    fn digests(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn diff_of(old: &str, new: &str, old_digests: &[(&str, &str)], new_digests: &[(&str, &str)]) -> ConfigDiff {
        let (old, new): (toml::Table, toml::Table) = (old.parse().unwrap(), new.parse().unwrap());
        let (old_digests, new_digests) = (digests(old_digests), digests(new_digests));
        diff(&ConfigView { raw: &old, plugin_digests: &old_digests }, &ConfigView { raw: &new, plugin_digests: &new_digests })
    }

    const DIGESTS: &[(&str, &str)] = &[("sql-table", "s1"), ("tickets", "t1"), ("crm-mapper", "c1")];

    #[test]
    fn the_same_file_changes_nothing_even_reformatted() {
        let reformatted = BASE.replace("fields = { name = {} }", "fields.name = {}");
        let diff = diff_of(BASE, &reformatted, DIGESTS, DIGESTS);
        assert!(diff.is_empty(), "{diff:?}");
        assert_eq!(diff.unchanged_pipelines, 2);
        assert_eq!(diff.summary(), "nothing changed");
    }

    #[test]
    fn a_changed_field_map_changes_only_its_pipeline() {
        let new = BASE.replacen("fields = { name = {} }", "fields = { name = {}, phone = {} }", 1);
        let diff = diff_of(BASE, &new, DIGESTS, DIGESTS);
        assert_eq!(diff.pipelines, BTreeMap::from([("p".to_owned(), PieceChange::Changed)]));
        assert!(diff.endpoints.is_empty() && diff.mappers.is_empty());
        assert_eq!(diff.summary(), "pipeline p changed; 1 pipeline unchanged");
        assert_eq!(diff.superseded_pipelines(), BTreeSet::from(["p".to_owned()]));
    }

    #[test]
    fn a_new_build_of_a_plugin_changes_its_instances_and_their_pipelines() {
        let diff = diff_of(BASE, BASE, DIGESTS, &[("sql-table", "s1"), ("tickets", "t2"), ("crm-mapper", "c1")]);
        assert_eq!(diff.plugins, BTreeMap::from([("tickets".to_owned(), PieceChange::Changed)]));
        assert_eq!(diff.endpoints, BTreeMap::from([("b".to_owned(), PieceChange::Changed)]));
        assert_eq!(diff.pipelines, BTreeMap::from([("q".to_owned(), PieceChange::Changed)]));
        assert_eq!(diff.endpoints_to_probe(), BTreeSet::from(["b".to_owned()]));
    }

    #[test]
    fn a_changed_mapper_changes_the_pipelines_that_use_it() {
        let new = BASE.replace("plugin = \"crm-mapper\"", "plugin = \"crm-mapper\"\nsettings = { country = \"DE\" }");
        let diff = diff_of(BASE, &new, DIGESTS, DIGESTS);
        assert_eq!(diff.mappers, BTreeMap::from([("m".to_owned(), PieceChange::Changed)]));
        assert_eq!(diff.pipelines, BTreeMap::from([("q".to_owned(), PieceChange::Changed)]));
    }

    #[test]
    fn added_and_removed_pipelines_are_told_apart() {
        let new = BASE.replace("[pipelines.q]", "[pipelines.r]");
        let diff = diff_of(BASE, &new, DIGESTS, DIGESTS);
        assert_eq!(diff.pipelines, BTreeMap::from([("q".to_owned(), PieceChange::Removed), ("r".to_owned(), PieceChange::Added)]));
        assert_eq!(diff.restarted_pipelines(), BTreeSet::from(["r".to_owned()]));
        assert_eq!(diff.superseded_pipelines(), BTreeSet::from(["q".to_owned()]));
    }

    #[test]
    fn trusting_a_publisher_changes_no_instance() {
        let new = format!("[host.trusted_publishers]\nacme = \"ed25519:00\"\n{BASE}");
        assert!(diff_of(BASE, &new, DIGESTS, DIGESTS).is_empty());
    }

    #[test]
    fn host_limits_change_every_instance() {
        let new = format!("[host.limits]\ntimeout = \"5s\"\n{BASE}");
        let diff = diff_of(BASE, &new, DIGESTS, DIGESTS);
        assert!(diff.host);
        assert_eq!(diff.endpoints.len(), 2);
        assert_eq!(diff.mappers.len(), 1);
        assert_eq!(diff.pipelines.len(), 2);
    }
}
