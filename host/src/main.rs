//! The `synchost` binary.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    synchost::cli::main().await
}
