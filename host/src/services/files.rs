//! Granted folders and their quotas.
//!
//! WASI (wasmtime-wasi) gives a plugin its granted folders and keeps it
//! inside them. The host adds the quota: it stands in for the WASI calls that
//! make a folder hold more (`descriptor.write`, `set-size`, the output
//! streams of `write-via-stream` / `append-via-stream`, and creating a file,
//! folder or link), works out which granted folder each descriptor belongs
//! to (from `get-directories` and `open-at`), and refuses growth past the
//! folder's quota with the WASI error `quota` ("disk quota exceeded"). The
//! call then fails naming the quota. Renaming or linking from one granted
//! folder into another fails as between two disks (`cross-device`), so
//! nothing moves past a quota.
//!
//! A folder's account is shared by every call and instance writing to it: it
//! is measured when the first of them writes and counts what they add until
//! the last one ends. Bytes freed meanwhile (a file removed or truncated)
//! are given back at the next measure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::Descriptor;
use wasmtime_wasi::p2::bindings::filesystem::{preopens, types};
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::WasiView;
use bytes::Bytes;

use super::budget::BudgetExceeded;
use super::{Folder, HostState};

/// The WASI version whose filesystem functions the host stands in for.
const WASI_FILESYSTEM: &str = "wasi:filesystem/types@0.2.12";
const WASI_PREOPENS: &str = "wasi:filesystem/preopens@0.2.12";

/// What a granted folder holds, shared by every instance and call that
/// writes to it (a host has one per folder path).
#[derive(Debug)]
pub struct FolderAccount {
    path: PathBuf,
    state: Mutex<AccountState>,
}

#[derive(Debug, Default)]
struct AccountState {
    /// Bytes in the folder when the first of the calls now writing began.
    measured: Option<u64>,
    /// Bytes the calls now writing have added since.
    grown: u64,
    /// Calls now writing; when the last one ends the folder is measured anew.
    calls: usize,
}

/// Bytes counted for each file, folder or link, besides its contents: what
/// a file system spends on an entry, so that creating empty files or
/// folders without end is not free.
pub const ENTRY_BYTES: u64 = 4096;

impl FolderAccount {
    fn lock(&self) -> std::sync::MutexGuard<'_, AccountState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn join(&self) {
        self.lock().calls += 1;
    }

    fn leave(&self) {
        let mut state = self.lock();
        state.calls = state.calls.saturating_sub(1);
        if state.calls == 0 {
            *state = AccountState::default();
        }
    }

    /// Adds `growth` if the folder stays within `quota`. A folder that
    /// cannot be measured counts as full.
    fn charge(&self, growth: u64, quota: u64) -> bool {
        let mut state = self.lock();
        let measured = *state.measured.get_or_insert_with(|| folder_size(&self.path).unwrap_or(u64::MAX / 2));
        if measured.saturating_add(state.grown).saturating_add(growth) > quota {
            return false;
        }
        state.grown += growth;
        true
    }

    /// Gives back what a failed operation was charged.
    fn refund(&self, growth: u64) {
        let mut state = self.lock();
        state.grown = state.grown.saturating_sub(growth);
    }
}

/// Every granted folder of the host, by path, so that grants naming one
/// folder share its account.
#[derive(Debug, Default)]
pub struct FolderAccounts {
    open: Mutex<HashMap<PathBuf, Arc<FolderAccount>>>,
}

impl FolderAccounts {
    /// The shared account of a folder.
    pub fn get(&self, path: &Path) -> Arc<FolderAccount> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.entry(key.clone())
            .or_insert_with(|| Arc::new(FolderAccount { path: key, state: Mutex::default() }))
            .clone()
    }
}

