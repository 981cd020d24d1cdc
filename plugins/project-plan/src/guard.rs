//! Writing the plan safely beside people and other writers.
//!
//! - One writer at a time: a lock file beside the plan, created exclusively;
//!   one left behind by a writer that died is taken over once it is older
//!   than [`STALE_LOCK`].
//! - A temporary file of its own for each write, renamed over the plan.
//! - No save by anyone else lost ([`replace_if_unchanged`]): the plan is
//!   moved aside, compared with what the write started from, and the new
//!   plan is linked in under its name only if that name is still free. A
//!   planner's save at any moment either comes before the move (seen by the
//!   comparison), lands at the free name (kept: the link fails), or goes into
//!   the file aside through an editor that had it open (seen by a second
//!   comparison, and put back). In each case the write fails as retryable
//!   and the next run starts from the planner's version.
//! - Task UIDs never reused: the highest UID synchronisation ever gave is
//!   kept beside the plan, so a task deleted in the plan does not lend its
//!   UID (and a stale link) to a new task.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use synchost_plugin_sdk::prelude::*;

/// A lock older than this was left by a writer that died.
pub const STALE_LOCK: Duration = Duration::from_secs(120);

fn beside(plan: &Path, suffix: &str) -> PathBuf {
    let name = plan.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    plan.with_file_name(format!(".{name}.{suffix}"))
}

/// The right to replace the plan; released when dropped.
pub struct WriteLock {
    path: PathBuf,
}

impl WriteLock {
    pub fn acquire(plan: &Path) -> Result<Self, Error> {
        let path = beside(plan, "synchost-lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(WriteLock { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|at| SystemTime::now().duration_since(at).ok())
                        .unwrap_or_default();
                    if age < STALE_LOCK {
                        return Err(Error::transient(
                            "plan-locked",
                            format!("another synchronisation is writing the plan (lock {} since {}s)", path.display(), age.as_secs()),
                        )
                        .with_hint("the write is retried; remove the lock file only if no synchost runs on this plan"));
                    }
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(Error::new("io", format!("cannot lock the plan ({}): {e}", path.display()))),
            }
        }
        Err(Error::transient("plan-locked", "another synchronisation took the plan's lock at the same moment"))
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A name for this write's temporary file, unlike any other writer's.
pub fn temporary(plan: &Path) -> PathBuf {
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    beside(plan, &format!("synchost-{random:016x}"))
}

/// Reads the plan; for the moment a writer has it aside (microseconds),
/// its name is free: waits a little rather than call the plan missing.
pub fn read_plan(plan: &Path) -> std::io::Result<String> {
    let mut waited = 0;
    loop {
        match std::fs::read_to_string(plan) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && waited < 10 && beside(plan, "synchost-lock").exists() => {
                std::thread::sleep(Duration::from_millis(20));
                waited += 1;
            }
            other => return other,
        }
    }
}

fn saved_meanwhile() -> Error {
    Error::transient("plan-changed", "the plan was saved by someone else while synchronisation wrote it")
        .with_hint("nothing of theirs was overwritten; the changes are written again from their version on the next run")
}

