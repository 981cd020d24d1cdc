//! `synchost plugin inspect FILE.wasm`: what a plugin is, before it is configured.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::CommandError;
use crate::config::EffectiveLimits;
use crate::runtime::{metadata, PluginKind, Runtime};
use crate::services::{http, InstanceContext};

pub async fn run(file: &Path) -> Result<(), CommandError> {
    let bytes = std::fs::read(file)
        .map_err(|e| CommandError::Reported(format!("cannot read {}: {e}", file.display())))?;
    println!("file:        {}", file.display());
    println!("size:        {} bytes", bytes.len());
    println!("sha256:      {}", hex::encode(Sha256::digest(&bytes)));
    println!("host accepts plugin API {}", metadata::supported_api());
    let meta = metadata::read(&bytes)
        .map_err(|e| CommandError::Reported(format!("{} cannot be used: {e}", file.display())))?;
    println!("plugin API:  {} (compatible)", meta.api_version);
    println!("kind:        {}", meta.kind);

    let runtime = Runtime::new(None).map_err(CommandError::Other)?;
    let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let plugin = runtime
        .load_plugin(&name, &bytes)
        .map_err(|e| CommandError::Reported(e.to_string()))?;
    if plugin.kind() == PluginKind::Connector {
        let context = InstanceContext {
            name: "inspect".into(),
            plugin: name,
            settings: "{}".into(),
            sql: Default::default(),
            http: http::HttpAccess { allow: Vec::new(), client: http::client() },
            folders: Vec::new(),
            limits: EffectiveLimits::default(),
        };
        match runtime.instance(plugin, context).describe().await {
            Ok(entities) => {
                println!("entities:");
                for entity in entities {
                    let fields: Vec<String> = entity.fields.iter().map(|f| format!("{}: {:?}", f.name, f.type_)).collect();
                    println!("  {} (key {}): {}", entity.name, entity.key, fields.join(", "));
                }
            }
            Err(error) => println!("entities:    depend on the endpoint's settings ({error})"),
        }
    }
    Ok(())
}
