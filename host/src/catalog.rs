//! Turns a loaded config into runnable plugins and instances.
//!
//! Each plugin and each instance either loads or carries the reason it did
//! not, so one broken plugin never keeps the others from running, and `check`
//! can report every problem at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::bundled;
use crate::packages::Manifest;
use crate::config::{settings_json, Dsn, InstanceConfig, LoadedConfig, PluginId, DEFAULT_FOLDER_QUOTA};
use crate::runtime::{Instance, Plugin, PluginKind, Runtime};
use crate::services::http::{self, HttpAccess};
use crate::services::files::FolderAccounts;
use crate::services::sql::{SqlDatabases, SqlGrant};
use crate::services::budget::LogBudget;
use crate::services::{Folder, InstanceContext};

/// A failure with the fix to apply.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  = fix: {hint}")?;
        }
        Ok(())
    }
}

/// The plugins and instances of one config.
pub struct Catalog {
    /// Shared by every catalog a running host builds on reload.
    pub runtime: Arc<Runtime>,
    pub sql: Arc<SqlDatabases>,
    pub plugins: BTreeMap<String, Result<Arc<Plugin>, Failure>>,
    /// The SHA-256 of each plugin's bytes (hex), to tell a new build on reload.
    pub digests: BTreeMap<String, String>,
    pub instances: BTreeMap<String, Result<Instance, Failure>>,
}

/// The bytes of a plugin (bundled, read from its file and checked, or an
/// installed package's component), and the package's manifest if it is one.
pub fn plugin_bytes(config: &LoadedConfig, id: &PluginId) -> Result<(Vec<u8>, Option<Manifest>), Failure> {
    if let Some(source) = config.config.plugins.get(id) {
        let path = config.resolve(source.path.get_ref());
        let bytes = std::fs::read(&path).map_err(|e| Failure {
            message: format!("plugin `{id}`: cannot read {}: {e}", path.display()),
            hint: Some(format!("check `path` of [plugins.{id}] in {}", config.path.display())),
        })?;
        if let Some(expected) = &source.sha256 {
            let actual = hex::encode(Sha256::digest(&bytes));
            if !actual.eq_ignore_ascii_case(expected.get_ref()) {
                return Err(Failure {
                    message: format!("plugin `{id}`: {} has SHA-256 {actual}, not the configured {}", path.display(), expected.get_ref()),
                    hint: Some("the file changed: restore the expected build, or update sha256 if the change is intended".into()),
                });
            }
        }
        return Ok((bytes, None));
    }
    if let Some(bytes) = bundled::bytes(id.as_str()) {
        return Ok((bytes.to_vec(), None));
    }
    let resolved = config.packages().resolve(id.name(), id.pin()).map_err(|error| Failure {
        message: format!("plugin `{id}`: {}", error.message),
        hint: Some(error.fix),
    })?;
    Ok((resolved.component, Some(resolved.manifest)))
}

/// What an instance is granted beyond what its package asks for, as one failure.
fn beyond_package(section: &str, name: &str, instance: &InstanceConfig, manifest: &Manifest) -> Option<Failure> {
    let folders: Vec<(String, bool)> = instance.grants.files.iter().map(|(folder, grant)| (folder.to_string(), grant.read_only)).collect();
    let over = manifest.capabilities.exceeded_by(&instance.grants.sql, &instance.grants.http.allow, &folders);
    (!over.is_empty()).then(|| Failure {
        message: format!(
            "[{section}.{name}] grants more than package {} {} asks for: {}",
            manifest.package.name,
            manifest.package.version,
            over.join("; ")
        ),
        hint: Some("remove those grants, or use a version of the package that asks for them (`synchost package info` shows what each asks for)".into()),
    })
}

impl Catalog {
    /// Loads every plugin the config uses and builds every instance.
    pub fn load(config: &LoadedConfig) -> anyhow::Result<Self> {
        let runtime = Runtime::new(Some(config.cache_dir()))?;
        Ok(Self::load_with(config, runtime))
    }

    /// As [`Catalog::load`], on a given runtime.
    pub fn load_with(config: &LoadedConfig, runtime: Runtime) -> Self {
        Self::build(config, Arc::new(runtime), Arc::new(SqlDatabases::default()), None)
    }

    /// The catalog of a reloaded config, beside this one: the same runtime
    /// and database handles; a plugin whose bytes did not change is not
    /// compiled again.
    pub fn reload(&self, config: &LoadedConfig) -> Self {
        Self::build(config, self.runtime.clone(), self.sql.clone(), Some(self))
    }

