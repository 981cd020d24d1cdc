//! `synchost endpoints list` and `synchost endpoints rebind`: each
//! endpoint's identity and the host's, as recorded and now, and confirming
//! a new one after a move (T5).

use std::path::Path;

use super::admin::{open_engine, state_error};
use super::output::say;
use super::remote::RunningHost;
use super::CommandError;
use crate::engine::identity::{Finding, RebindError, Subject};

/// `synchost endpoints list [--json]`
pub async fn list(config_path: &Path, json: bool) -> Result<(), CommandError> {
    let engine = open_engine(config_path)?;
    let findings = engine.identity_findings().await.map_err(state_error)?;
    if json {
        let rows: Vec<serde_json::Value> = findings.iter().map(Finding::to_json).collect();
        say!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(());
    }
    for finding in &findings {
        let verdict = match (&finding.recorded, &finding.mismatch) {
            (None, _) => "not recorded yet (recorded at its first sync)".to_owned(),
            (Some(_), Some((message, fix))) => format!("MISMATCH: {message}\n      = fix: {fix}"),
            (Some(recorded), None) => match &recorded.confirmed_by {
                Some(by) => format!("as confirmed by {by} at {}", recorded.recorded_at),
                None => format!("as recorded at {}", recorded.recorded_at),
            },
        };
        say!("{}\n    now: {}\n    {verdict}", finding.subject, finding.current.summary());
    }
    Ok(())
}

/// `synchost endpoints rebind NAME` or `synchost endpoints rebind --host`:
/// through the running host's API when one runs (it wakes the pipelines
/// the mismatch stopped), else in the state.
pub async fn rebind(config_path: &Path, endpoint: Option<&str>, by: &str) -> Result<(), CommandError> {
    if let Some(host) = RunningHost::find(config_path) {
        let body = match endpoint {
            Some(name) => serde_json::json!({ "endpoint": name }),
            None => serde_json::json!({ "host": true }),
        };
        let answer = host.call(reqwest::Method::POST, "/api/v1/identities/rebind", Some(body), by).await?;
        say!("{}", answer["message"].as_str().unwrap_or("confirmed"));
        return Ok(());
    }
    let engine = open_engine(config_path)?;
    let subject = endpoint.map_or(Subject::Host, Subject::Endpoint);
    let confirmed = engine.rebind(subject, by).await.map_err(|error| match error {
        RebindError::UnknownEndpoint(_) => CommandError::Reported(format!("{error}\n  = fix: `synchost endpoints list` shows the endpoints")),
        RebindError::State(error) => state_error(error),
    })?;
    say!("{subject} confirmed: {}; its pipelines sync again on their next run", confirmed.summary());
    Ok(())
}
