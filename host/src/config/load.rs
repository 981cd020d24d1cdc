//! Reads a config file and collects every error, each with its place and fix.
//!
//! Serde stops at the first error, so the document is parsed into spanned
//! tables first and each section and each named entry is deserialized on its
//! own: a mistake in one endpoint does not hide a mistake in another.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::error::{ConfigError, ConfigErrors};
use super::pipeline::{ConflictPolicy, Flow, PipelineConfig};
use super::types::{Config, HostSettings, InstanceConfig, PluginSource};
use crate::bundled;
use crate::runtime::MAX_PLUGIN_MEMORY;

const SECTIONS: &[&str] = &["host", "plugins", "endpoints", "mappers", "pipelines", "replicas", "scopes"];
const SCHEMA_HINT: &str = "see schemas/synchost.schema.json for every setting";

struct Collector<'a> {
    file: &'a Path,
    source: &'a str,
    errors: Vec<ConfigError>,
}

impl Collector<'_> {
    fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>, fix: impl Into<String>) {
        self.errors.push(ConfigError::at(self.file, self.source, span, message).fix(fix));
    }

    fn from_toml(&mut self, error: toml::de::Error, fix: &str) {
        let message = error.message().trim().replace('\n', " ");
        self.error(error.span(), message, fix);
    }

    fn deserialize<T: DeserializeOwned>(&mut self, value: Spanned<DeValue<'_>>, what: &str) -> Option<T> {
        let span = value.span();
        let mut table = match value.into_inner() {
            DeValue::Table(table) => table,
            other => {
                return T::deserialize(ValueDeserializer::from(Spanned::new(span, other)))
                    .map_err(|error| self.from_toml(error, &format!("correct {what}; {SCHEMA_HINT}")))
                    .ok();
            }
        };
        // Serde stops at a table's first error: the key at fault is set aside
        // and the rest tried again, so every mistake in the table is reported.
        let mut set_aside: Vec<String> = Vec::new();
        loop {
            let attempt = Spanned::new(span.clone(), DeValue::Table(table.clone()));
            let error = match T::deserialize(ValueDeserializer::from(attempt)) {
                Ok(value) => return set_aside.is_empty().then_some(value),
                Err(error) => error,
            };
            // A key set aside is missing now: that is no mistake of the file's.
            let consequence = set_aside.iter().any(|key| error.message().contains(&format!("missing field `{key}`")));
            let at_fault = error.span().and_then(|at| {
                table.iter().find(|(key, value)| key.span().contains(&at.start) || value.span().contains(&at.start) || value.span() == at).map(|(key, _)| key.clone())
            });
            if !consequence {
                self.from_toml(error, &format!("correct {what}; {SCHEMA_HINT}"));
            }
            match at_fault {
                Some(key) => {
                    set_aside.push(key.get_ref().to_string());
                    table.remove(&key);
                }
                None => return None,
            }
        }
    }

    /// A `[section.NAME]` table: each entry's name and body deserialized on its own.
    fn named_entries<K, V>(&mut self, section: &str, value: Spanned<DeValue<'_>>) -> BTreeMap<K, V>
    where
        K: TryFrom<String, Error = String> + Ord,
        V: DeserializeOwned,
    {
        let span = value.span();
        let DeValue::Table(table) = value.into_inner() else {
            self.error(Some(span), format!("`{section}` must be a table"), format!("write it as [{section}.NAME] sections"));
            return BTreeMap::new();
        };
        let mut entries = BTreeMap::new();
        for (name, body) in table {
            let name_span = name.span();
            let name = name.into_inner().into_owned();
            let key = match K::try_from(name.clone()) {
                Ok(key) => Some(key),
                Err(message) => {
                    self.error(Some(name_span), message, format!("rename [{section}.{name}]"));
                    None
                }
            };
            let body = self.deserialize::<V>(body, &format!("[{section}.{name}]"));
            if let (Some(key), Some(body)) = (key, body) {
                entries.insert(key, body);
            }
        }
        entries
    }
}

