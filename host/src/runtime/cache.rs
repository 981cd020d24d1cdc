//! Compiled components cached on disk, keyed by the component's content hash
//! and the engine's compatibility hash, so a new wasmtime or new settings
//! never load stale machine code.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;

use wasmtime::component::Component;
use wasmtime::Engine;

pub struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
}

impl ComponentCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache { dir, engine_key: format!("{:016x}", hasher.finish()) }
    }

    pub fn load_or_compile(&self, engine: &Engine, bytes: &[u8], sha256: &str) -> wasmtime::Result<Component> {
        let path = self.dir.join(format!("{}-{}.cwasm", &sha256[..32], self.engine_key));
        if path.exists() {
            // SAFETY: the file is in the host's own cache folder and was written by
            // `precompile_component` of an engine with the same compatibility hash.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(error) => tracing::warn!(path = %path.display(), "Recompiling: cached plugin unusable: {error:#}"),
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        if let Err(error) = self.store(&path, &compiled) {
            tracing::warn!(path = %path.display(), "Could not cache compiled plugin: {error}");
        }
        // SAFETY: the bytes were produced just above by this engine.
        unsafe { Component::deserialize(engine, &compiled) }
    }

    /// Writes atomically (temp file, then rename) so a crash never leaves half a file.
    fn store(&self, path: &PathBuf, compiled: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temp, compiled)?;
        std::fs::rename(&temp, path)
    }
}
