//! One pipeline's loop: runs on its schedule, retried with exponential
//! backoff and jitter after a failed run, failed items resubmitted on their
//! own schedule; nothing ever turns a pipeline off by itself (T3): only an
//! admin pauses one. Each run takes the engine serving at its start, so a
//! reload reaches the pipeline at its next run; a reload that changes the
//! pipeline wakes it at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;

use super::{Control, Serving};
use crate::engine::Mode;

/// The wait before attempt `failures + 1`: doubling from `first`, capped at
/// `max`, plus up to a quarter of random jitter so that many pipelines failing
/// together do not retry in lockstep.
pub fn backoff(failures: u32, first: Duration, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let base = first.saturating_mul(1 << exponent).min(max);
    let jitter = rand::rng().random_range(0.0..0.25);
    base + base.mul_f64(jitter)
}

/// Runs pipeline `name` until shutdown, or until a reload removes it.
pub(super) async fn pipeline_loop(mut serving: watch::Receiver<Arc<Serving>>, control: Arc<Control>, name: String, mut shutdown: watch::Receiver<bool>) {
    let turn = control.turn(&name);
    let waker = control.waker(&name);
    let mut failures: u32 = 0;
    let mut last_resubmit = Instant::now();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let engine = serving.borrow_and_update().engine.clone();
        let Ok(config) = engine.pipeline(&name).cloned() else {
            tracing::info!(pipeline = %name, "Pipeline removed by a reload; its state is kept until `synchost pipelines forget {name}`");
            return;
        };
        let paused = engine.state.health(&name).ok().flatten().is_some_and(|h| h.state == "paused");
        // A decision an admin has carried out on this pipeline waits for the end of the run, and the other way round.
        let my_turn = turn.lock().await;
        let delay = if paused {
            config.schedule.period().min(Duration::from_secs(30))
        } else {
            let links_before = engine.state.link_count(&name).unwrap_or(0);
            let started = Instant::now();
            let outcome = engine.run(&name, "schedule", Mode::Apply).await;
            crate::metrics::observe_run(&name, started.elapsed(), outcome.as_ref().ok().map(|report| &report.counts));
            match outcome {
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
        drop(my_turn);
        drop(engine);
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                // `sync` from the admin API, a resume, an approval decided.
                _ = waker.notified() => break,
                _ = shutdown.changed() => return,
                changed = serving.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now_serving = serving.borrow_and_update();
                    if now_serving.restarted.contains(&name) || now_serving.engine.pipeline(&name).is_err() {
                        // Changed: its next run starts on the new config now, with a clean slate.
                        failures = 0;
                        break;
                    }
                }
            }
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
