//! One writer per state store.
//!
//! `synchost run`, and every command that writes to the connected systems
//! (`sync`, `failed retry`, `conflicts resolve`, carrying out an approval),
//! holds an exclusive lock on `<data_dir>/writer.lock` while it works, with
//! who holds it (command, pid, host, since) written inside. The lock is the
//! operating system's (`flock`): it goes with the process, so a host killed
//! with SIGKILL frees it at once, and `status` knows at once that nothing
//! runs. Two writers on one state store would both read the same cursor and
//! both create the same records; with the lease the second one refuses and
//! names the first.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The lease file in a data folder.
pub const LEASE_FILE: &str = "writer.lock";

/// Who holds the lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The command holding it: `run`, `sync` ...
    pub command: String,
    pub pid: u32,
    pub host: String,
    /// When it took the lease (RFC 3339).
    pub since: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`synchost {}` (pid {} on {}, since {})", self.command, self.pid, self.host, self.since)
    }
}

/// Why the lease could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("{0} is writing to this state store")]
    Held(Holder),
    #[error("cannot use the lease file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The exclusive right to write; released when dropped or when the process ends.
#[derive(Debug)]
pub struct WriterLease {
    _file: File,
}

fn open(data_dir: &Path) -> Result<File, LeaseError> {
    let path = data_dir.join(LEASE_FILE);
    let io = |source| LeaseError::Io { path: path.clone(), source };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)
}

fn read_holder(file: &mut File) -> Holder {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0)).and_then(|_| file.read_to_string(&mut text));
    serde_json::from_str(&text).unwrap_or_else(|_| Holder {
        command: "(starting)".into(),
        pid: 0,
        host: "?".into(),
        since: "?".into(),
    })
}

/// Takes the lease for `command`, or says who holds it.
pub fn acquire(data_dir: &Path, command: &str) -> Result<WriterLease, LeaseError> {
    let mut file = open(data_dir)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(LeaseError::Held(read_holder(&mut file))),
        Err(std::fs::TryLockError::Error(source)) => return Err(LeaseError::Io { path: data_dir.join(LEASE_FILE), source }),
    }
    let holder = Holder {
        command: command.to_owned(),
        pid: std::process::id(),
        host: host_name(),
        since: super::now(),
    };
    let text = serde_json::to_string(&holder).expect("a holder serializes");
    let io = |source| LeaseError::Io { path: data_dir.join(LEASE_FILE), source };
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_data().map_err(io)?;
    Ok(WriterLease { _file: file })
}

/// Who holds the lease now, if anyone.
pub fn holder(data_dir: &Path) -> Option<Holder> {
    if !data_dir.join(LEASE_FILE).exists() {
        return None;
    }
    let mut file = open(data_dir).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(_) => Some(read_holder(&mut file)),
    }
}

/// This machine's name, for messages.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_owned()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_told_who_holds_the_lease_until_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(dir.path()), None);
        let lease = acquire(dir.path(), "run").unwrap();
        let held = holder(dir.path()).expect("held");
        assert_eq!((held.command.as_str(), held.pid), ("run", std::process::id()));
        let Err(LeaseError::Held(by)) = acquire(dir.path(), "sync") else { panic!("a second writer must be refused") };
        assert_eq!(by.command, "run");
        drop(lease);
        assert_eq!(holder(dir.path()), None);
        assert!(acquire(dir.path(), "sync").is_ok());
    }
}

/// Where the running host serves its admin API, beside its lease.
pub const ADMIN_FILE: &str = "admin.address";

/// Notes (or, with `None`, clears) where this host serves its admin API, for
/// the command line and for admins looking for it.
pub fn record_admin_address(data_dir: &Path, address: Option<std::net::SocketAddr>) {
    let path = data_dir.join(ADMIN_FILE);
    let written = match address {
        Some(address) => std::fs::write(&path, format!("{address}\n")),
        None => std::fs::remove_file(&path).or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }),
    };
    if let Err(error) = written {
        tracing::warn!("Cannot note the admin API's address in {}: {error}", path.display());
    }
}

/// Where the host that runs on this data folder serves its admin API:
/// only while a `synchost run` holds the lease (a file left by a killed
/// host names nothing).
pub fn admin_address(data_dir: &Path) -> Option<std::net::SocketAddr> {
    holder(data_dir).filter(|h| h.command == "run")?;
    std::fs::read_to_string(data_dir.join(ADMIN_FILE)).ok()?.trim().parse().ok()
}