/// Bytes of everything under `path`, each entry counting [`ENTRY_BYTES`]
/// besides its contents; `None` if any of it cannot be read. Walks by
/// directory handles (`openat`), not by full paths, so no depth of folders
/// or length of names hides anything; symbolic links are not followed.
fn folder_size(path: &Path) -> Option<u64> {
    use rustix::fs::{openat, statat, AtFlags, Dir, FileType, Mode, OFlags, CWD};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let root = Arc::new(openat(CWD, path, flags, Mode::empty()).ok()?);
    // Folders still to read: each with its parent, opened when its turn comes.
    let mut pending: Vec<Arc<rustix::fd::OwnedFd>> = vec![root];
    let mut later: Vec<(Arc<rustix::fd::OwnedFd>, std::ffi::CString)> = Vec::new();
    let mut total: u64 = 0;
    loop {
        let folder = match pending.pop() {
            Some(folder) => folder,
            None => match later.pop() {
                Some((parent, name)) => Arc::new(openat(&*parent, name.as_c_str(), flags, Mode::empty()).ok()?),
                None => return Some(total),
            },
        };
        let mut entries = Dir::read_from(&*folder).ok()?;
        while let Some(entry) = entries.read() {
            let entry = entry.ok()?;
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            total = total.saturating_add(ENTRY_BYTES);
            let stat = statat(&*folder, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Directory => later.push((folder.clone(), name.to_owned())),
                FileType::RegularFile => total = total.saturating_add(stat.st_size as u64),
                _ => {}
            }
        }
    }
}

/// Per call: the granted folders' accounts, and which folder each open
/// descriptor belongs to.
#[derive(Debug, Clone)]
pub struct FolderUsage(Arc<Mutex<CallFolders>>);

#[derive(Debug)]
struct CallFolders {
    folders: Vec<CallFolder>,
    /// Descriptor resource (its table index) -> index into `folders`.
    descriptors: HashMap<u32, usize>,
    exceeded: Option<BudgetExceeded>,
    instance: String,
}

#[derive(Debug)]
struct CallFolder {
    name: String,
    quota: u64,
    /// Read-only grants are not charged: WASI refuses their writes itself.
    read_only: bool,
    account: Arc<FolderAccount>,
    joined: bool,
}

impl Drop for CallFolders {
    fn drop(&mut self) {
        for folder in self.folders.iter().filter(|f| f.joined) {
            folder.account.leave();
        }
    }
}