pub fn parse(file: &Path, source: &str) -> Result<Config, ConfigErrors> {
    let mut c = Collector { file, source, errors: Vec::new() };
    let (root, syntax_errors) = DeTable::parse_recoverable(source);
    if !syntax_errors.is_empty() {
        for error in syntax_errors {
            c.from_toml(error, "fix the TOML syntax at this place");
        }
        return Err(ConfigErrors(c.errors));
    }

    let mut config = Config::default();
    for (key, value) in root.into_inner() {
        let key_span = key.span();
        match key.as_ref().as_ref() {
            "host" => config.host = c.deserialize::<HostSettings>(value, "[host]").unwrap_or_default(),
            "plugins" => config.plugins = c.named_entries::<_, PluginSource>("plugins", value),
            "endpoints" => config.endpoints = c.named_entries::<_, InstanceConfig>("endpoints", value),
            "mappers" => config.mappers = c.named_entries::<_, InstanceConfig>("mappers", value),
            "pipelines" => config.pipelines = c.named_entries::<_, PipelineConfig>("pipelines", value),
            "replicas" => config.replicas = c.named_entries::<_, super::types::ReplicaConfig>("replicas", value),
            "scopes" => config.scopes = c.named_entries::<_, super::scopes::ScopeConfig>("scopes", value),
            other => c.error(
                Some(key_span),
                format!("unknown section `{other}`"),
                format!("the sections are: {}", SECTIONS.join(", ")),
            ),
        }
    }
    add_replica_endpoints(&mut c, &mut config);
    check_references(&mut c, &config);
    // In the order of the file, as a person reads it.
    c.errors.sort_by_key(|e| e.location.unwrap_or((usize::MAX, 0)));
    if c.errors.is_empty() { Ok(config) } else { Err(ConfigErrors(c.errors)) }
}

/// Each replica becomes an endpoint of the bundled `replica` connector over
/// its exchange store, exchanging what the pipelines that name it need.
fn add_replica_endpoints(c: &mut Collector<'_>, config: &mut Config) {
    let host_name = config.host.name.clone().unwrap_or_else(crate::state::lease::host_name);
    let data_dir = data_dir_of(c.file, config);
    for name in config.replicas.keys() {
        if config.endpoints.contains_key(name) || config.mappers.contains_key(name) {
            c.error(None, format!("`{name}` is both a replica and an endpoint or mapper"), "give the replica a name of its own");
            continue;
        }
        let mut entities: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pipeline in config.pipelines.values() {
            for (end, right) in [(&pipeline.left, false), (&pipeline.right, true)] {
                if end.endpoint.get_ref() != name {
                    continue;
                }
                let fields = entities.entry(end.entity.clone()).or_default();
                for left in pipeline.fields.keys() {
                    let field = if right { pipeline.right_name(left).to_owned() } else { left.clone() };
                    if !fields.contains(&field) {
                        fields.push(field);
                    }
                }
            }
        }
        let settings = serde_json::json!({ "connection": "store", "prefix": host_name, "entities": entities });
        let settings: toml::Table = match toml::Table::try_from(settings) {
            Ok(settings) => settings,
            Err(error) => {
                c.error(None, format!("[replicas.{name}]: {error}"), "report this as a bug");
                continue;
            }
        };
        let store = crate::replicas::store_path(&data_dir, name.as_str());
        let instance = InstanceConfig {
            plugin: Spanned::new(0..0, super::PluginId::try_from("replica".to_owned()).expect("a valid plugin name")),
            settings,
            grants: super::types::Grants {
                sql: BTreeMap::from([(
                    super::ConnectionName::try_from("store".to_owned()).expect("a valid connection name"),
                    super::types::SqlGrant { dsn: Spanned::new(0..0, super::Dsn::Sqlite(store)), read_only: false },
                )]),
                ..Default::default()
            },
            limits: Default::default(),
        };
        config.endpoints.insert(name.clone(), instance);
    }
}

/// The data folder a config names (where installed packages are).
fn data_dir_of(file: &Path, config: &Config) -> std::path::PathBuf {
    let base = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let data_dir = config.host.data_dir.as_deref().unwrap_or(Path::new("synchost-data"));
    if data_dir.is_absolute() { data_dir.to_owned() } else { base.join(data_dir) }
}

