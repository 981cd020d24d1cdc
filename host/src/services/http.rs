//! HTTP requests a plugin asks the host to perform, to allow-listed origins only.
//!
//! Redirects are not followed (a redirect could lead off the allow-list); the
//! plugin sees the 3xx and decides. Bodies are capped by the instance's
//! `max_output` limit; every request has a timeout. `Host` and the
//! hop-by-hop headers are the host's: a plugin that sets one is refused, so
//! it cannot reach another virtual host behind an allowed origin or smuggle
//! a second request. Errors name the host, never the URL (its query may
//! carry a key).

use std::time::Duration;

use crate::config::{EffectiveLimits, HttpOrigin};
use crate::runtime::api::wit_http::{Request, Response};
use crate::runtime::api::Problem;

/// The longest a single request may take, whatever the plugin asks for.
const MAX_REQUEST_TIME: Duration = Duration::from_secs(60);

/// The origins one instance may reach, and the client that reaches them.
#[derive(Debug, Clone)]
pub struct HttpAccess {
    pub allow: Vec<HttpOrigin>,
    /// Only methods that change nothing (`GET`, `HEAD`, `OPTIONS`).
    pub read_only: bool,
    pub client: reqwest::Client,
}

/// A client for plugin requests: no redirects, no proxies from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("synchost/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client's fixed configuration is valid")
}

/// Headers only the host sets: the target (`Host`, and the forwarding
/// headers a reverse proxy may route by), the connection's own (hop-by-hop,
/// RFC 9110 section 7.6.1) and the body's framing.
const HOST_HEADERS: &[&str] = &[
    "host",
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-real-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

fn problem(code: &str, message: String, hint: Option<String>, retryable: bool) -> Problem {
    Problem { code: code.into(), message, hint, retryable }
}

impl HttpAccess {
    /// Performs a request if its origin is granted.
    pub async fn send(&self, instance: &str, request: Request, limits: EffectiveLimits) -> Result<Response, Problem> {
        let shown = crate::secrets::redacted(&request.url);
        let url = url::Url::parse(&request.url)
            .map_err(|e| problem("bad-request", format!("`{shown}` is not a URL: {e}"), None, false))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(problem("bad-request", format!("`{shown}` is not an http(s) URL"), None, false));
        }
        if let Some((name, _)) = request.headers.iter().find(|(name, _)| HOST_HEADERS.contains(&name.to_ascii_lowercase().as_str())) {
            tracing::warn!(instance, header = %name, "Refused HTTP request with a header only the host sets");
            return Err(problem(
                "capability-denied",
                format!("`{instance}` may not set the `{name}` header: the host sets it from the URL and the connection"),
                Some("remove the header; to reach another host, grant its origin in [endpoints.NAME.grants.http] allow".into()),
                false,
            ));
        }
        if !self.allow.iter().any(|origin| origin.allows(&url)) {
            let origin = format!("{}:{}", url.host_str().unwrap_or(""), url.port_or_known_default().unwrap_or(0));
            tracing::warn!(instance, %origin, "Refused HTTP request to an origin that is not granted");
            return Err(problem(
                "capability-denied",
                format!("`{instance}` may not send HTTP requests to {origin}"),
                Some(format!("if it should, add \"{origin}\" to [endpoints.{instance}.grants.http] allow")),
                false,
            ));
        }
        let method = reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| problem("bad-request", format!("`{}` is not an HTTP method", request.method), None, false))?;
        if self.read_only && !matches!(method, reqwest::Method::GET | reqwest::Method::HEAD | reqwest::Method::OPTIONS) {
            tracing::warn!(instance, %method, "Refused a changing HTTP request on a read-only grant");
            return Err(problem(
                "capability-denied",
                format!("`{instance}` may only read over HTTP (GET, HEAD, OPTIONS), not send {method}"),
                Some(format!("remove `read_only = true` from [endpoints.{instance}.grants.http] to allow changes")),
                false,
            ));
        }
        let timeout = request
            .timeout_ms
            .map(|ms| Duration::from_millis(u64::from(ms)))
            .unwrap_or(MAX_REQUEST_TIME)
            .min(MAX_REQUEST_TIME)
            .min(limits.timeout);
        let mut builder = self.client.request(method, url.clone()).timeout(timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let host = format!("{}:{}", url.host_str().unwrap_or(""), url.port_or_known_default().unwrap_or(0));
        let mut response = builder.send().await.map_err(|e| transport_problem(&host, &e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport_problem(&host, &e))? {
            if (body.len() + chunk.len()) as u64 > limits.max_output {
                return Err(problem(
                    "response-too-large",
                    format!("the response from {host} is larger than the max_output limit ({} bytes)", limits.max_output),
                    Some("request smaller pages, or raise limits.max_output for the instance".into()),
                    false,
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status, headers, body })
    }
}

fn transport_problem(host: &str, error: &reqwest::Error) -> Problem {
    // A connection never made (refused, or timed out while connecting) sent
    // nothing; a timeout after that may have left the request carried out.
    if error.is_connect() {
        problem(
            "http-unreachable",
            format!("cannot connect to {host}: {}", cause_of(error)),
            Some(format!("check that {host} is running and reachable from the synchost host; the work is retried")),
            true,
        )
    } else if error.is_timeout() {
        problem(
            "http-timeout",
            format!("{host} did not answer in time"),
            Some(format!("check that {host} is up and not overloaded; the work is retried")),
            true,
        )
    } else {
        problem("http-error", format!("request to {host} failed: {}", cause_of(error)), None, true)
    }
}

/// What went wrong, without the URL (reqwest's own text names it in full).
fn cause_of(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut causes = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let text = if causes.is_empty() { error.to_string() } else { causes.join(": ") };
    crate::secrets::redacted(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_only_grant_refuses_changing_methods_before_sending_anything() {
        // Port 9 (discard) on loopback: a request that were sent would fail otherwise.
        let access = HttpAccess { allow: vec![HttpOrigin::try_from("http://127.0.0.1:9".to_owned()).unwrap()], read_only: true, client: client() };
        let request = |method: &str| Request { method: method.into(), url: "http://127.0.0.1:9/tickets".into(), headers: Vec::new(), body: None, timeout_ms: Some(500) };
        for method in ["POST", "put", "PATCH", "DELETE"] {
            let problem = access.send("tracker", request(method), EffectiveLimits::default()).await.unwrap_err();
            assert_eq!(problem.code, "capability-denied", "{method}: {problem:?}");
            assert!(problem.hint.unwrap().contains("read_only = true"));
        }
        let problem = access.send("tracker", request("GET"), EffectiveLimits::default()).await.unwrap_err();
        assert_ne!(problem.code, "capability-denied", "GET is allowed, and fails only at the closed port: {problem:?}");
    }
}
