//! The process's log: one filter for everything, and verbose tracing of one
//! pipeline on demand, for a while, without a restart (P12): an admin asks
//! (`synchost trace PIPELINE`, or the admin API), the filter gains
//! `[run{pipeline=NAME}]=debug` until the time is up, and then loses it.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event, for people.
    Pretty,
    /// One JSON object per event, for log collectors.
    Json,
}

struct Filter {
    handle: reload::Handle<EnvFilter, Registry>,
    base: String,
    /// Pipelines traced verbosely, and until when.
    traced: Mutex<BTreeMap<String, Instant>>,
}

static FILTER: OnceLock<Filter> = OnceLock::new();

/// Sets up the log: `RUST_LOG` if set, else by `verbose` (0: info of synchost, 1: debug, 2+: trace).
pub fn init(format: LogFormat, verbose: u8, ansi: bool) {
    let base = std::env::var("RUST_LOG").ok().filter(|f| EnvFilter::try_new(f).is_ok()).unwrap_or_else(|| {
        match verbose {
            0 => "warn,synchost=info",
            1 => "debug,cranelift_codegen=info,wasmtime=info",
            _ => "trace",
        }
        .to_owned()
    });
    let (filter, handle) = reload::Layer::new(EnvFilter::new(&base));
    let writer = || crate::secrets::RedactingWriter(std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer().compact().with_writer(writer).with_ansi(ansi)).try_init(),
        LogFormat::Json => registry.with(tracing_subscriber::fmt::layer().json().with_writer(writer)).try_init(),
    };
    if installed.is_ok() {
        let _ = FILTER.set(Filter { handle, base, traced: Mutex::default() });
    }
}

/// The filter: the base, and debug inside the runs of each traced pipeline.
fn directives(base: &str, traced: &BTreeMap<String, Instant>) -> String {
    let mut filter = base.to_owned();
    for pipeline in traced.keys() {
        filter.push_str(&format!(",[run{{pipeline={pipeline}}}]=debug"));
    }
    filter
}

fn apply(filter: &Filter, traced: &BTreeMap<String, Instant>) -> Result<(), String> {
    let text = directives(&filter.base, traced);
    let parsed = EnvFilter::try_new(&text).map_err(|e| format!("the log filter `{text}` does not parse: {e}"))?;
    filter.handle.reload(parsed).map_err(|e| format!("cannot change the log filter: {e}"))
}

/// Traces `pipeline` at debug level for `period` (zero: stops now). The
/// change ends by itself when the time is up.
pub fn trace_pipeline(pipeline: &str, period: Duration) -> Result<(), String> {
    let filter = FILTER.get().ok_or("this process has no log to change")?;
    let until = Instant::now() + period;
    {
        let mut traced = filter.traced.lock().expect("the traced list's lock is never poisoned");
        traced.retain(|_, until| *until > Instant::now());
        if period.is_zero() {
            traced.remove(pipeline);
        } else {
            traced.insert(pipeline.to_owned(), until);
        }
        apply(filter, &traced)?;
    }
    if !period.is_zero() {
        let pipeline = pipeline.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(period).await;
            let mut traced = filter.traced.lock().expect("the traced list's lock is never poisoned");
            if traced.get(&pipeline).is_some_and(|until| *until <= Instant::now()) {
                traced.remove(&pipeline);
                if let Err(error) = apply(filter, &traced) {
                    tracing::warn!("{error}");
                }
                tracing::info!(pipeline, "Verbose tracing ended");
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_traced_pipeline_adds_debug_inside_its_runs() {
        let traced = BTreeMap::from([("crm".to_owned(), Instant::now()), ("plan".to_owned(), Instant::now())]);
        let text = directives("warn,synchost=info", &traced);
        assert_eq!(text, "warn,synchost=info,[run{pipeline=crm}]=debug,[run{pipeline=plan}]=debug");
        assert!(EnvFilter::try_new(&text).is_ok());
    }
}
