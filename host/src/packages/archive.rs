//! A package as one file: a gzip-compressed tar of the manifest, the
//! component and, once signed, the signature. Reading one is guarded: only
//! plain files with plain names, none twice, and a cap on what it may unpack
//! to, so that a hostile file cannot write outside the store or fill the disk.

use std::collections::BTreeMap;
use std::io::Read;

use super::manifest::MANIFEST_FILE;
use super::signature::SIGNATURE_FILE;

/// A package file's extension.
pub const EXTENSION: &str = "synchost-package";

/// The most a package may unpack to.
pub const MAX_UNPACKED: u64 = 256 * 1024 * 1024;

/// Why a package file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("it is not a synchost package (a gzip-compressed tar): {0}")]
    NotAPackage(std::io::Error),
    #[error("it holds `{0}`, which is not a plain file with a plain name")]
    BadEntry(String),
    #[error("it holds `{0}` twice")]
    Twice(String),
    #[error("it unpacks to more than {} MiB", MAX_UNPACKED / 1024 / 1024)]
    TooLarge,
    #[error("it has no {MANIFEST_FILE}")]
    NoManifest,
}

/// Packs files (name, bytes) into a package file's bytes.
pub fn pack(files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<Vec<u8>> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    for (name, bytes) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // Fixed, so that packing the same files twice gives the same bytes.
        header.set_mtime(0);
        builder.append_data(&mut header, name, bytes.as_slice())?;
    }
    builder.into_inner()?.finish()
}

/// Reads a package file's entries (name, bytes), checking each.
pub fn unpack(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, ArchiveError> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(ArchiveError::NotAPackage)? {
        let mut entry = entry.map_err(ArchiveError::NotAPackage)?;
        let name = entry.path().map_err(ArchiveError::NotAPackage)?.to_string_lossy().into_owned();
        let plain = !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains(['/', '\\'])
            && entry.header().entry_type() == tar::EntryType::Regular;
        if !plain {
            return Err(ArchiveError::BadEntry(name));
        }
        total = total.saturating_add(entry.header().size().map_err(ArchiveError::NotAPackage)?);
        if total > MAX_UNPACKED {
            return Err(ArchiveError::TooLarge);
        }
        let mut content = Vec::new();
        // The header's size may lie: read no more than the cap allows.
        (&mut entry).take(MAX_UNPACKED + 1).read_to_end(&mut content).map_err(ArchiveError::NotAPackage)?;
        if content.len() as u64 > MAX_UNPACKED {
            return Err(ArchiveError::TooLarge);
        }
        if files.insert(name.clone(), content).is_some() {
            return Err(ArchiveError::Twice(name));
        }
    }
    if !files.contains_key(MANIFEST_FILE) {
        return Err(ArchiveError::NoManifest);
    }
    Ok(files)
}

/// The files a package may hold besides its component.
pub fn is_package_file(name: &str) -> bool {
    name == MANIFEST_FILE || name == SIGNATURE_FILE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_files_come_back_the_same_and_packing_is_repeatable() {
        let files = BTreeMap::from([(MANIFEST_FILE.to_owned(), b"[package]".to_vec()), ("plugin.wasm".to_owned(), vec![0, 97, 115, 109])]);
        let packed = pack(&files).unwrap();
        assert_eq!(unpack(&packed).unwrap(), files);
        assert_eq!(pack(&files).unwrap(), packed);
    }

    #[test]
    fn a_path_out_of_the_store_or_garbage_is_refused() {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_entry_type(tar::EntryType::Regular);
        // `append_data` refuses `..`; a hostile file is written by other means.
        header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../escape.txt");
        header.set_cksum();
        builder.append(&header, &b"x"[..]).unwrap();
        let packed = builder.into_inner().unwrap().finish().unwrap();
        assert!(matches!(unpack(&packed), Err(ArchiveError::BadEntry(name)) if name == "../escape.txt"));
        assert!(matches!(unpack(b"not a package"), Err(ArchiveError::NotAPackage(_))));
    }
}