/// Puts `new` (a complete plan written beside it) in the place of `plan`
/// if the plan is still `expected` (what the write started from); fails,
/// retryable, if someone saved it meanwhile, leaving their save in place.
/// `new` is gone afterwards either way.
pub fn replace_if_unchanged(plan: &Path, expected: &str, new: &Path) -> Result<(), Error> {
    let io = |what: &str, e: std::io::Error| Error::new("io", format!("cannot {what} the plan {}: {e}", plan.display()));
    let aside = temporary(plan);
    if let Err(e) = std::fs::rename(plan, &aside) {
        let _ = std::fs::remove_file(new);
        return Err(io("move aside", e));
    }
    // The planner's version goes back under its name, unless a newer save
    // took the name meanwhile.
    let put_back = || {
        if std::fs::hard_link(&aside, plan).is_ok() || plan.exists() {
            let _ = std::fs::remove_file(&aside);
        }
        let _ = std::fs::remove_file(new);
    };
    match std::fs::read_to_string(&aside) {
        Ok(held) if held == expected => {}
        Ok(_) => {
            put_back();
            return Err(saved_meanwhile());
        }
        Err(e) => {
            put_back();
            return Err(io("read again", e));
        }
    }
    match std::fs::hard_link(new, plan) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // A save made a new file under the plan's name: it stays.
            let _ = std::fs::remove_file(new);
            let _ = std::fs::remove_file(&aside);
            return Err(saved_meanwhile());
        }
        Err(e) => {
            put_back();
            return Err(io("replace", e));
        }
    }
    let _ = std::fs::remove_file(new);
    // An editor that had the plan open saved into the file now aside.
    if std::fs::read_to_string(&aside).map(|held| held != expected).unwrap_or(false) {
        std::fs::rename(&aside, plan).map_err(|e| io("put back", e))?;
        return Err(saved_meanwhile());
    }
    let _ = std::fs::remove_file(&aside);
    Ok(())
}

/// The highest task UID synchronisation ever gave in this plan.
pub fn high_water(plan: &Path) -> i64 {
    std::fs::read_to_string(beside(plan, "synchost-uids")).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
}

/// Remembers `uid` as the highest given (if it is). The plan is written by
/// then, so a failure here only warns: the plan's own highest UID still
/// keeps new UIDs above every task it holds.
pub fn raise_high_water(plan: &Path, uid: i64) {
    if uid <= high_water(plan) {
        return;
    }
    let path = beside(plan, "synchost-uids");
    let temporary = temporary(&path);
    if let Err(e) = std::fs::write(&temporary, uid.to_string()).and_then(|()| std::fs::rename(&temporary, &path)) {
        let _ = std::fs::remove_file(&temporary);
        log::warn(&format!("cannot note the highest task UID in {}: {e}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("synchost-guard-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn one_writer_at_a_time_and_the_lock_goes_with_it() {
        let plan = folder("lock").join("plan.xml");
        let lock = WriteLock::acquire(&plan).unwrap();
        let refused = WriteLock::acquire(&plan).err().expect("a second writer waits");
        assert_eq!(refused.problem().code, "plan-locked");
        assert!(refused.problem().retryable);
        drop(lock);
        assert!(WriteLock::acquire(&plan).is_ok());
    }

    fn leftovers(plan: &Path) -> usize {
        std::fs::read_dir(plan.parent().unwrap()).unwrap().count() - 1
    }

    #[test]
    fn the_new_plan_takes_the_place_of_the_one_it_started_from() {
        let plan = folder("replace").join("plan.xml");
        std::fs::write(&plan, "as read").unwrap();
        let new = temporary(&plan);
        std::fs::write(&new, "written").unwrap();
        replace_if_unchanged(&plan, "as read", &new).unwrap();
        assert_eq!(std::fs::read_to_string(&plan).unwrap(), "written");
        assert_eq!(leftovers(&plan), 0, "nothing left beside the plan");
    }

    #[test]
    fn a_save_by_someone_else_is_kept() {
        let plan = folder("changed").join("plan.xml");
        std::fs::write(&plan, "saved by a planner").unwrap();
        let new = temporary(&plan);
        std::fs::write(&new, "written").unwrap();
        let error = replace_if_unchanged(&plan, "as read", &new).unwrap_err();
        assert_eq!(error.problem().code, "plan-changed");
        assert!(error.problem().retryable);
        assert_eq!(std::fs::read_to_string(&plan).unwrap(), "saved by a planner");
        assert_eq!(leftovers(&plan), 0);
    }

    #[test]
    fn the_high_water_mark_only_rises_and_temporary_names_differ() {
        let plan = folder("uids").join("plan.xml");
        assert_eq!(high_water(&plan), 0);
        raise_high_water(&plan, 7);
        raise_high_water(&plan, 5);
        assert_eq!(high_water(&plan), 7);
        assert_ne!(temporary(&plan), temporary(&plan));
    }
}
