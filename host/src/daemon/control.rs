//! How the admin API reaches the running pipelines: it wakes a pipeline for
//! a run now, and takes a pipeline's turn to carry out a decision (resolve a
//! conflict, retry failed items) between its runs, never during one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Shared by the pipeline loops and the admin API of one `synchost run`.
#[derive(Debug, Default)]
pub struct Control {
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Every endpoint of every pipeline was probed at start.
    probed: AtomicBool,
}

impl Control {
    /// What a pipeline's loop waits on between runs, besides its schedule.
    pub fn waker(&self, pipeline: &str) -> Arc<Notify> {
        self.wakers.lock().expect("the wakers' lock is never poisoned").entry(pipeline.to_owned()).or_default().clone()
    }

    /// Starts a run of `pipeline` now (after the one in progress, if any).
    pub fn wake(&self, pipeline: &str) {
        self.waker(pipeline).notify_one();
    }

    /// A pipeline's turn: held by its loop while it runs, and by a decision
    /// carried out on it, so the two never overlap.
    pub fn turn(&self, pipeline: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.turns.lock().expect("the turns' lock is never poisoned").entry(pipeline.to_owned()).or_default().clone()
    }

    pub fn set_probed(&self) {
        self.probed.store(true, Ordering::Relaxed);
    }

    /// Whether the host has probed every endpoint its pipelines use.
    pub fn probed(&self) -> bool {
        self.probed.load(Ordering::Relaxed)
    }
}
