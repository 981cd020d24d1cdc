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

    /// Adds `growth` if the folder stays within `quota`.
    fn charge(&self, growth: u64, quota: u64) -> bool {
        let mut state = self.lock();
        let measured = *state.measured.get_or_insert_with(|| folder_size(&self.path));
        if measured + state.grown + growth > quota {
            return false;
        }
        state.grown += growth;
        true
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
/// besides its contents (symbolic links are not followed).
fn folder_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|entry| {
            ENTRY_BYTES
                + match entry.metadata() {
                    Ok(meta) if meta.is_dir() => folder_size(&entry.path()),
                    Ok(meta) if meta.is_file() => meta.len(),
                    _ => 0,
                }
        })
        .sum()
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
            .map(|f| CallFolder { name: f.name.clone(), quota: f.quota, account: f.account.clone(), joined: false })
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
    fn charge(&self, folder: Option<usize>, growth: u64) -> bool {
        if growth == 0 {
            return true;
        }
        let mut call = self.lock();
        let indices: Vec<usize> = match folder {
            Some(index) => vec![index],
            None => (0..call.folders.len()).collect(),
        };
        for index in indices {
            let instance = call.instance.clone();
            let folder = &mut call.folders[index];
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
                return false;
            }
        }
        true
    }
}

/// The size of a descriptor's file, if it is a file.
fn file_of(state: &mut HostState, descriptor: &Resource<Descriptor>) -> Option<Arc<std::fs::File>> {
    match state.ctx().table.get(descriptor) {
        Ok(Descriptor::File(file)) => Some(file.file.clone()),
        _ => None,
    }
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
                if open_flags.contains(types::OpenFlags::CREATE)
                    && !state.folder_usage.charge(state.folder_usage.folder_of(parent_rep), ENTRY_BYTES)
                {
                    return Ok((Err(quota_error()),));
                }
                let opened = types::HostDescriptor::open_at(&mut state.filesystem(), parent, path_flags, path, open_flags, flags).await;
                if let Ok(child) = &opened {
                    state.folder_usage.note_opened(parent_rep, child.rep());
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
                if let Some(file) = file_of(state, &descriptor) {
                    let growth = (offset + buffer.len() as u64).saturating_sub(size_of(&file));
                    if !state.folder_usage.charge(state.folder_usage.folder_of(descriptor.rep()), growth) {
                        return Ok((Err(quota_error()),));
                    }
                }
                let written = types::HostDescriptor::write(&mut state.filesystem(), descriptor, buffer, offset).await;
                Ok((wit_result(state, written)?,))
            })
        },
    )?;
    types_linker.func_wrap_async(
        "[method]descriptor.set-size",
        |mut store, (descriptor, size): (Resource<Descriptor>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                if let Some(file) = file_of(state, &descriptor) {
                    let growth = size.saturating_sub(size_of(&file));
                    if !state.folder_usage.charge(state.folder_usage.folder_of(descriptor.rep()), growth) {
                        return Ok((Err(quota_error()),));
                    }
                }
                let done = types::HostDescriptor::set_size(&mut state.filesystem(), descriptor, size).await;
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
            Some(position) => (position + length).saturating_sub(size),
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
