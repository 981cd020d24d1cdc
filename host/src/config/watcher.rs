//! The files a running host reloads on: the config file, each plugin file
//! it names, and the active version of each package it uses. Their folders
//! are watched rather than the files themselves, so that an editor saving
//! through a temporary file and a rename, or a plugin copied over, is seen
//! as well as a write in place.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::LoadedConfig;

/// How long the files must be quiet before a reload starts: saving a file
/// is often several events (truncate, write, rename), and copying a plugin
/// many.
pub const DEBOUNCE: Duration = Duration::from_secs(1);

/// The files a reload of `config` depends on: the config, each plugin
/// file, and the active version of each package an instance uses (which an
/// upgrade or a rollback changes).
pub fn watched_files(config: &LoadedConfig) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::from([config.path.clone()]);
    files.extend(config.config.plugins.values().map(|source| config.resolve(source.path.get_ref())));
    let store = config.packages();
    for instance in config.config.endpoints.values().chain(config.config.mappers.values()) {
        let id = instance.plugin.get_ref();
        if !config.config.plugins.contains_key(id) && !crate::bundled::NAMES.contains(&id.as_str()) {
            files.insert(store.active_file(id.name()));
        }
    }
    files.into_iter().map(|file| canonical(&file)).collect()
}

/// The path events name a file by: its folder resolved, its own name kept
/// (the file itself may not exist at the moment).
fn canonical(file: &Path) -> PathBuf {
    let folder = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let folder = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_owned());
    match file.file_name() {
        Some(name) => folder.join(name),
        None => folder,
    }
}

/// Watches a set of files and sends the path of each one that changes.
pub struct FileWatcher {
    watcher: notify::RecommendedWatcher,
    folders: BTreeSet<PathBuf>,
    files: Arc<Mutex<BTreeSet<PathBuf>>>,
}

impl FileWatcher {
    /// A watcher that sends changed paths to `changed`; it watches nothing until [`FileWatcher::watch`].
    pub fn new(changed: mpsc::UnboundedSender<PathBuf>) -> notify::Result<Self> {
        let files: Arc<Mutex<BTreeSet<PathBuf>>> = Arc::default();
        let watched = files.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
                return;
            }
            let files = watched.lock().unwrap_or_else(|e| e.into_inner());
            for path in event.paths.iter().filter(|path| files.contains(*path)) {
                let _ = changed.send(path.clone());
            }
        })?;
        Ok(FileWatcher { watcher, folders: BTreeSet::new(), files })
    }

    /// Watches exactly `files` from now on (a reload may name other plugin files).
    pub fn watch(&mut self, files: BTreeSet<PathBuf>) -> notify::Result<()> {
        let folders: BTreeSet<PathBuf> = files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)).collect();
        for gone in self.folders.difference(&folders) {
            let _ = self.watcher.unwatch(gone);
        }
        // One folder that cannot be watched (gone, no permission) does not
        // keep the others from being watched.
        let mut first_error = None;
        let mut watched = BTreeSet::new();
        for folder in &folders {
            if self.folders.contains(folder) {
                watched.insert(folder.clone());
                continue;
            }
            match self.watcher.watch(folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(folder.clone());
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        self.folders = watched;
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = files;
        first_error.map_or(Ok(()), Err)
    }
}

/// Waits until no change has come for [`DEBOUNCE`], collecting the paths
/// that changed meanwhile (starting with `first`).
pub async fn settle(changes: &mut mpsc::UnboundedReceiver<PathBuf>, first: PathBuf, quiet: Duration) -> BTreeSet<PathBuf> {
    let mut paths = BTreeSet::from([first]);
    while let Ok(Some(path)) = tokio::time::timeout(quiet, changes.recv()).await {
        paths.insert(path);
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_replaced_by_rename_is_seen_and_a_neighbour_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("synchost.toml");
        std::fs::write(&config, "").unwrap();
        let (sender, mut changes) = mpsc::unbounded_channel();
        let mut watcher = FileWatcher::new(sender).unwrap();
        watcher.watch(BTreeSet::from([canonical(&config)])).unwrap();

        std::fs::write(dir.path().join("notes.txt"), "not watched").unwrap();
        std::fs::write(dir.path().join("synchost.toml.tmp"), "[host]").unwrap();
        std::fs::rename(dir.path().join("synchost.toml.tmp"), &config).unwrap();
        let first = tokio::time::timeout(Duration::from_secs(5), changes.recv()).await.expect("an event within 5 s").unwrap();
        let paths = settle(&mut changes, first, Duration::from_millis(200)).await;
        assert_eq!(paths, BTreeSet::from([canonical(&config)]));
    }
}
