//! What the process counts as it goes, for `/metrics`: runs and records per
//! pipeline (fed by the pipeline loops), calls into plugins and how they
//! failed (fed by the runtime). Counted since the process started, as
//! Prometheus expects of counters.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::state::RunCounts;

/// The labels of a per-pipeline metric (also the gauges `/metrics` reads from the state).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PipelineLabels {
    pub pipeline: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SideLabels {
    pipeline: String,
    side: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    pipeline: String,
    action: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    pipeline: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    plugin: String,
    function: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    plugin: String,
    kind: &'static str,
}

fn run_buckets() -> Histogram {
    // 10 ms to about 45 minutes.
    Histogram::new(exponential_buckets(0.01, 3.0, 15))
}

fn call_buckets() -> Histogram {
    // 1 ms to about 20 s.
    Histogram::new(exponential_buckets(0.001, 3.0, 10))
}

/// What the process counts as it goes.
struct Counted {
    records_read: Family<SideLabels, Counter>,
    records_written: Family<ActionLabels, Counter>,
    records_failed: Family<PipelineLabels, Counter>,
    conflicts: Family<PipelineLabels, Counter>,
    runs: Family<RunLabels, Counter>,
    run_seconds: Family<PipelineLabels, Histogram, fn() -> Histogram>,
    plugin_calls: Family<CallLabels, Counter>,
    plugin_call_seconds: Family<CallLabels, Histogram, fn() -> Histogram>,
    plugin_failures: Family<FailureLabels, Counter>,
}

static COUNTED: LazyLock<Counted> = LazyLock::new(|| Counted {
    records_read: Family::default(),
    records_written: Family::default(),
    records_failed: Family::default(),
    conflicts: Family::default(),
    runs: Family::default(),
    run_seconds: Family::new_with_constructor(run_buckets),
    plugin_calls: Family::default(),
    plugin_call_seconds: Family::new_with_constructor(call_buckets),
    plugin_failures: Family::default(),
});

/// Counts a run of `pipeline` that ended (`counts` when it succeeded).
pub fn observe_run(pipeline: &str, took: Duration, counts: Option<&RunCounts>) {
    let c = &*COUNTED;
    let name = || pipeline.to_owned();
    c.run_seconds.get_or_create(&PipelineLabels { pipeline: name() }).observe(took.as_secs_f64());
    c.runs.get_or_create(&RunLabels { pipeline: name(), outcome: if counts.is_some() { "ok" } else { "failed" } }).inc();
    let Some(counts) = counts else { return };
    for (side, read) in [("left", counts.read_left), ("right", counts.read_right)] {
        c.records_read.get_or_create(&SideLabels { pipeline: name(), side }).inc_by(read);
    }
    for (action, written) in [("created", counts.created), ("updated", counts.updated), ("deleted", counts.deleted)] {
        c.records_written.get_or_create(&ActionLabels { pipeline: name(), action }).inc_by(written);
    }
    c.records_failed.get_or_create(&PipelineLabels { pipeline: name() }).inc_by(counts.failed);
    c.conflicts.get_or_create(&PipelineLabels { pipeline: name() }).inc_by(counts.conflicts);
}

/// Counts a call into a plugin, and how it failed if it did (`trap`,
/// `timeout`, `memory`, `over-budget`, `problem` ...).
pub fn observe_call(plugin: &str, function: &'static str, took: Duration, failure: Option<&'static str>) {
    let c = &*COUNTED;
    let labels = CallLabels { plugin: plugin.to_owned(), function };
    c.plugin_calls.get_or_create(&labels).inc();
    c.plugin_call_seconds.get_or_create(&labels).observe(took.as_secs_f64());
    if let Some(kind) = failure {
        c.plugin_failures.get_or_create(&FailureLabels { plugin: plugin.to_owned(), kind }).inc();
    }
}

/// Adds every counter and histogram to `registry`.
pub fn register_counters(registry: &mut Registry) {
    let c = &*COUNTED;
    registry.register("records_read", "Records read from each side", c.records_read.clone());
    registry.register("records_written", "Records created, updated or deleted on the other side", c.records_written.clone());
    registry.register("records_failed", "Records that became failed items", c.records_failed.clone());
    registry.register("conflicts", "Conflicts detected", c.conflicts.clone());
    registry.register("runs", "Runs, by outcome", c.runs.clone());
    registry.register("run_duration_seconds", "How long runs took", c.run_seconds.clone());
    registry.register("plugin_calls", "Calls into plugins", c.plugin_calls.clone());
    registry.register("plugin_call_duration_seconds", "How long plugin calls took", c.plugin_call_seconds.clone());
    registry.register("plugin_failures", "Plugin calls that failed, by kind (trap, timeout, memory, over-budget, output-too-large, problem)", c.plugin_failures.clone());
}
