//! The scheduler: `synchost run`. Each pipeline runs on its schedule in its own
//! task; failed runs are retried with exponential backoff and jitter, failed
//! items are resubmitted on their own schedule, and nothing ever turns a
//! pipeline off by itself (T3): only an admin pauses one. The scheduler's
//! heartbeat is in state, so `status` can tell whether anything is running (C10).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;

use crate::engine::{Engine, Mode};
use crate::state::now;

/// How often the scheduler writes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// The wait before attempt `failures + 1`: doubling from `first`, capped at
/// `max`, plus up to a quarter of random jitter so that many pipelines failing
/// together do not retry in lockstep.
pub fn backoff(failures: u32, first: Duration, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let base = first.saturating_mul(1 << exponent).min(max);
    let jitter = rand::rng().random_range(0.0..0.25);
    base + base.mul_f64(jitter)
}

/// Runs every pipeline on its schedule until `shutdown` turns true; then lets
/// each pipeline finish its current batch and returns.
pub async fn run(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let started = now();
    let host = crate::state::lease::host_name();
    engine.state.beat(std::process::id(), &host, &started)?;
    engine.state.event("info", None, None, &format!("scheduler started (pid {})", std::process::id()), None)?;
    engine.probe_at_startup().await?;
    let mut tasks = Vec::new();
    for name in engine.config.config.pipelines.keys() {
        let engine = engine.clone();
        let name = name.to_string();
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move { pipeline_loop(engine, name, shutdown).await }));
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {
                if let Err(error) = engine.state.beat(std::process::id(), &host, &started) {
                    tracing::warn!("Could not write the scheduler heartbeat: {error}");
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    tracing::info!("Stopping: letting each pipeline finish its current batch");
    engine.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    engine.state.event("info", None, None, "scheduler stopped", None)?;
    Ok(())
}

async fn pipeline_loop(engine: Arc<Engine>, name: String, mut shutdown: watch::Receiver<bool>) {
    let Ok(config) = engine.pipeline(&name).cloned() else { return };
    let mut failures: u32 = 0;
    let mut last_resubmit = Instant::now();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let paused = engine.state.health(&name).ok().flatten().is_some_and(|h| h.state == "paused");
        let delay = if paused {
            config.schedule.period().min(Duration::from_secs(30))
        } else {
            let links_before = engine.state.link_count(&name).unwrap_or(0);
            match engine.run(&name, "schedule", Mode::Apply).await {
                Ok(report) => {
                    if failures > 0 {
                        tracing::info!(pipeline = %name, "Pipeline recovered after {failures} failed run(s)");
                        // Items that failed because the other side was down go again now.
                        engine.request_resubmit([name.clone()]);
                    }
                    failures = 0;
                    if engine.state.link_count(&name).unwrap_or(0) > links_before {
                        engine.request_resubmit(engine.referencing(&name));
                    }
                    if report.counts.created + report.counts.updated + report.counts.deleted > 0 {
                        tracing::info!(pipeline = %name, run = report.run_id, created = report.counts.created, updated = report.counts.updated, deleted = report.counts.deleted, "Run done");
                    }
                    config.schedule.next_delay()
                }
                Err(error) => {
                    failures += 1;
                    let wait = backoff(failures, config.retry.backoff.0, config.retry.max_backoff.0);
                    tracing::warn!(pipeline = %name, failures, retry_in = %humantime::format_duration(Duration::from_secs(wait.as_secs())), "Run failed: {error}");
                    wait
                }
            }
        };
        let requested = engine.take_resubmit_request(&name);
        if !paused && failures == 0 && (requested || last_resubmit.elapsed() >= config.retry.resubmit.0) {
            last_resubmit = Instant::now();
            if engine.state.failed(Some(&name)).is_ok_and(|f| !f.is_empty()) {
                let links_before = engine.state.link_count(&name).unwrap_or(0);
                if let Err(error) = engine.resubmit_failed(&name, None, "resubmit").await {
                    tracing::warn!(pipeline = %name, "Resubmission failed: {error}");
                }
                // What the resubmission linked may be what others wait for.
                if engine.state.link_count(&name).unwrap_or(0) > links_before {
                    engine.request_resubmit(engine.referencing(&name).into_iter().filter(|p| *p != name));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let (first, max) = (Duration::from_secs(5), Duration::from_secs(300));
        for (failures, base) in [(1, 5), (2, 10), (3, 20), (7, 300), (40, 300)] {
            let wait = backoff(failures, first, max);
            let base = Duration::from_secs(base);
            assert!(wait >= base && wait <= base + base / 4, "{failures}: {wait:?}");
        }
    }
}
