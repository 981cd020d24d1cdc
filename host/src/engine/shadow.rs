//! Shadow runs: a candidate plugin version on the inputs of the active one.
//!
//! Before an admin makes a new release active, the candidate runs beside
//! the active version on the same records, and every difference is shown:
//! - a connector: `fetch` of the records each of its pipelines synced most
//!   recently, and `read` from each pipeline's stored position;
//! - a mapper: mapping and validation of those records, as a run would do
//!   them (the pipeline's field names, required fields and references).
//!
//! Nothing is written: the caller builds both engines on grants made
//! read-only, and a shadow only reads, fetches and maps.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Ctx, Engine, Mode, RunError};
use crate::config::Side;
use crate::model::{Record, Value, Violation};

/// How one record differs between the active and the candidate version.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Difference {
    /// A field's value (`None`: the field is absent).
    Field { name: String, active: Option<serde_json::Value>, candidate: Option<serde_json::Value> },
    Version { active: Option<String>, candidate: Option<String> },
    Deleted { active: bool, candidate: bool },
    /// Only one version returned the record.
    Missing { from_candidate: bool },
    /// The rules a mapped record breaks.
    Violations { active: Vec<String>, candidate: Vec<String> },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |value: &Option<serde_json::Value>| value.as_ref().map_or("(absent)".to_owned(), |v| v.to_string());
        let listed = |rules: &[String]| if rules.is_empty() { "valid".to_owned() } else { rules.join("; ") };
        match self {
            Difference::Field { name, active, candidate } => write!(f, "{name}: {} -> {}", shown(active), shown(candidate)),
            Difference::Version { active, candidate } => {
                let shown = |version: &Option<String>| version.clone().unwrap_or_else(|| "(none)".into());
                write!(f, "version: {} -> {}", shown(active), shown(candidate))
            }
            Difference::Deleted { active, candidate } => write!(f, "deleted: {active} -> {candidate}"),
            Difference::Missing { from_candidate: true } => write!(f, "returned by the active version only"),
            Difference::Missing { from_candidate: false } => write!(f, "returned by the candidate only"),
            Difference::Violations { active, candidate } => write!(f, "rules: {} -> {}", listed(active), listed(candidate)),
        }
    }
}

/// One record that the candidate treats differently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordDifferences {
    pub id: String,
    pub differences: Vec<Difference>,
}

/// One comparison: a call made with both versions on the same input.
#[derive(Debug, Serialize)]
pub struct Pass {
    pub pipeline: String,
    /// What was compared, e.g. "map left -> right" or "read right from the stored position".
    pub what: String,
    /// Records compared.
    pub compared: usize,
    pub differing: Vec<RecordDifferences>,
    /// The active version failed (the comparison could not be made).
    pub active_error: Option<String>,
    /// The candidate failed where the active version did not.
    pub candidate_error: Option<String>,
}

/// Compares records returned by the two versions, by id, in the active
/// version's order (then the candidate's extra ones).
pub fn compare_records(active: &[Record], candidate: &[Record]) -> Vec<RecordDifferences> {
    let by_id: BTreeMap<&str, &Record> = candidate.iter().map(|r| (r.id.as_str(), r)).collect();
    let active_ids: BTreeSet<&str> = active.iter().map(|r| r.id.as_str()).collect();
    let mut found = Vec::new();
    for record in active {
        let differences = match by_id.get(record.id.as_str()) {
            None => vec![Difference::Missing { from_candidate: true }],
            Some(other) => record_differences(record, other),
        };
        if !differences.is_empty() {
            found.push(RecordDifferences { id: record.id.clone(), differences });
        }
    }
    for record in candidate.iter().filter(|r| !active_ids.contains(r.id.as_str())) {
        found.push(RecordDifferences { id: record.id.clone(), differences: vec![Difference::Missing { from_candidate: false }] });
    }
    found
}

fn record_differences(active: &Record, candidate: &Record) -> Vec<Difference> {
    let mut differences = Vec::new();
    if active.deleted != candidate.deleted {
        differences.push(Difference::Deleted { active: active.deleted, candidate: candidate.deleted });
    }
    if active.version != candidate.version {
        differences.push(Difference::Version { active: active.version.clone(), candidate: candidate.version.clone() });
    }
    let active_fields: BTreeMap<String, Value> = active.fields.iter().map(|f| (f.name.clone(), f.value.clone())).collect();
    let candidate_fields: BTreeMap<String, Value> = candidate.fields.iter().map(|f| (f.name.clone(), f.value.clone())).collect();
    differences.extend(field_differences(&active_fields, &candidate_fields));
    differences
}

fn field_differences(active: &BTreeMap<String, Value>, candidate: &BTreeMap<String, Value>) -> Vec<Difference> {
    let names: BTreeSet<&String> = active.keys().chain(candidate.keys()).collect();
    names
        .into_iter()
        .filter(|name| active.get(*name) != candidate.get(*name))
        .map(|name| Difference::Field {
            name: name.clone(),
            active: active.get(name).map(Value::to_json),
            candidate: candidate.get(name).map(Value::to_json),
        })
        .collect()
}

