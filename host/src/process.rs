//! What a process running the engine sets for itself before its first
//! thread starts: the `synchost` binary and the engine benchmark alike, so
//! that the benchmark measures what a user runs.

/// Turns transparent huge pages off for this process.
///
/// mimalloc asks for transparent huge pages where the kernel leaves them to
/// the program. A batch's memory is freed and handed back to the kernel, and
/// the next batch faults it in again: with huge pages the kernel zeroes 2 MB
/// for each of those faults. Without them a first load of 200,000 rows took
/// about half the system time and 20% less peak memory (docs/benchmarks.md).
/// Call it before any thread starts, so that every thread has it; where the
/// kernel does not know the setting nothing changes.
pub fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}