/// Checks what no single entry can check alone: names that refer to other entries.
fn check_references(c: &mut Collector<'_>, config: &Config) {
    let known: Vec<String> = bundled::NAMES
        .iter()
        .map(|n| n.to_string())
        .chain(config.plugins.keys().map(|k| k.to_string()))
        .collect();
    for (section, instances) in [("endpoints", &config.endpoints), ("mappers", &config.mappers)] {
        for (name, instance) in instances {
            let plugin = instance.plugin.get_ref();
            for (folder, grant) in &instance.grants.files {
                let path = grant.path.get_ref();
                let resolved = if path.is_absolute() { path.clone() } else { c.file.parent().unwrap_or(Path::new(".")).join(path) };
                if !resolved.is_dir() {
                    c.error(
                        Some(grant.path.span()),
                        format!("[{section}.{name}.grants.files.{folder}] path `{}` is not a folder", resolved.display()),
                        format!("create the folder `{}`, or point path at an existing one (relative to the config file)", resolved.display()),
                    );
                }
            }
            if !known.iter().any(|k| k == plugin.as_str()) {
                let store = crate::packages::Store::new(&data_dir_of(c.file, config));
                match store.resolve(plugin.name(), plugin.pin()) {
                    Ok(_) => {}
                    Err(_) if plugin.pin().is_none() && store.active(plugin.name()).ok().flatten().is_none() => c.error(
                        Some(instance.plugin.span()),
                        format!("[{section}.{name}] uses plugin `{plugin}`, which is neither bundled, declared, nor an installed package"),
                        format!("use one of: {}; declare [plugins.{plugin}] with its path; or install its package with `synchost package install FILE`", known.join(", ")),
                    ),
                    Err(error) => c.error(Some(instance.plugin.span()), format!("[{section}.{name}] uses plugin `{plugin}`: {}", error.message), error.fix),
                }
            }
        }
    }
    check_folders_hold_nothing_of_the_host(c, config);
    check_pipelines(c, config);
    check_scopes(c, config);
    let all_limits = std::iter::once(("[host.limits]".to_owned(), &config.host.limits)).chain(
        [("endpoints", &config.endpoints), ("mappers", &config.mappers)]
            .into_iter()
            .flat_map(|(section, entries)| entries.iter().map(move |(n, i)| (format!("[{section}.{n}]"), &i.limits))),
    );
    for (place, limits) in all_limits {
        if let Some(memory) = &limits.memory {
            if memory.get_ref().0 > MAX_PLUGIN_MEMORY {
                c.error(
                    Some(memory.span()),
                    format!("{place} memory limit {} is over the host's maximum of 1 GiB per plugin instance", memory.get_ref()),
                    "set limits.memory to 1GiB or less",
                );
            }
        }
    }
    for name in config.endpoints.keys() {
        if config.mappers.contains_key(name) {
            c.error(
                None,
                format!("`{name}` is both an endpoint and a mapper"),
                "give the endpoint and the mapper different names",
            );
        }
    }
    for (name, plugin) in &config.plugins {
        if name.pin().is_some() {
            c.error(None, format!("[plugins.\"{name}\"] has a version in its name"), "a [plugins] entry names one file: drop the `@` and what follows");
        }
        if bundled::NAMES.contains(&name.as_str()) {
            c.error(
                None,
                format!("[plugins.{name}] has the name of a bundled plugin"),
                format!("choose another name, e.g. `{name}-custom`"),
            );
        }
        if let Some(sha) = &plugin.sha256 {
            if sha.get_ref().len() != 64 || !sha.get_ref().chars().all(|ch| ch.is_ascii_hexdigit()) {
                c.error(
                    Some(sha.span()),
                    format!("[plugins.{name}] sha256 is not 64 hex digits"),
                    "write the file's SHA-256 as printed by `sha256sum`",
                );
            }
        }
    }
}

/// A path as it will be used: relative to the config file, `..` and `.`
/// taken lexically, then symbolic links resolved as far as the path exists.
fn resolved_path(config_file: &Path, path: &Path) -> PathBuf {
    use std::path::Component;
    let base = config_file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_owned());
    let joined = if path.is_absolute() { path.to_owned() } else { base.join(path) };
    let mut lexical = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    while let Some(parent) = existing.parent() {
        if let Ok(real) = std::fs::canonicalize(existing) {
            return rest.iter().rev().fold(real, |path, part| path.join(part));
        }
        rest.extend(existing.file_name());
        existing = parent;
    }
    lexical
}