impl FolderUsage {
    pub fn new(instance: &str, folders: &[Folder]) -> Self {
        let folders = folders
            .iter()
            .map(|f| CallFolder {
                name: f.name.clone(),
                quota: f.quota,
                read_only: f.read_only,
                account: f.account.clone(),
                joined: false,
            })
            .collect();
        FolderUsage(Arc::new(Mutex::new(CallFolders {
            folders,
            descriptors: HashMap::new(),
            exceeded: None,
            instance: instance.to_owned(),
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CallFolders> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The quota a call went over, if it did.
    pub fn exceeded(&self) -> Option<BudgetExceeded> {
        self.lock().exceeded.clone()
    }

    fn note_preopen(&self, descriptor: u32, guest_path: &str) {
        let mut call = self.lock();
        let name = guest_path.trim_start_matches('/');
        if let Some(index) = call.folders.iter().position(|f| f.name == name) {
            call.descriptors.insert(descriptor, index);
        }
    }

    fn note_opened(&self, parent: u32, child: u32) {
        let mut call = self.lock();
        match call.descriptors.get(&parent).copied() {
            Some(index) => call.descriptors.insert(child, index),
            None => call.descriptors.remove(&child),
        };
    }

    fn folder_of(&self, descriptor: u32) -> Option<usize> {
        self.lock().descriptors.get(&descriptor).copied()
    }

    /// Charges `growth` bytes to a folder (every folder when the descriptor's
    /// folder is unknown); false when that takes one past its quota.
    /// A charge of 0 still measures the folder if it was not yet: done
    /// before anything that can shrink a file (`open-at` with truncation,
    /// `set-size`), so that space freed and filled again within the calls
    /// counts twice rather than not at all.
    fn charge(&self, folder: Option<usize>, growth: u64) -> bool {
        let mut call = self.lock();
        let indices: Vec<usize> = match folder {
            Some(index) => vec![index],
            None => (0..call.folders.len()).collect(),
        };
        let mut charged: Vec<usize> = Vec::new();
        for index in indices {
            let instance = call.instance.clone();
            let folder = &mut call.folders[index];
            if folder.read_only {
                continue;
            }
            if !folder.joined {
                folder.account.join();
                folder.joined = true;
            }
            if !folder.account.charge(growth, folder.quota) {
                let exceeded = BudgetExceeded {
                    budget: format!("folder `{}` quota", folder.name),
                    limit: bytesize::ByteSize::b(folder.quota).to_string(),
                    setting: format!("`quota` of the `{}` folder grant of `{instance}`", folder.name),
                };
                call.exceeded.get_or_insert(exceeded);
                for index in charged {
                    call.folders[index].account.refund(growth);
                }
                return false;
            }
            charged.push(index);
        }
        true
    }

    /// Gives back a charge whose operation failed.
    fn refund(&self, folder: Option<usize>, growth: u64) {
        let call = self.lock();
        let folders: Vec<&CallFolder> = match folder {
            Some(index) => vec![&call.folders[index]],
            None => call.folders.iter().collect(),
        };
        for folder in folders.into_iter().filter(|f| !f.read_only) {
            folder.account.refund(growth);
        }
    }
}

/// The file behind a descriptor, if it is a file.
fn file_of(state: &mut HostState, descriptor: &Resource<Descriptor>) -> Option<Arc<std::fs::File>> {
    match state.ctx().table.get(descriptor) {
        Ok(Descriptor::File(file)) => Some(file.file.clone()),
        _ => None,
    }
}

/// Whether `path` names an entry under a directory descriptor already (so
/// opening it with CREATE makes nothing new). A path that climbs (`..`)
/// counts as new.
fn entry_exists(state: &mut HostState, dir: &Resource<Descriptor>, path: &str) -> bool {
    let Ok(Descriptor::Dir(dir)) = state.ctx().table.get(dir) else { return false };
    if path.split('/').any(|part| part == "..") {
        return false;
    }
    rustix::fs::statat(&*dir.dir, path, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

fn size_of(file: &std::fs::File) -> u64 {
    file.metadata().map(|m| m.len()).unwrap_or(0)
}

fn quota_error() -> types::ErrorCode {
    types::ErrorCode::Quota
}

/// Converts wasmtime-wasi's error into the WIT result, trapping on a trap.
fn wit_result<T>(state: &mut HostState, result: wasmtime_wasi::p2::FsResult<T>) -> wasmtime::Result<Result<T, types::ErrorCode>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(error) => Ok(Err(types::Host::convert_error_code(&mut state.filesystem(), error)?)),
    }
}

use wasmtime_wasi::filesystem::WasiFilesystemView;

/// Stands in for the WASI filesystem functions that grow files, so folder
/// quotas hold. Call after `wasmtime_wasi::p2::add_to_linker_async`.
pub fn add_quota_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.instance(WASI_PREOPENS)?.func_wrap("get-directories", |mut store, (): ()| {
        let state = store.data_mut();
        let directories = preopens::Host::get_directories(&mut state.filesystem())?;
        for (descriptor, path) in &directories {
            state.folder_usage.note_preopen(descriptor.rep(), path);
        }
        Ok((directories,))
    })?;
    let mut types_linker = linker.instance(WASI_FILESYSTEM)?;
    types_linker.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store,
         (parent, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            types::PathFlags,
            String,
            types::OpenFlags,
            types::DescriptorFlags,
        )| {
            Box::new(async move {
                let state = store.data_mut();
                let parent_rep = parent.rep();
                let folder = state.folder_usage.folder_of(parent_rep);
                let creates = open_flags.contains(types::OpenFlags::CREATE) && !entry_exists(state, &parent, &path);
                let writes = flags.contains(types::DescriptorFlags::WRITE);
                if (creates || writes) && !state.folder_usage.charge(folder, if creates { ENTRY_BYTES } else { 0 }) {
                    return Ok((Err(quota_error()),));
                }
                let opened = types::HostDescriptor::open_at(&mut state.filesystem(), parent, path_flags, path, open_flags, flags).await;
                match &opened {
                    Ok(child) => state.folder_usage.note_opened(parent_rep, child.rep()),
                    Err(_) if creates => state.folder_usage.refund(folder, ENTRY_BYTES),
                    Err(_) => {}
                }
                Ok((wit_result(state, opened)?,))
            })
        },
    )?;
    types_linker.func_wrap_async(
        "[method]descriptor.write",
        |mut store, (descriptor, buffer, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                let folder = state.folder_usage.folder_of(descriptor.rep());
                let mut growth = 0;
                if let Some(file) = file_of(state, &descriptor) {
                    growth = offset.saturating_add(buffer.len() as u64).saturating_sub(size_of(&file));
                    if !state.folder_usage.charge(folder, growth) {
                        return Ok((Err(quota_error()),));
                    }
                }
                let written = types::HostDescriptor::write(&mut state.filesystem(), descriptor, buffer, offset).await;
                if written.is_err() {
                    state.folder_usage.refund(folder, growth);
                }
                Ok((wit_result(state, written)?,))
            })
        },
    )?;
    types_linker.func_wrap_async(
        "[method]descriptor.set-size",
        |mut store, (descriptor, size): (Resource<Descriptor>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                let folder = state.folder_usage.folder_of(descriptor.rep());
                let mut growth = 0;
                if let Some(file) = file_of(state, &descriptor) {
                    growth = size.saturating_sub(size_of(&file));
                    if !state.folder_usage.charge(folder, growth) {
                        return Ok((Err(quota_error()),));
                    }
                }
                let done = types::HostDescriptor::set_size(&mut state.filesystem(), descriptor, size).await;
                if done.is_err() {
                    state.folder_usage.refund(folder, growth);
                }
                Ok((wit_result(state, done)?,))
            })
        },
    )?;
    types_linker.func_wrap_async("[method]descriptor.create-directory-at", |mut store, (dir, path): (Resource<Descriptor>, String)| {
        Box::new(async move {
            let state = store.data_mut();
            if !state.folder_usage.charge(state.folder_usage.folder_of(dir.rep()), ENTRY_BYTES) {
                return Ok((Err(quota_error()),));
            }
            let done = types::HostDescriptor::create_directory_at(&mut state.filesystem(), dir, path).await;
            Ok((wit_result(state, done)?,))
        })
    })?;
    types_linker.func_wrap_async(
        "[method]descriptor.symlink-at",
        |mut store, (dir, target, path): (Resource<Descriptor>, String, String)| {
            Box::new(async move {
                let state = store.data_mut();
                if !state.folder_usage.charge(state.folder_usage.folder_of(dir.rep()), ENTRY_BYTES) {
                    return Ok((Err(quota_error()),));
                }
                let done = types::HostDescriptor::symlink_at(&mut state.filesystem(), dir, target, path).await;
                Ok((wit_result(state, done)?,))
            })
        },
    )?;
    types_linker.func_wrap_async(
        "[method]descriptor.link-at",
        |mut store, (dir, flags, old, new_dir, new): (Resource<Descriptor>, types::PathFlags, String, Resource<Descriptor>, String)| {
            Box::new(async move {
                let state = store.data_mut();
                let (from, to) = (state.folder_usage.folder_of(dir.rep()), state.folder_usage.folder_of(new_dir.rep()));
                if from.is_none() || from != to {
                    return Ok((Err(types::ErrorCode::CrossDevice),));
                }
                if !state.folder_usage.charge(to, ENTRY_BYTES) {
                    return Ok((Err(quota_error()),));
                }
                let done = types::HostDescriptor::link_at(&mut state.filesystem(), dir, flags, old, new_dir, new).await;
                Ok((wit_result(state, done)?,))
            })
        },
    )?;
    types_linker.func_wrap_async(
        "[method]descriptor.rename-at",
        |mut store, (dir, old, new_dir, new): (Resource<Descriptor>, String, Resource<Descriptor>, String)| {
            Box::new(async move {
                let state = store.data_mut();
                let (from, to) = (state.folder_usage.folder_of(dir.rep()), state.folder_usage.folder_of(new_dir.rep()));
                if from.is_none() || from != to {
                    return Ok((Err(types::ErrorCode::CrossDevice),));
                }
                let done = types::HostDescriptor::rename_at(&mut state.filesystem(), dir, old, new_dir, new).await;
                Ok((wit_result(state, done)?,))
            })
        },
    )?;
    types_linker.func_wrap(
        "[method]descriptor.write-via-stream",
        |mut store, (descriptor, offset): (Resource<Descriptor>, u64)| {
            let state = store.data_mut();
            let stream = open_stream(state, descriptor, Some(offset));
            Ok((wit_result(state, stream)?,))
        },
    )?;
    types_linker.func_wrap("[method]descriptor.append-via-stream", |mut store, (descriptor,): (Resource<Descriptor>,)| {
        let state = store.data_mut();
        let stream = open_stream(state, descriptor, None);
        Ok((wit_result(state, stream)?,))
    })?;
    Ok(())
}

