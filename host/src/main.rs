//! The `synchost` binary.

/// A big sync moves millions of small strings between the database, the
/// plugins and the state; mimalloc serves them from per-thread pages where
/// the system allocator spends a fifth of the run consolidating its free lists.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    synchost::process::without_transparent_huge_pages();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the async runtime starts").block_on(synchost::cli::main())
}
