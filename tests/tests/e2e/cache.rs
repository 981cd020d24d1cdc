//! Compiled plugins are cached on disk by content hash and engine compatibility.

use synchost::runtime::Runtime;

fn cached_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default()
}

// Covers: H1
#[test]
fn compiled_components_are_cached_and_a_corrupt_entry_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = synchost::bundled::bytes("sql-table").unwrap();

    let runtime = Runtime::new(Some(dir.path().to_owned())).unwrap();
    runtime.load_plugin("sql-table", bytes).unwrap();
    let files = cached_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with(".cwasm"));
    let modified = std::fs::metadata(&files[0]).unwrap().modified().unwrap();

    // A second host process (here: a second runtime) loads the cached code.
    let again = Runtime::new(Some(dir.path().to_owned())).unwrap();
    again.load_plugin("sql-table", bytes).unwrap();
    assert_eq!(std::fs::metadata(&files[0]).unwrap().modified().unwrap(), modified);
    assert_eq!(cached_files(dir.path()).len(), 1);

    // A damaged cache entry is replaced, not trusted.
    std::fs::write(&files[0], b"garbage").unwrap();
    let third = Runtime::new(Some(dir.path().to_owned())).unwrap();
    third.load_plugin("sql-table", bytes).unwrap();
    assert!(std::fs::metadata(&files[0]).unwrap().len() > 1000);
}
