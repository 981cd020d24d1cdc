//! Granted folders and their quotas.
//!
//! WASI (wasmtime-wasi) gives a plugin its granted folders and keeps it
//! inside them. The host adds the quota: it stands in for the WASI calls that
//! make a file larger (`descriptor.write`, `set-size`, and the output streams
//! of `write-via-stream` / `append-via-stream`), works out which granted
//! folder each descriptor belongs to (from `get-directories` and `open-at`),
//! and refuses growth past the folder's quota with the WASI error `quota`
//! ("disk quota exceeded"). The call then fails naming the quota.
//!
//! A folder's usage is measured once per call, at its first write; bytes
//! freed during the call (a file removed or truncated) are not given back
//! until the next call.

use std::collections::HashMap;
use std::path::Path;
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

/// Per call: what each granted folder holds and may still take, and which
/// folder each open descriptor belongs to.
#[derive(Debug, Clone)]
pub struct FolderUsage(Arc<Mutex<Accounts>>);

#[derive(Debug)]
struct Accounts {
    folders: Vec<Account>,
    /// Descriptor resource (its table index) -> index into `folders`.
    descriptors: HashMap<u32, usize>,
    exceeded: Option<BudgetExceeded>,
    instance: String,
}

#[derive(Debug)]
struct Account {
    name: String,
    path: std::path::PathBuf,
    quota: u64,
    /// Bytes in the folder when the call first wrote to it.
    measured: Option<u64>,
    grown: u64,
}

/// Bytes of every file under `path` (symbolic links are not followed).
fn folder_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => folder_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

impl FolderUsage {
    pub fn new(instance: &str, folders: &[Folder]) -> Self {
        let folders = folders
            .iter()
            .map(|f| Account { name: f.name.clone(), path: f.path.clone(), quota: f.quota, measured: None, grown: 0 })
            .collect();
        FolderUsage(Arc::new(Mutex::new(Accounts {
            folders,
            descriptors: HashMap::new(),
            exceeded: None,
            instance: instance.to_owned(),
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Accounts> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The quota a call went over, if it did.
    pub fn exceeded(&self) -> Option<BudgetExceeded> {
        self.lock().exceeded.clone()
    }

    fn note_preopen(&self, descriptor: u32, guest_path: &str) {
        let mut accounts = self.lock();
        let name = guest_path.trim_start_matches('/');
        if let Some(index) = accounts.folders.iter().position(|f| f.name == name) {
            accounts.descriptors.insert(descriptor, index);
        }
    }

    fn note_opened(&self, parent: u32, child: u32) {
        let mut accounts = self.lock();
        match accounts.descriptors.get(&parent).copied() {
            Some(index) => accounts.descriptors.insert(child, index),
            None => accounts.descriptors.remove(&child),
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
        let mut accounts = self.lock();
        let instance = accounts.instance.clone();
        let indices: Vec<usize> = match folder {
            Some(index) => vec![index],
            None => (0..accounts.folders.len()).collect(),
        };
        for &index in &indices {
            let account = &mut accounts.folders[index];
            let measured = *account.measured.get_or_insert_with(|| folder_size(&account.path));
            if measured + account.grown + growth > account.quota {
                let setting = format!("`quota` of the `{}` folder grant of `{instance}`", account.name);
                let limit = bytesize::ByteSize::b(account.quota).to_string();
                let exceeded = BudgetExceeded { budget: format!("folder `{}` quota", account.name), limit, setting };
                accounts.exceeded.get_or_insert(exceeded);
                return false;
            }
        }
        for index in indices {
            accounts.folders[index].grown += growth;
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