/// A folder grant gives a plugin everything inside the folder. It must not
/// reach anything of the host's own (the config, the state store, the
/// cache of compiled plugins, plugin components) or another grant's
/// database, in either direction (the folder inside one of them, or one of
/// them inside the folder), and folder grants must not nest: a plugin could
/// read another endpoint's data, replace a database or a compiled plugin,
/// or move bytes past a quota.
fn check_folders_hold_nothing_of_the_host(c: &mut Collector<'_>, config: &Config) {
    let file = c.file.to_owned();
    let base = file.parent().unwrap_or(Path::new("."));
    let data_dir = config.host.data_dir.clone().unwrap_or_else(|| PathBuf::from("synchost-data"));
    let mut held: Vec<(String, PathBuf)> = vec![
        ("the config file".into(), resolved_path(&file, file.file_name().map(Path::new).unwrap_or(Path::new("synchost.toml")))),
        ("the host's data folder (state store and compiled plugins)".into(), resolved_path(&file, &data_dir)),
    ];
    if let Some(cache) = &config.host.cache_dir {
        held.push(("the host's cache folder".into(), resolved_path(&file, cache)));
    }
    for (name, plugin) in &config.plugins {
        held.push((format!("the component of [plugins.{name}]"), resolved_path(&file, plugin.path.get_ref())));
    }
    let mut folders = Vec::new();
    for (section, instances) in [("endpoints", &config.endpoints), ("mappers", &config.mappers)] {
        for (name, instance) in instances {
            for (connection, grant) in &instance.grants.sql {
                let super::Dsn::Sqlite(path) = grant.dsn.get_ref();
                held.push((format!("the database of [{section}.{name}.grants.sql.{connection}]"), resolved_path(&file, path)));
            }
            for (folder, grant) in &instance.grants.files {
                folders.push((format!("[{section}.{name}.grants.files.{folder}]"), grant, resolved_path(&file, grant.path.get_ref())));
            }
        }
    }
    let overlap = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
    for (place, grant, granted) in &folders {
        let mut reached: Vec<String> = held.iter().filter(|(_, path)| overlap(path, granted)).map(|(what, _)| what.clone()).collect();
        reached.extend(
            folders
                .iter()
                .filter(|(other, _, path)| other != place && path != granted && overlap(path, granted))
                .map(|(other, _, _)| format!("the folder of {other}")),
        );
        if !reached.is_empty() {
            c.error(
                Some(grant.path.span()),
                format!("{place} reaches {}", reached.join(" and ")),
                format!(
                    "grant a folder of its own that holds, and lies inside, none of the host's files, databases or other granted folders (paths are relative to {})",
                    base.display()
                ),
            );
        }
    }
}

/// Checks that pipelines name existing endpoints and mappers and consistent fields.
fn check_scopes(c: &mut Collector<'_>, config: &Config) {
    let mut owner: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for (name, scope) in &config.scopes {
        if scope.pipelines.is_empty() {
            c.error(None, format!("[scopes.{name}] names no pipelines"), format!("list the pipelines it holds: pipelines = [\"tasks\"] under [scopes.{name}]"));
        }
        for pipeline in &scope.pipelines {
            let Some(config_of) = config.pipelines.get(pipeline) else {
                let known: Vec<String> = config.pipelines.keys().map(|k| k.to_string()).collect();
                c.error(None, format!("[scopes.{name}] pipeline `{pipeline}` is not configured"), format!("use one of the pipelines: {}", known.join(", ")));
                continue;
            };
            if let Some(other) = owner.insert(pipeline.as_str(), name.as_str()) {
                c.error(None, format!("pipeline `{pipeline}` is in two scopes, `{other}` and `{name}`"), "keep each pipeline in one scope");
            }
            if let Some(editor) = &scope.editor {
                let sides = [config_of.left.endpoint.get_ref(), config_of.right.endpoint.get_ref()];
                if !sides.contains(&&editor.endpoint) {
                    c.error(
                        None,
                        format!("[scopes.{name}] editor endpoint `{}` is not a side of pipeline `{pipeline}` (its sides are `{}` and `{}`)", editor.endpoint, sides[0], sides[1]),
                        "name the endpoint the editor works through, a side of every pipeline of the scope",
                    );
                }
            }
        }
    }
}