    fn build(config: &LoadedConfig, runtime: Arc<Runtime>, sql: Arc<SqlDatabases>, previous: Option<&Catalog>) -> Self {
        // A replica's endpoint opens its exchange store: it exists from the start.
        for (name, replica) in &config.config.replicas {
            let role = crate::replicas::roles::initial(replica.kind, replica.side);
            if let Err(error) = crate::replicas::store::Store::open(&crate::replicas::store_path(&config.data_dir(), name.as_str()), role) {
                tracing::error!(replica = %name, "Cannot open the replica's exchange store: {error}");
            }
        }
        let folders = FolderAccounts::default();
        let client = http::client();
        let used: std::collections::BTreeSet<&PluginId> = config
            .config
            .endpoints
            .values()
            .chain(config.config.mappers.values())
            .map(|i| i.plugin.get_ref())
            .collect();
        let mut digests = BTreeMap::new();
        let mut packages = BTreeMap::new();
        let mut plugins: BTreeMap<String, Result<Arc<Plugin>, Failure>> = BTreeMap::new();
        for id in used {
            let plugin = plugin_bytes(config, id).and_then(|(bytes, package)| {
                let mut digest = hex::encode(Sha256::digest(&bytes));
                if let Some(manifest) = package {
                    // A new release is a change even when its component is the same build.
                    digest.push_str(&format!("@{}", manifest.package.version));
                    packages.insert(id.to_string(), manifest);
                }
                digests.insert(id.to_string(), digest.clone());
                let unchanged = previous
                    .filter(|previous| previous.digests.get(id.as_str()) == Some(&digest))
                    .and_then(|previous| previous.plugins.get(id.as_str())?.as_ref().ok().cloned());
                match unchanged {
                    Some(plugin) => Ok(plugin),
                    None => runtime.load_plugin(id.as_str(), &bytes).map_err(|e| Failure { message: e.to_string(), hint: None }),
                }
            });
            plugins.insert(id.to_string(), plugin);
        }

        let mut instances = BTreeMap::new();
        for (section, kind, entries) in [
            ("endpoints", PluginKind::Connector, &config.config.endpoints),
            ("mappers", PluginKind::Mapper, &config.config.mappers),
        ] {
            for (name, instance) in entries {
                let built = match &plugins[instance.plugin.get_ref().as_str()] {
                    Err(failure) => Err(failure.clone()),
                    Ok(plugin) if plugin.kind() != kind => Err(Failure {
                        message: format!("[{section}.{name}] uses `{}`, which is a {}, not a {kind}", plugin.name, plugin.kind()),
                        hint: Some(match kind {
                            PluginKind::Connector => format!("move it to [mappers.{name}], or use a connector plugin"),
                            PluginKind::Mapper => format!("move it to [endpoints.{name}], or use a mapper plugin"),
                        }),
                    }),
                    Ok(plugin) => match packages.get(instance.plugin.get_ref().as_str()).and_then(|m| beyond_package(section, name.as_str(), instance, m)) {
                        Some(failure) => Err(failure),
                        None => {
                            let context = instance_context(config, section, name.as_str(), instance, &sql, &folders, &client);
                            Ok(runtime.instance(plugin.clone(), context))
                        }
                    },
                };
                instances.insert(name.to_string(), built);
            }
        }
        Catalog { runtime, sql, plugins, digests, instances }
    }

    /// A runnable instance by name, or why there is none.
    pub fn instance(&self, name: &str) -> Result<&Instance, Failure> {
        match self.instances.get(name) {
            Some(Ok(instance)) => Ok(instance),
            Some(Err(failure)) => Err(failure.clone()),
            None => Err(Failure {
                message: format!("there is no endpoint or mapper named `{name}`"),
                hint: Some(format!(
                    "configured: {}",
                    self.instances.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            }),
        }
    }
}

/// What one instance is and may access, from its config.
pub fn instance_context(
    config: &LoadedConfig,
    section: &str,
    name: &str,
    instance: &InstanceConfig,
    databases: &SqlDatabases,
    folders: &FolderAccounts,
    client: &reqwest::Client,
) -> InstanceContext {
    let sql = instance
        .grants
        .sql
        .iter()
        .map(|(connection, grant)| {
            let Dsn::Sqlite(path) = grant.dsn.get_ref();
            let grant = SqlGrant {
                database: databases.get(&config.resolve(path)),
                read_only: grant.read_only,
                origin: format!("[{section}.{name}.grants.sql.{connection}]"),
            };
            (connection.to_string(), grant)
        })
        .collect();
    let limits = config.limits(instance);
    InstanceContext {
        name: name.to_owned(),
        plugin: instance.plugin.get_ref().to_string(),
        settings: settings_json(&instance.settings).to_string(),
        sql,
        http: HttpAccess { allow: instance.grants.http.allow.clone(), read_only: instance.grants.http.read_only, client: client.clone() },
        folders: instance
            .grants
            .files
            .iter()
            .map(|(name, grant)| Folder {
                name: name.to_string(),
                account: folders.get(&config.resolve(grant.path.get_ref())),
                path: config.resolve(grant.path.get_ref()),
                read_only: grant.read_only,
                quota: grant.quota.map_or(DEFAULT_FOLDER_QUOTA, |q| q.0),
            })
            .collect(),
        limits,
        log_budget: LogBudget::new(limits.log_lines, limits.log_bytes),
    }
}
