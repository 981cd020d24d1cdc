//! The `synchost` binary.

/// A big sync moves millions of small strings between the database, the
/// plugins and the state; mimalloc serves them from per-thread pages where
/// the system allocator spends a fifth of the run consolidating its free lists.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // mimalloc asks for transparent huge pages where the kernel leaves them to
    // the program. A batch's memory is freed and handed back to the kernel, and
    // the next batch faults it in again: with huge pages the kernel zeroes 2 MB
    // for each of those faults. Without them a first load of 200,000 rows took
    // about half the system time and 20% less peak memory (docs/benchmarks.md).
    // Set before any thread starts, so that every thread has it.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the async runtime starts").block_on(synchost::cli::main())
}