fn check_pipelines(c: &mut Collector<'_>, config: &Config) {
    for (name, pipeline) in &config.pipelines {
        for (side, end) in [("left", &pipeline.left), ("right", &pipeline.right)] {
            let endpoint = end.endpoint.get_ref();
            if !config.endpoints.contains_key(endpoint) {
                let known: Vec<String> = config.endpoints.keys().map(|k| k.to_string()).collect();
                c.error(
                    Some(end.endpoint.span()),
                    format!("[pipelines.{name}] {side} endpoint `{endpoint}` is not configured"),
                    format!("use one of the endpoints: {}", if known.is_empty() { "(none yet)".into() } else { known.join(", ") }),
                );
            }
        }
        if pipeline.left.endpoint.get_ref() == pipeline.right.endpoint.get_ref() && pipeline.left.entity == pipeline.right.entity {
            c.error(
                Some(pipeline.right.endpoint.span()),
                format!("[pipelines.{name}] syncs `{}` with itself", pipeline.left.entity),
                "point left and right at different endpoints or entities",
            );
        }
        if let Some(mapper) = &pipeline.mapper {
            if !config.mappers.contains_key(mapper.get_ref()) {
                c.error(
                    Some(mapper.span()),
                    format!("[pipelines.{name}] mapper `{}` is not configured", mapper.get_ref()),
                    format!("declare [mappers.{}], or remove `mapper`", mapper.get_ref()),
                );
            }
        }
        if pipeline.fields.is_empty() {
            c.error(None, format!("[pipelines.{name}] has no fields"), format!("list the synced fields under [pipelines.{name}.fields], e.g. email = {{}}"));
        }
        let mut right_names = std::collections::BTreeMap::new();
        for (left, rule) in &pipeline.fields {
            let right = rule.right.as_deref().unwrap_or(left);
            if let Some(other) = right_names.insert(right.to_owned(), left.clone()) {
                c.error(
                    None,
                    format!("[pipelines.{name}] fields `{other}` and `{left}` both map to right field `{right}`"),
                    "give each left field its own right field",
                );
            }
            let policy = pipeline.policy_of(left);
            if policy == ConflictPolicy::Mirror && rule.mirror.is_none() && rule.conflict.is_some() {
                c.error(
                    None,
                    format!("[pipelines.{name}] field `{left}` uses the mirror policy but names no mirror fields"),
                    format!("add mirror = {{ left = \"FIELD\", right = \"FIELD\" }} to [pipelines.{name}.fields.{left}]"),
                );
            }
            if let Some(mirror) = &rule.mirror {
                if mirror.left.is_none() && mirror.right.is_none() {
                    c.error(
                        None,
                        format!("[pipelines.{name}] field `{left}` has a mirror that names no field"),
                        "name the field that keeps the other side's value: mirror = { right = \"FIELD\" } (or left)",
                    );
                } else if !mirror.always && policy != ConflictPolicy::Mirror {
                    c.error(
                        None,
                        format!("[pipelines.{name}] field `{left}` has mirror fields that are never written: its conflict policy is {}", policy.as_str()),
                        format!("add always = true to the mirror (two sets of books: the other side's value always goes there), or set conflict = \"mirror\" for [pipelines.{name}.fields.{left}]"),
                    );
                }
            }
        }
        for field in &pipeline.match_on {
            if !pipeline.fields.contains_key(field) {
                c.error(
                    None,
                    format!("[pipelines.{name}] matches on `{field}`, which is not one of its fields"),
                    "list match_on fields by their left name, as under [pipelines.NAME.fields]",
                );
            }
        }
        for required in &pipeline.required {
            if !pipeline.fields.contains_key(required) {
                c.error(
                    None,
                    format!("[pipelines.{name}] requires `{required}`, which is not one of its fields"),
                    "list required fields by their left name, as under [pipelines.NAME.fields]",
                );
            }
        }
        if pipeline.batch_size == 0 {
            c.error(None, format!("[pipelines.{name}] batch_size is 0"), "set batch_size to 1 or more (default 500)");
        }
        if let Some(approval) = &pipeline.approval {
            if matches!(approval.direction, Flow::Both | Flow::Off) {
                c.error(
                    None,
                    format!("[pipelines.{name}.approval] direction must be one way"),
                    "set direction = \"right-to-left\" (the right side's changes wait for approval) or \"left-to-right\"",
                );
            }
            for field in approval.exempt.iter().filter(|f| !pipeline.fields.contains_key(*f)) {
                c.error(
                    None,
                    format!("[pipelines.{name}.approval] exempt names `{field}`, which is not one of the pipeline's fields"),
                    "list fields by their left name, as under [pipelines.NAME.fields]",
                );
            }
        }
    }
}

/// Where a key of an instance's `settings` table is written (the first key of
/// that name inside it, at any depth), or the `settings` key itself when the
/// key is not found or not named: for a plugin's complaint about its settings,
/// which knows names but not places.
pub fn settings_span(source: &str, section: &str, instance: &str, key: Option<&str>) -> Option<Range<usize>> {
    fn entry<'a, 'i>(table: &'a DeTable<'i>, name: &str) -> Option<(&'a Spanned<toml::de::DeString<'i>>, &'a Spanned<DeValue<'i>>)> {
        table.iter().find(|(k, _)| k.get_ref().as_ref() == name)
    }
    fn find(value: &Spanned<DeValue<'_>>, key: &str) -> Option<Range<usize>> {
        let DeValue::Table(table) = value.get_ref() else { return None };
        if let Some((found, _)) = entry(table, key) {
            return Some(found.span());
        }
        table.iter().find_map(|(_, inner)| find(inner, key))
    }
    let root = DeTable::parse(source).ok()?;
    let DeValue::Table(instances) = entry(root.get_ref(), section)?.1.get_ref() else { return None };
    let (name, body) = entry(instances, instance)?;
    let DeValue::Table(body) = body.get_ref() else { return None };
    let Some((settings_key, settings)) = entry(body, "settings") else { return Some(name.span()) };
    key.and_then(|key| find(settings, key)).or(Some(settings_key.span()))
}