type MapResult = Result<BTreeMap<String, Value>, Vec<Violation>>;

/// Compares what the two versions mapped each record to (`ids[i]` is the
/// record of `active[i]` and `candidate[i]`).
pub fn compare_mapped(ids: &[String], active: &[MapResult], candidate: &[MapResult]) -> Vec<RecordDifferences> {
    let rules = |violations: &[Violation]| -> Vec<String> {
        violations.iter().map(|v| match &v.field {
            Some(field) => format!("{field}: {}", v.message),
            None => v.message.clone(),
        }).collect()
    };
    ids.iter()
        .zip(active.iter().zip(candidate))
        .filter_map(|(id, pair)| {
            let differences = match pair {
                (Ok(a), Ok(c)) => field_differences(a, c),
                (Err(a), Err(c)) if rules(a) == rules(c) => Vec::new(),
                (a, c) => vec![Difference::Violations {
                    active: a.as_ref().err().map(|v| rules(v)).unwrap_or_default(),
                    candidate: c.as_ref().err().map(|v| rules(v)).unwrap_or_default(),
                }],
            };
            (!differences.is_empty()).then(|| RecordDifferences { id: id.clone(), differences })
        })
        .collect()
}

fn shown(error: &RunError) -> String {
    match error.hint() {
        Some(hint) => format!("{error} (fix: {hint})"),
        None => error.to_string(),
    }
}

impl Engine {
    /// Runs `candidate` (an engine whose instance `instance` is the
    /// candidate version) beside this one on the last `records` records of
    /// every pipeline that uses `instance`. One [`Pass`] per comparison.
    pub async fn shadow(&self, candidate: &Engine, instance: &str, records: u32) -> Result<Vec<Pass>, RunError> {
        let mut passes = Vec::new();
        for (name, pipeline) in &self.config.config.pipelines {
            let name = name.as_str();
            let is_mapper = pipeline.mapper.as_ref().is_some_and(|m| m.get_ref().as_str() == instance);
            let sides: Vec<Side> = [Side::Left, Side::Right]
                .into_iter()
                .filter(|side| {
                    let config = match side {
                        Side::Left => &pipeline.left,
                        Side::Right => &pipeline.right,
                    };
                    config.endpoint.get_ref().as_str() == instance
                })
                .collect();
            if !is_mapper && sides.is_empty() {
                continue;
            }
            let ctx = self.context(name, Mode::DryRun).await?;
            let candidate_ctx = candidate.context(name, Mode::DryRun).await;
            if is_mapper {
                for source in [Side::Left, Side::Right] {
                    if pipeline.fields.values().any(|rule| rule.direction.allows(source)) {
                        passes.push(self.shadow_map(&ctx, candidate, &candidate_ctx, source, records).await?);
                    }
                }
            }
            for side in sides {
                passes.push(self.shadow_fetch(&ctx, &candidate_ctx, side, records).await?);
                passes.push(self.shadow_read(&ctx, &candidate_ctx, side, records).await?);
            }
        }
        Ok(passes)
    }

    /// The records a shadow compares on: those synced most recently, or,
    /// before the first sync, the first ones a read returns.
    async fn shadow_inputs(&self, ctx: &Ctx<'_>, side: Side, records: u32) -> Result<Vec<Record>, RunError> {
        let ids = self.state.recent_linked_ids(ctx.name, side, records)?;
        if ids.is_empty() {
            return Ok(ctx.instance(side).read(ctx.entity(side), None, records).await?.records);
        }
        Ok(ctx.fetch(side, &ids).await?)
    }

    async fn shadow_map(
        &self,
        ctx: &Ctx<'_>,
        candidate: &Engine,
        candidate_ctx: &Result<Ctx<'_>, RunError>,
        source: Side,
        records: u32,
    ) -> Result<Pass, RunError> {
        let mut pass = Pass::new(ctx.name, format!("map {source} -> {}", source.other()));
        let inputs = match self.shadow_inputs(ctx, source, records).await {
            Ok(inputs) => inputs,
            Err(error) => return Ok(pass.active_failed(&error)),
        };
        let inputs: Vec<&Record> = inputs.iter().filter(|r| !r.deleted).collect();
        pass.compared = inputs.len();
        let active = match self.map_batch(ctx, source, &inputs).await {
            Ok(mapped) => mapped,
            Err(error) => return Ok(pass.active_failed(&error)),
        };
        let mapped = match candidate_ctx {
            Ok(candidate_ctx) => candidate.map_batch(candidate_ctx, source, &inputs).await,
            Err(error) => return Ok(pass.candidate_failed(error)),
        };
        match mapped {
            Ok(mapped) => {
                let ids: Vec<String> = inputs.iter().map(|r| r.id.clone()).collect();
                pass.differing = compare_mapped(&ids, &active, &mapped);
            }
            Err(error) => pass = pass.candidate_failed(&error),
        }
        Ok(pass)
    }

