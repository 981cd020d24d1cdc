//! Fields that hold another record's id (`references = "PIPELINE"`): an
//! entry's project, activity or user. The id means nothing on the other side;
//! the referenced pipeline's links say which record it is there.

use std::collections::{BTreeMap, HashMap};

use crate::model::Record;

use super::{Engine, RunError};
use crate::config::{Flow, PipelineConfig, Side};
use crate::model::{FieldType, Value, Violation};

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
    /// A reference without a link adds a violation to its record, which
    /// names the referenced record as a person knows it.
    pub(crate) async fn translate_references(
        &self,
        references: &[Reference],
        source: Side,
        target_types: &HashMap<String, FieldType>,
        target_names: &HashMap<String, String>,
        records: &mut [(BTreeMap<String, Value>, Vec<Violation>)],
    ) -> Result<(), RunError> {
        for reference in references {
            let missing = self.translate_reference(reference, source, target_types, target_names, records)?;
            if missing.is_empty() {
                continue;
            }
            let ids: Vec<String> = missing.iter().map(|(_, id)| id.clone()).collect();
            let from = reference.side_in_referenced(source);
            let found = self.referenced_records(reference, from, &ids).await;
            let referenced = self.pipeline(&reference.pipeline).ok();
            for (index, id) in missing {
                let record = found.get(&id);
                let seen = Referenced {
                    id: &id,
                    label: record.and_then(super::plan::label_of),
                    // Out of the referenced pipeline's scope: it never syncs as it is.
                    outside_scope: record.is_some_and(|r| referenced.is_some_and(|p| !side_of(p, from).in_scope(r))),
                    scope: referenced.map(|p| side_of(p, from).scope.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default(),
                };
                records[index].1.push(unlinked(reference, source, &seen, referenced));
            }
        }
        Ok(())
    }

    /// These records of the referenced pipeline's `side`, to say what they
    /// are (none for those its connector cannot fetch now: the message then
    /// names the id only).
    async fn referenced_records(&self, reference: &Reference, side: Side, ids: &[String]) -> HashMap<String, Record> {
        let Ok(config) = self.pipeline(&reference.pipeline) else { return HashMap::new() };
        let side_config = side_of(config, side);
        let Ok(instance) = self.catalog.instance(side_config.endpoint.get_ref().as_str()) else { return HashMap::new() };
        match instance.fetch(&side_config.entity, ids).await {
            Ok(records) => records.into_iter().map(|r| (r.id.clone(), r)).collect(),
            Err(_) => HashMap::new(),
        }
    }

    /// One reference field translated in place; returns the records (index,
    /// id) whose referenced record has no counterpart.
    fn translate_reference(
        &self,
        reference: &Reference,
        source: Side,
        target_types: &HashMap<String, FieldType>,
        target_names: &HashMap<String, String>,
        records: &mut [(BTreeMap<String, Value>, Vec<Violation>)],
    ) -> Result<Vec<(usize, String)>, RunError> {
        let mut missing = Vec::new();
        let from = reference.side_in_referenced(source);
        let ids: Vec<String> = records
            .iter()
            .filter_map(|(values, _)| values.get(&reference.field))
            .filter(|v| !v.is_empty())
            .map(Value::to_text)
            .collect();
        if ids.is_empty() {
            return Ok(missing);
        }
        let links = self.state.links_by_ids(&reference.pipeline, from, &ids)?;
        let target_name = target_names.get(&reference.field).map_or(reference.field.as_str(), String::as_str);
        let target_type = target_types.get(target_name).copied().unwrap_or(FieldType::Text);
        for (index, (values, _)) in records.iter_mut().enumerate() {
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
                None => missing.push((index, id)),
            }
        }
        Ok(missing)
    }
}

fn side_of(config: &PipelineConfig, side: Side) -> &crate::config::SideConfig {
    match side {
        Side::Left => &config.left,
        Side::Right => &config.right,
    }
}

/// A referenced record that has no counterpart, as far as it could be seen.
struct Referenced<'a> {
    id: &'a str,
    label: Option<String>,
    outside_scope: bool,
    /// The fields of the referenced side's scope (`where`).
    scope: String,
}

