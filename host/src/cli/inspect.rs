//! `synchost plugin inspect FILE.wasm`: what a plugin is, before it is configured.

use crate::cli::output::{say};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::CommandError;
use crate::config::EffectiveLimits;
use crate::runtime::{metadata, PluginKind, Runtime};
use crate::services::InstanceContext;

pub async fn run(file: &Path) -> Result<(), CommandError> {
    let bytes = std::fs::read(file)
        .map_err(|e| CommandError::Reported(format!("cannot read {}: {e}", file.display())))?;
    say!("file:        {}", file.display());
    say!("size:        {} bytes", bytes.len());
    say!("sha256:      {}", hex::encode(Sha256::digest(&bytes)));
    say!("host runs plugin API {}", metadata::supported_text());
    let meta = metadata::read(&bytes)
        .map_err(|e| CommandError::Reported(format!("{} cannot be used: {e}", file.display())))?;
    let binding = match meta.binding {
        metadata::Binding::V0_5 => "compatible: the current API",
        metadata::Binding::V0_4 | metadata::Binding::V0_3 => "compatible: an earlier API this host still runs",
    };
    say!("plugin API:  {} ({binding})", meta.api_version);
    say!("kind:        {}", meta.kind);

    let runtime = Runtime::new(None).map_err(CommandError::Other)?;
    let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let plugin = runtime
        .load_plugin(&name, &bytes)
        .map_err(|e| CommandError::Reported(e.to_string()))?;
    if plugin.kind() == PluginKind::Connector {
        let context = InstanceContext::ungranted("inspect", &name, "{}".into(), EffectiveLimits::default());
        match runtime.instance(plugin, context).describe().await {
            Ok(entities) => {
                say!("entities:");
                for entity in entities {
                    let fields: Vec<String> = entity.fields.iter().map(|f| format!("{}: {:?}", f.name, f.type_)).collect();
                    say!("  {} (key {}): {}", entity.name, entity.key, fields.join(", "));
                }
            }
            Err(error) => say!("entities:    depend on the endpoint's settings ({error})"),
        }
    }
    Ok(())
}
