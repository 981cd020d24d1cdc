//! A native harness for unit-testing plugin logic without the host.
//!
//! In a native build (`cargo test` on the plugin crate) the host services read
//! from a thread-local [`Harness`]: set the settings, call your trait methods
//! directly, then look at what was logged. HTTP requests go to a stand-in for
//! the system that the test sets with [`Harness::serve_http`]; the requests
//! sent are kept for [`Harness::take_requests`].
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

use crate::host::{Level, Request, Response};
use crate::Problem;

/// A unit test's stand-in for the system a connector talks to over HTTP.
type HttpStandIn = Box<dyn FnMut(&Request) -> Response>;

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
    static HTTP: RefCell<(Option<HttpStandIn>, Vec<Request>)> = RefCell::new((None, Vec::new()));
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

    /// Answers this thread's HTTP requests with `stand_in` from now on.
    ///
    /// ```
    /// use synchost_plugin_sdk::host::{http, Request, Response};
    /// use synchost_plugin_sdk::testing::Harness;
    ///
    /// Harness::serve_http(|request| Response::with_json(200, &serde_json::json!({ "path": request.url })));
    /// let response = http::send(&Request::new("GET", "https://tickets.example/api/me")).unwrap();
    /// assert_eq!(response.status, 200);
    /// assert_eq!(Harness::take_requests()[0].url, "https://tickets.example/api/me");
    /// ```
    pub fn serve_http(stand_in: impl FnMut(&Request) -> Response + 'static) {
        HTTP.with(|http| http.borrow_mut().0 = Some(Box::new(stand_in)));
    }

    /// Takes the HTTP requests sent on this thread so far.
    pub fn take_requests() -> Vec<Request> {
        HTTP.with(|http| std::mem::take(&mut http.borrow_mut().1))
    }

    /// Sends a request to this thread's stand-in (the native `http::send`).
    pub(crate) fn send(request: &Request) -> Result<Response, Problem> {
        HTTP.with(|http| {
            let mut http = http.borrow_mut();
            http.1.push(request.clone());
            match http.0.as_mut() {
                Some(stand_in) => Ok(stand_in(request)),
                None => Err(Problem {
                    code: "needs-host".into(),
                    message: format!("{} {}: no HTTP stand-in on this thread", request.method, request.url),
                    hint: Some("call Harness::serve_http in the test, or test through synchost's runtime".into()),
                    retryable: false,
                }),
            }
        })
    }

    /// Runs `f` on this thread's harness.
    pub fn with<R>(f: impl FnOnce(&mut Harness) -> R) -> R {
        HARNESS.with(|h| f(&mut h.borrow_mut()))
    }
}