/// Opens a write stream through wasmtime-wasi, then wraps it so its writes
/// are charged to the descriptor's folder.
fn open_stream(
    state: &mut HostState,
    descriptor: Resource<Descriptor>,
    offset: Option<u64>,
) -> wasmtime_wasi::p2::FsResult<Resource<DynOutputStream>> {
    let folder = state.folder_usage.folder_of(descriptor.rep());
    let file = file_of(state, &descriptor);
    let stream = match offset {
        Some(offset) => types::HostDescriptor::write_via_stream(&mut state.filesystem(), descriptor, offset)?,
        None => types::HostDescriptor::append_via_stream(&mut state.filesystem(), descriptor)?,
    };
    if let Some(file) = file {
        let usage = state.folder_usage.clone();
        let slot: &mut DynOutputStream = state.ctx().table.get_mut(&stream)?;
        let inner = std::mem::replace(slot, Box::new(ClosedStream));
        *slot = Box::new(QuotaStream { inner, file, position: offset, folder, usage });
    }
    Ok(stream)
}

/// A file's output stream whose writes count against its folder's quota.
struct QuotaStream {
    inner: DynOutputStream,
    file: Arc<std::fs::File>,
    /// Where the next write lands; `None` when appending.
    position: Option<u64>,
    folder: Option<usize>,
    usage: FolderUsage,
}