    async fn shadow_fetch(&self, ctx: &Ctx<'_>, candidate_ctx: &Result<Ctx<'_>, RunError>, side: Side, records: u32) -> Result<Pass, RunError> {
        let mut pass = Pass::new(ctx.name, format!("fetch {side} records synced last"));
        let active = match self.shadow_inputs(ctx, side, records).await {
            Ok(active) => active,
            Err(error) => return Ok(pass.active_failed(&error)),
        };
        pass.compared = active.len();
        let candidate_ctx = match candidate_ctx {
            Ok(candidate_ctx) => candidate_ctx,
            Err(error) => return Ok(pass.candidate_failed(error)),
        };
        let ids: Vec<String> = active.iter().map(|r| r.id.clone()).collect();
        match candidate_ctx.fetch(side, &ids).await {
            Ok(candidate) => pass.differing = compare_records(&active, &candidate),
            Err(error) => pass = pass.candidate_failed(&RunError::from(error)),
        }
        Ok(pass)
    }

    async fn shadow_read(&self, ctx: &Ctx<'_>, candidate_ctx: &Result<Ctx<'_>, RunError>, side: Side, records: u32) -> Result<Pass, RunError> {
        // A candidate that cannot continue from the stored cursor would lose
        // the pipeline's position on upgrade: that is worth seeing first.
        let cursor = self.state.cursor(ctx.name, side)?;
        let from = if cursor.is_some() { "the pipeline's stored position" } else { "the start" };
        let mut pass = Pass::new(ctx.name, format!("read {side} from {from}"));
        let entity = ctx.entity(side);
        let active = match ctx.instance(side).read(entity, cursor.as_deref(), records).await {
            Ok(batch) => batch.records,
            Err(error) => return Ok(pass.active_failed(&RunError::from(error))),
        };
        pass.compared = active.len();
        let candidate_ctx = match candidate_ctx {
            Ok(candidate_ctx) => candidate_ctx,
            Err(error) => return Ok(pass.candidate_failed(error)),
        };
        match candidate_ctx.instance(side).read(entity, cursor.as_deref(), records).await {
            Ok(batch) => pass.differing = compare_records(&active, &batch.records),
            Err(error) => pass = pass.candidate_failed(&RunError::from(error)),
        }
        Ok(pass)
    }
}

impl Pass {
    fn new(pipeline: &str, what: String) -> Self {
        Pass { pipeline: pipeline.to_owned(), what, compared: 0, differing: Vec::new(), active_error: None, candidate_error: None }
    }

    fn active_failed(mut self, error: &RunError) -> Self {
        self.active_error = Some(shown(error));
        self
    }

    fn candidate_failed(mut self, error: &RunError) -> Self {
        self.candidate_error = Some(shown(error));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Field;

    fn record(id: &str, version: &str, fields: &[(&str, &str)]) -> Record {
        Record {
            id: id.into(),
            version: Some(version.into()),
            deleted: false,
            born: None,
            fields: fields.iter().map(|(n, v)| Field { name: (*n).into(), value: Value::Text((*v).into()) }).collect(),
        }
    }

    #[test]
    fn equal_records_differ_in_nothing() {
        let records = vec![record("1", "v1", &[("name", "Ada")])];
        assert!(compare_records(&records, &records.clone()).is_empty());
    }

    #[test]
    fn a_changed_field_a_new_version_and_a_missing_record_are_each_named() {
        let active = vec![record("1", "v1", &[("name", "Ada")]), record("2", "v1", &[])];
        let candidate = vec![record("1", "v2", &[("name", "ADA"), ("extra", "x")]), record("3", "v1", &[])];
        let found = compare_records(&active, &candidate);
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].id, "1");
        let shown: Vec<String> = found[0].differences.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["version: v1 -> v2", "extra: (absent) -> \"x\"", "name: \"Ada\" -> \"ADA\""]);
        assert_eq!(found[1].differences, [Difference::Missing { from_candidate: true }]);
        assert_eq!(found[2].id, "3");
        assert_eq!(found[2].differences, [Difference::Missing { from_candidate: false }]);
    }

    #[test]
    fn mapped_records_differ_by_value_or_by_the_rules_they_break() {
        let ids = vec!["1".to_owned(), "2".to_owned(), "3".to_owned()];
        let values = |v: &str| BTreeMap::from([("name".to_owned(), Value::Text(v.into()))]);
        let broken = |m: &str| vec![Violation { field: Some("name".into()), message: m.into(), hint: None }];
        let active = vec![Ok(values("A")), Ok(values("B")), Err(broken("too long"))];
        let candidate = vec![Ok(values("A")), Err(broken("empty")), Err(broken("too long"))];
        let found = compare_mapped(&ids, &active, &candidate);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "2");
        assert_eq!(found[0].differences[0].to_string(), "rules: valid -> name: empty");
    }
}
