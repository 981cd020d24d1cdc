//! Fields that hold another record's id (`references = "PIPELINE"`): an
//! entry's project, activity or user. The id means nothing on the other side;
//! the referenced pipeline's links say which record it is there.

use std::collections::{BTreeMap, HashMap};

use super::{Engine, RunError};
use crate::config::{PipelineConfig, Side};
use crate::runtime::bindings::{FieldType, Value, Violation};

/// One reference field of a pipeline, resolved against the pipeline it names.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The field's left (canonical) name.
    pub field: String,
    /// The pipeline whose links translate it.
    pub pipeline: String,
    /// Which side of the referenced pipeline holds this pipeline's left endpoint.
    pub left_is: Side,
}

impl Reference {
    /// The referenced pipeline's side that holds records of this pipeline's `side`.
    fn side_in_referenced(&self, side: Side) -> Side {
        match side {
            Side::Left => self.left_is,
            Side::Right => self.left_is.other(),
        }
    }
}

impl Engine {
    /// The reference fields of a pipeline; an error names a reference that
    /// cannot work (no such pipeline, or one between other endpoints).
    pub(crate) fn references(&self, name: &str, config: &PipelineConfig) -> Result<Vec<Reference>, RunError> {
        let mut references = Vec::new();
        for (field, rule) in &config.fields {
            let Some(target) = &rule.references else { continue };
            let referenced = self.pipeline(target).map_err(|_| RunError::Setup {
                message: format!("pipeline `{name}`: field `{field}` references pipeline `{target}`, which does not exist"),
                hint: format!("name one of the [pipelines] in [pipelines.{name}.fields.{field}] references"),
            })?;
            let endpoints = |p: &PipelineConfig| (p.left.endpoint.get_ref().to_string(), p.right.endpoint.get_ref().to_string());
            let (ours, theirs) = (endpoints(config), endpoints(referenced));
            let left_is = if ours == theirs {
                Side::Left
            } else if ours == (theirs.1.clone(), theirs.0.clone()) {
                Side::Right
            } else {
                return Err(RunError::Setup {
                    message: format!(
                        "pipeline `{name}`: field `{field}` references pipeline `{target}`, which syncs {} <-> {}, not {} <-> {}",
                        theirs.0, theirs.1, ours.0, ours.1
                    ),
                    hint: format!("reference a pipeline between the same two endpoints as `{name}`"),
                });
            };
            references.push(Reference { field: field.clone(), pipeline: target.clone(), left_is });
        }
        Ok(references)
    }

    /// Translates the reference fields of mapped records (left names, values
    /// as the `source` side has them) into the ids the other side knows.
    /// A reference without a link adds a violation to its record.
    pub(crate) fn translate_references(
        &self,
        references: &[Reference],
        source: Side,
        target_types: &HashMap<String, FieldType>,
        target_names: &HashMap<String, String>,
        records: &mut [(BTreeMap<String, Value>, Vec<Violation>)],
    ) -> Result<(), RunError> {
        for reference in references {
            let from = reference.side_in_referenced(source);
            let ids: Vec<String> = records
                .iter()
                .filter_map(|(values, _)| values.get(&reference.field))
                .filter(|v| !v.is_empty())
                .map(Value::to_text)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let links = self.state.links_by_ids(&reference.pipeline, from, &ids)?;
            let target_name = target_names.get(&reference.field).map_or(reference.field.as_str(), String::as_str);
            let target_type = target_types.get(target_name).copied().unwrap_or(FieldType::Text);
            for (values, violations) in records.iter_mut() {
                let Some(value) = values.get(&reference.field).filter(|v| !v.is_empty()) else { continue };
                let id = value.to_text();
                match links.get(&id).filter(|l| l.state == "active") {
                    Some(link) => {
                        let counterpart = link.id_on(from.other());
                        let translated = match target_type {
                            FieldType::Integer => counterpart.parse().map(Value::Integer).unwrap_or_else(|_| Value::Text(counterpart.to_owned())),
                            _ => Value::Text(counterpart.to_owned()),
                        };
                        values.insert(reference.field.clone(), translated);
                    }
                    None => {
                        let target = source.other();
                        violations.push(Violation {
                            field: Some(reference.field.clone()),
                            message: format!(
                                "`{}` refers to {source} record {id}, which has no counterpart on the {target} side yet (pipeline `{}` has not linked it)",
                                reference.field, reference.pipeline
                            ),
                            hint: Some(format!(
                                "create that record on the {target} side or let pipeline `{p}` sync it (`synchost sync {p}`), or map it with `match_on`; this record is resubmitted when `{p}` links new records",
                                p = reference.pipeline
                            )),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}
