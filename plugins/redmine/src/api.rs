//! Redmine's REST API over the host's `http` service, and what its answers mean.
//!
//! Every status Redmine answers with becomes a problem a person can act on:
//! 401 names the key, 403 the permission, 422 carries Redmine's own validation
//! messages, 5xx and transport failures are retryable.

use serde_json::Value as Json;
use synchost_plugin_sdk::host::{http, Request, Response};
use synchost_plugin_sdk::Error;

use crate::settings::Settings;

/// A Redmine server as one account sees it.
pub struct Api {
    base: String,
    key: String,
    timeout_ms: u32,
    /// The endpoint's name, for hints that point at its settings.
    endpoint: String,
}

/// What a request was for, to say which permission a 403 means.
#[derive(Clone, Copy)]
pub struct Purpose<'a> {
    /// e.g. "log time" or "list users".
    pub action: &'a str,
    /// Redmine's name of the permission it needs, e.g. `log_time`.
    pub permission: &'a str,
}

impl Api {
    pub fn new(settings: &Settings, endpoint: &str) -> Result<Self, Error> {
        let base = settings.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::settings(format!("url `{}` is not an http(s) URL", settings.url))
                .with_hint(format!("set [endpoints.{endpoint}.settings] url to Redmine's address, e.g. \"http://127.0.0.1:3300\"")));
        }
        if settings.api_key.trim().is_empty() {
            return Err(Error::settings("api_key is empty")
                .with_hint(format!("set [endpoints.{endpoint}.settings] api_key to the key under My account > API access key in Redmine")));
        }
        Ok(Api { base, key: settings.api_key.clone(), timeout_ms: settings.timeout_ms, endpoint: endpoint.to_owned() })
    }

    fn request(&self, method: &str, path: &str) -> Request {
        let mut request = Request::new(method, format!("{}{path}", self.base)).header("X-Redmine-API-Key", self.key.clone());
        request.timeout_ms = Some(self.timeout_ms);
        request
    }

    /// As [`Api::change`], made as the Redmine user `login` when given (the
    /// account must be an administrator; Redmine answers 412, `unknown-user`,
    /// when no active user has that login).
    pub fn change_as(&self, login: Option<&str>, method: &str, path: &str, body: Option<&Json>, purpose: Purpose<'_>) -> Result<Option<Json>, Error> {
        let mut request = self.request(method, path);
        if let Some(login) = login {
            request = request.header("X-Redmine-Switch-User", login.to_owned());
        }
        if let Some(body) = body {
            request = request.json(body)?;
        }
        let response = self.send(request, purpose)?;
        if response.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        Ok(Some(response.json()?))
    }

    fn send(&self, request: Request, purpose: Purpose<'_>) -> Result<Response, Error> {
        let what = format!("{} {}", request.method, request.url.strip_prefix(&self.base).unwrap_or(&request.url));
        let response = http::send(&request)?;
        if (200..300).contains(&response.status) {
            return Ok(response);
        }
        Err(self.status_error(&what, &response, purpose))
    }

    /// The problem a non-2xx answer means.
    pub fn status_error(&self, what: &str, response: &Response, purpose: Purpose<'_>) -> Error {
        let endpoint = &self.endpoint;
        match response.status {
            401 => Error::new("unauthorized", format!("Redmine refused the API key ({what} answered 401)")).with_hint(format!(
                "set [endpoints.{endpoint}.settings] api_key to a valid key (My account > API access key), and check that the REST API is enabled (Administration > Settings > API)"
            )),
            403 => Error::new(
                "missing-permission",
                format!("the Redmine account may not {} ({what} answered 403; it needs the permission `{}`)", purpose.action, purpose.permission),
            )
            .with_hint(format!(
                "in Redmine, give the account's role the permission `{}` (Administration > Roles and permissions) in the project, or use another account's key",
                purpose.permission
            )),
            412 => Error::new("unknown-user", format!("{what}: Redmine has no active user to act for (answered 412)")),
            404 => Error::new("not-found", format!("{what}: not found in Redmine (deleted, or not visible to this account)"))
                .with_hint("check that the record or project exists and that the account is a member of its project"),
            422 => {
                let messages = response
                    .json::<Json>()
                    .ok()
                    .and_then(|body| body.get("errors").and_then(Json::as_array).cloned())
                    .map(|errors| errors.iter().filter_map(Json::as_str).collect::<Vec<_>>().join("; "))
                    .unwrap_or_else(|| response.text());
                Error::new("invalid", format!("Redmine rejected it: {messages}"))
                    .with_hint("correct the record on its own side (or map the value), then it is resubmitted")
            }
            status if status >= 500 => Error::transient("server-error", format!("{what}: Redmine answered {status}"))
                .with_hint("Redmine has an internal error or is restarting; the work is retried"),
            status => Error::new("unexpected-status", format!("{what}: Redmine answered {status}: {}", truncate(&response.text(), 200))),
        }
    }

    /// GET a JSON document.
    pub fn get(&self, path: &str, purpose: Purpose<'_>) -> Result<Json, Error> {
        self.send(self.request("GET", path), purpose)?.json()
    }

    /// GET a JSON document, or `None` when Redmine answers 404.
    pub fn get_optional(&self, path: &str, purpose: Purpose<'_>) -> Result<Option<Json>, Error> {
        match self.get(path, purpose) {
            Ok(json) => Ok(Some(json)),
            Err(error) if error.problem().code == "not-found" => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// POST, PUT or DELETE with an optional JSON body; the answer's JSON, if any.
    pub fn change(&self, method: &str, path: &str, body: Option<&Json>, purpose: Purpose<'_>) -> Result<Option<Json>, Error> {
        self.change_as(None, method, path, body, purpose)
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
