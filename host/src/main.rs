//! The `synchost` binary.

/// A big sync moves millions of small strings between the database, the
/// plugins and the state; mimalloc serves them from per-thread pages where
/// the system allocator spends a fifth of the run consolidating its free lists.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    synchost::cli::main().await
}
