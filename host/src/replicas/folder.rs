//! The local folder pair (C4): this host's `upload` folder is the other
//! host's `download` folder (on a shared disk, a USB stick carried over, a
//! synced folder). A message is written under a temporary name and renamed
//! when complete, so a half-written file is never imported.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Exported;

/// Puts a message into `folder`, complete or not at all.
pub fn deliver(folder: &Path, exported: &Exported) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(folder)?;
    let partial = folder.join(format!(".{}.partial", exported.file_name));
    let done = folder.join(&exported.file_name);
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(&exported.bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, &done)?;
    Ok(done)
}

/// The other host's messages of this replica waiting in `folder`, oldest first.
pub fn waiting(folder: &Path, replica: &str, peer: &str) -> std::io::Result<Vec<PathBuf>> {
    let prefix = format!("{replica}-{peer}-");
    let mut found: Vec<PathBuf> = match std::fs::read_dir(folder) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".synchost")))
            .collect(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(error),
    };
    // Numbers are zero-padded: the names sort in the order they were made.
    found.sort();
    Ok(found)
}

/// Sets a refused file aside (`NAME.refused`), so it is not tried again and again.
pub fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let aside = path.with_extension("synchost.refused");
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_cut_short_on_its_way_is_never_taken_for_one() {
        let dir = tempfile::tempdir().unwrap();
        let message = Exported { number: 1, file_name: "office-hq-000001.data.synchost".into(), bytes: b"whole".to_vec(), changes: 0, swap: false };
        // A copy that stopped half-way leaves its temporary name only.
        std::fs::write(dir.path().join(".office-hq-000002.data.synchost.partial"), b"ha").unwrap();
        std::fs::write(dir.path().join("office-hq-000003.data.synchost.refused"), b"x").unwrap();
        std::fs::write(dir.path().join("office-branch-000001.data.synchost"), b"the other sender's").unwrap();
        deliver(dir.path(), &message).unwrap();
        let found = waiting(dir.path(), "office", "hq").unwrap();
        assert_eq!(found, [dir.path().join("office-hq-000001.data.synchost")]);
        assert_eq!(std::fs::read(&found[0]).unwrap(), b"whole");
        assert!(waiting(&dir.path().join("not there"), "office", "hq").unwrap().is_empty());
    }
}