/// The violation of a reference to a record the referenced pipeline has not
/// linked, with a fix that works for that pipeline. Pure.
fn unlinked(reference: &Reference, source: Side, seen: &Referenced<'_>, referenced: Option<&PipelineConfig>) -> Violation {
    let target = source.other();
    let p = &reference.pipeline;
    let (id, label) = (seen.id, seen.label.as_deref());
    let named = label.map(|l| format!(" {l:?}")).unwrap_or_default();
    let hint = match referenced {
        // Outside the scope (a parent not flagged for publishing): it never
        // goes as it is.
        Some(_) if seen.outside_scope => format!(
            "{} is outside pipeline `{p}`'s scope ({}): bring it in (e.g. flag it for publishing), and it goes first; this record is resubmitted once `{p}` links it",
            label.map(|l| format!("{l:?}")).unwrap_or_else(|| format!("record {id}")),
            seen.scope
        ),
        // The referenced pipeline only links what matches: nothing it would
        // sync can make the counterpart.
        Some(config) if config.create == Flow::Off && !config.match_on.is_empty() => format!(
            "pipeline `{p}` creates nothing: it links records equal in {}. Add {} on the {target} side with the same {} (for a person: a user who is a member of the project), and `{p}` links it on its next run; this record is resubmitted then",
            config.match_on.join(", "),
            label.map(|l| format!("{l:?}")).unwrap_or_else(|| format!("record {id}")),
            config.match_on.join(", "),
        ),
        _ => format!(
            "create that record on the {target} side or let pipeline `{p}` sync it (`synchost sync {p}`), or map it with `match_on`; this record is resubmitted when `{p}` links new records"
        ),
    };
    Violation {
        field: Some(reference.field.clone()),
        message: format!("`{}` refers to {source} record {id}{named}, which has no counterpart on the {target} side yet (pipeline `{p}` has not linked it)", reference.field),
        hint: Some(hint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(toml: &str) -> PipelineConfig {
        toml::from_str(&format!("{toml}fields = {{ name = {{}} }}\n")).unwrap()
    }

    fn reference(pipeline: &str) -> Reference {
        Reference { field: "parent_id".into(), pipeline: pipeline.into(), left_is: Side::Left }
    }

    #[test]
    fn an_unflagged_parent_is_told_to_be_flagged() {
        let work = pipeline("left = { endpoint = \"plan\", entity = \"tasks\", where = { publish = true } }\nright = { endpoint = \"redmine\", entity = \"issues\" }\n");
        let seen = Referenced { id: "1", label: Some("New office ready".into()), outside_scope: true, scope: "publish".into() };
        let violation = unlinked(&reference("work"), Side::Left, &seen, Some(&work));
        assert!(violation.message.contains("left record 1 \"New office ready\""), "{}", violation.message);
        let hint = violation.hint.unwrap();
        assert!(hint.contains("\"New office ready\" is outside pipeline `work`'s scope (publish)") && hint.contains("flag it"), "{hint}");
    }

    #[test]
    fn a_person_only_matching_can_link_is_told_to_be_added_with_the_same_key() {
        let people = pipeline("left = { endpoint = \"plan\", entity = \"resources\" }\nright = { endpoint = \"redmine\", entity = \"members\" }\ncreate = \"off\"\nmatch_on = [\"email\"]\n");
        let seen = Referenced { id: "2", label: Some("Bob Jones".into()), outside_scope: false, scope: String::new() };
        let hint = unlinked(&reference("people"), Side::Left, &seen, Some(&people)).hint.unwrap();
        assert!(hint.contains("Add \"Bob Jones\" on the right side with the same email"), "{hint}");
        // A pipeline that syncs what it references: sync it.
        let seen = Referenced { id: "2", label: None, outside_scope: false, scope: String::new() };
        let hint = unlinked(&reference("projects"), Side::Left, &seen, None).hint.unwrap();
        assert!(hint.contains("synchost sync projects"), "{hint}");
    }
}