#[wasmtime_wasi::async_trait]
impl Pollable for QuotaStream {
    async fn ready(&mut self) {
        self.inner.ready().await;
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for QuotaStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let length = bytes.len() as u64;
        let size = size_of(&self.file);
        let growth = match self.position {
            Some(position) => position.saturating_add(length).saturating_sub(size),
            None => length,
        };
        if !self.usage.charge(self.folder, growth) {
            // EDQUOT: the guest's I/O error reads "disk quota exceeded".
            return Err(StreamError::LastOperationFailed(std::io::Error::from_raw_os_error(122).into()));
        }
        if let Some(position) = &mut self.position {
            *position += length;
        }
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await;
    }
}

/// Stands in the table for a moment while a stream is being wrapped.
struct ClosedStream;

#[wasmtime_wasi::async_trait]
impl Pollable for ClosedStream {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for ClosedStream {
    fn write(&mut self, _bytes: Bytes) -> StreamResult<()> {
        Err(StreamError::Closed)
    }
    fn flush(&mut self) -> StreamResult<()> {
        Err(StreamError::Closed)
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Err(StreamError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{mkdirat, openat, Mode, OFlags};

    #[test]
    fn a_folder_is_measured_whole_however_deep_and_long_its_paths() {
        let root = tempfile::tempdir().unwrap();
        let name = "n".repeat(200);
        // 25 levels of 200-character names: a path far past PATH_MAX.
        let mut folder = openat(rustix::fs::CWD, root.path(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        for _ in 0..25 {
            mkdirat(&folder, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            folder = openat(&folder, name.as_str(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        }
        let file = openat(&folder, "deep.bin", OFlags::WRONLY | OFlags::CREATE, Mode::from_raw_mode(0o644)).unwrap();
        rustix::io::write(&file, &vec![1u8; 300_000]).unwrap();
        let size = folder_size(root.path()).expect("measured");
        assert_eq!(size, 300_000 + 26 * ENTRY_BYTES);
    }

    #[test]
    fn an_unreadable_folder_counts_as_full() {
        let account = FolderAccount { path: "/no/such/folder".into(), state: Mutex::default() };
        assert!(!account.charge(1, 1 << 30));
    }
}
