//! The command line's way to a running host: while `synchost run` serves a
//! data folder, the writing commands (`sync`, `failed retry`, `conflicts
//! resolve`, `approvals approve|reject`, `pause`, `resume`) go through its
//! admin API, so the one host that writes carries them out, as it does the
//! dashboard's. The host leaves a token for its own command line in
//! `<data_dir>/admin.token`, readable by the data folder's owner only.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::CommandError;
use crate::config::LoadedConfig;
use crate::state::lease;

/// The file a running host keeps its command line's token in.
pub const TOKEN_FILE: &str = "admin.token";

/// A running host's admin API, as this command line reaches it.
pub struct RunningHost {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl RunningHost {
    /// The host that runs on this config's data folder, if one does and serves its API.
    pub fn find(config: &Path) -> Option<RunningHost> {
        let host = LoadedConfig::host_settings_despite_errors(config).ok()?;
        let address = lease::admin_address(&host.data_dir)?;
        let token = std::fs::read_to_string(host.data_dir.join(TOKEN_FILE)).ok()?.trim().to_owned();
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60));
        let (scheme, client) = match &host.admin_certificate {
            // Served over TLS: trusted is the certificate the config names, whatever names it holds.
            Some(certificate) => ("https", client.use_preconfigured_tls(crate::http::tls::pinned_client(certificate).ok()?)),
            None => ("http", client),
        };
        Some(RunningHost { base: format!("{scheme}://{address}"), token, client: client.build().ok()? })
    }

    /// Sends a request as `acting_for` (the person named with `--by`, or
    /// the login name) and returns the answer, or the API's error with its fix.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>, acting_for: &str) -> Result<Value, CommandError> {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token).header(ACTING_FOR, acting_for);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| CommandError::Reported(format!("the running host's admin API at {} does not answer ({e})\n  = fix: see `synchost status`; if the host hangs, stop it and run the command again", self.base)))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let answer: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "message": text }));
        if status.is_success() {
            return Ok(answer);
        }
        let error = &answer["error"];
        let mut message = error["message"].as_str().unwrap_or(&text).to_owned();
        if let Some(fix) = error["fix"].as_str() {
            message.push_str(&format!("\n  = fix: {fix}"));
        }
        Err(CommandError::Reported(message))
    }
}

/// The header that names the person the command line acts for.
pub const ACTING_FOR: &str = "x-synchost-acting-for";

/// Who runs this command: the login name.
pub fn login_name() -> String {
    std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "command line".into())
}

/// A path segment with the characters a URL may not hold escaped.
pub fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>().replace('+', "%20")
}
