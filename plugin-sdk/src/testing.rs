//! A native harness for unit-testing plugin logic without the host.
//!
//! In a native build (`cargo test` on the plugin crate) the host services read
//! from a thread-local [`Harness`]: set the settings, call your trait methods
//! directly, then look at what was logged.
//!
//! ```
//! use synchost_plugin_sdk::prelude::*;
//! use synchost_plugin_sdk::testing::Harness;
//!
//! Harness::set("test-instance", serde_json::json!({ "greeting": "hi" }));
//! let context = Context::current().unwrap();
//! let settings: serde_json::Value = context.settings().unwrap();
//! assert_eq!(settings["greeting"], "hi");
//! log::info("hello");
//! assert_eq!(Harness::take_logs().len(), 1);
//! ```

use std::cell::RefCell;

use crate::host::Level;

/// The state the native host-service wrappers read from and write to.
#[derive(Debug, Clone)]
pub struct Harness {
    /// The instance name [`Context::current`](crate::Context::current) reports.
    pub name: String,
    /// The settings [`Context::current`](crate::Context::current) reports.
    pub settings: serde_json::Value,
    /// Log lines written so far.
    pub logs: Vec<(Level, String)>,
}

thread_local! {
    static HARNESS: RefCell<Harness> = RefCell::new(Harness {
        name: "test".into(),
        settings: serde_json::json!({}),
        logs: Vec::new(),
    });
}

impl Harness {
    /// Sets the instance name and settings for this thread.
    pub fn set(name: &str, settings: serde_json::Value) {
        Self::with(|h| {
            h.name = name.to_owned();
            h.settings = settings;
        })
    }

    /// Takes the log lines written on this thread so far.
    pub fn take_logs() -> Vec<(Level, String)> {
        Self::with(|h| std::mem::take(&mut h.logs))
    }

    /// Runs `f` on this thread's harness.
    pub fn with<R>(f: impl FnOnce(&mut Harness) -> R) -> R {
        HARNESS.with(|h| f(&mut h.borrow_mut()))
    }
}
