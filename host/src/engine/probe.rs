//! Endpoint probes (T4, T6): can each endpoint be reached, is its account
//! accepted, and may it do what the pipelines need? Asked by `synchost check`
//! and when `synchost run` starts.

use std::collections::BTreeMap;

use super::Engine;
use crate::config::Side;
use crate::model::{EntityNeed, Problem};

/// What one endpoint's probe found.
pub struct ProbeResult {
    pub endpoint: String,
    /// The pipelines that use the endpoint.
    pub pipelines: Vec<String>,
    /// What the pipelines need from it.
    pub needs: Vec<EntityNeed>,
    /// Empty when everything the pipelines need is there.
    pub problems: Vec<Problem>,
}

impl Engine {
    /// Per endpoint, what its pipelines read and write, and which pipelines use it.
    pub fn endpoint_needs(&self) -> BTreeMap<String, (Vec<EntityNeed>, Vec<String>)> {
        let mut needs: BTreeMap<String, (BTreeMap<String, (bool, bool)>, Vec<String>)> = BTreeMap::new();
        for (name, pipeline) in &self.config.config.pipelines {
            for side in [Side::Left, Side::Right] {
                let (endpoint, entity) = match side {
                    Side::Left => (&pipeline.left.endpoint, &pipeline.left.entity),
                    Side::Right => (&pipeline.right.endpoint, &pipeline.right.entity),
                };
                let from = side.other();
                let writes = pipeline.create.allows(from) || pipeline.fields.values().any(|rule| rule.direction.allows(from));
                let (entities, users) = needs.entry(endpoint.get_ref().to_string()).or_default();
                let need = entities.entry(entity.clone()).or_default();
                need.0 = true;
                need.1 |= writes;
                if !users.contains(&name.to_string()) {
                    users.push(name.to_string());
                }
            }
        }
        needs
            .into_iter()
            .map(|(endpoint, (entities, users))| {
                let needs = entities.into_iter().map(|(entity, (read, write))| EntityNeed { entity, read, write }).collect();
                (endpoint, (needs, users))
            })
            .collect()
    }

    /// Probes every endpoint a pipeline uses. An endpoint that cannot be
    /// reached, or refuses the account, reports that as its one problem.
    pub async fn probe_endpoints(&self) -> Vec<ProbeResult> {
        self.probe_some(|_| true).await
    }

    /// Probes the endpoints `wanted` picks (a reload probes only the endpoints it adds or changes).
    pub async fn probe_some(&self, wanted: impl Fn(&str) -> bool) -> Vec<ProbeResult> {
        let mut results = Vec::new();
        for (endpoint, (needs, pipelines)) in self.endpoint_needs().into_iter().filter(|(endpoint, _)| wanted(endpoint)) {
            let problems = match self.catalog.instance(&endpoint) {
                Err(failure) => vec![Problem { code: "not-loaded".into(), message: failure.message.clone(), hint: failure.hint.clone(), retryable: false }],
                Ok(instance) => match instance.probe(&needs).await {
                    Ok(mut problems) => {
                        if needs.iter().any(|need| need.write) {
                            problems.extend(unwritable_databases(instance));
                        }
                        problems
                    }
                    Err(error) => vec![Problem { code: "unreachable".into(), message: error.to_string(), hint: error.hint(), retryable: error.retryable() }],
                },
            };
            results.push(ProbeResult { endpoint, pipelines, needs, problems });
        }
        results
    }

    /// Probes at startup: an endpoint with problems makes its pipelines
    /// `degraded` with the reason (they still run, and recover on success),
    /// and each problem goes to the event log.
    pub async fn probe_at_startup(&self) -> Result<(), crate::state::StateError> {
        for result in self.probe_endpoints().await {
            for problem in &result.problems {
                let message = format!("endpoint `{}`: {}", result.endpoint, problem.message);
                tracing::warn!(endpoint = %result.endpoint, code = %problem.code, "Probe: {}", problem.message);
                self.state.event("error", None, None, &message, problem.hint.as_deref())?;
            }
            if let Some(first) = result.problems.first() {
                let reason = format!("endpoint `{}`: {}", result.endpoint, first.message);
                for pipeline in &result.pipelines {
                    self.state.record_failure(pipeline, &reason, first.hint.as_deref())?;
                }
            }
        }
        Ok(())
    }
}

/// The databases an endpoint that pipelines write to may write, but cannot:
/// the file (or its folder) is read-only for this process (T6, a restore
/// that left the file to another owner, say). The grant's own `read_only`
/// is the config's choice, and checked when the config loads.
fn unwritable_databases(instance: &crate::runtime::Instance) -> Vec<Problem> {
    let user = std::env::var("USER").unwrap_or_else(|_| "the host's user".into());
    instance
        .context()
        .sql
        .values()
        .filter(|grant| !grant.read_only)
        .filter(|grant| grant.database.read_only_on_disk(&grant.origin).unwrap_or(false))
        .map(|grant| {
            let path = grant.database.path().display();
            Problem {
                code: "read-only-database".into(),
                message: format!("the database file {path} ({}) is read-only for this host's user ({user}): every write to it fails", grant.origin),
                hint: Some(format!(
                    "give {user} write permission on {path} and its folder (SQLite writes a journal beside the file): `chmod u+w` or `chown`; or make the pipelines one-way out of this endpoint"
                )),
                retryable: false,
            }
        })
        .collect()
}
