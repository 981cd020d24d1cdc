//! What a batch of source records means: each record mapped (through the
//! mapper, with its references translated) and validated, then joined to its
//! link and counterpart and planned as a create, an update, a delete or a
//! failed item.

use super::*;

/// Maps and validates records through the mapper plugin.
async fn map_and_validate(mapper: &Instance, source: Side, records: &[Record]) -> Result<Vec<Result<Record, Vec<Violation>>>, CallError> {
    Ok(mapper
        .map_and_validate(direction(source), records)
        .await?
        .into_iter()
        .map(|m| match m {
            Mapped::Ok(record) => Ok(record),
            Mapped::Invalid(violations) => Err(violations),
        })
        .collect())
}

impl Engine {
    /// A source record deleted while a change of its waits for approval:
    /// the approval is withdrawn (nobody can approve a change of a record
    /// that is gone), with a history entry.
    pub(super) fn withdraw_pending_approval(&self, ctx: &Ctx<'_>, source: Side, record: &Record, plan: &mut BatchPlan) -> Result<(), RunError> {
        let Some(pending) = self.state.pending_approval(ctx.name, source, &record.id)? else { return Ok(()) };
        plan.commit.withdrawn_approvals.push((source, record.id.clone()));
        let (left_id, right_id) = side_ids(source, &record.id, pending.target_id.as_deref());
        plan.commit.history.push(HistoryEntry {
            left_id,
            right_id,
            action: "withdraw",
            target: Some(source.other()),
            origin: Some(source),
            fields: Vec::new(),
            rule: "approval".into(),
            message: Some(format!("approval {} withdrawn: the {source} record was deleted while its change waited ({})", pending.id, pending.summary)),
            label: None,
        });
        Ok(())
    }
}

impl Engine {
    /// Maps source records to the synced fields in left (canonical) names,
    /// through the mapper if there is one, and validates them.
    pub(super) async fn map_batch(&self, ctx: &Ctx<'_>, source: Side, records: &[&Record]) -> Result<Vec<Result<BTreeMap<String, Value>, Vec<Violation>>>, RunError> {
        let mut canonical: Vec<Record> = records
            .iter()
            .map(|r| Record {
                id: r.id.clone(),
                version: r.version.clone(),
                deleted: r.deleted,
                born: r.born.clone(),
                fields: ctx
                    .rules()
                    .filter_map(|(left, _)| {
                        r.get(ctx.config.name_on(source, left)).map(|v| Field { name: left.to_owned(), value: v.clone() })
                    })
                    .collect(),
            })
            .collect();
        let results: Vec<Result<Record, Vec<Violation>>> = match ctx.mapper {
            // A mapper that crashes or hangs on some records fails only those
            // (H1): mapping changes nothing outside, so a batch may be
            // called again in parts, timeouts included.
            Some(mapper) if !canonical.is_empty() => {
                let splittable = |error: &CallError| isolable(error) || matches!(error, CallError::Timeout { .. });
                isolate::bisect(canonical.len(), splittable, |part| map_and_validate(mapper, source, &canonical[part]))
                    .await?
                    .into_iter()
                    .map(|result| {
                        result.unwrap_or_else(|error| {
                            tracing::warn!(pipeline = ctx.name, "Mapper failed on a record: {error}");
                            Err(vec![Violation { field: None, message: error.to_string(), hint: error.hint() }])
                        })
                    })
                    .collect()
            }
            // Without a mapper the records are their own mapping: moved, not copied.
            _ => std::mem::take(&mut canonical).into_iter().map(Ok).collect(),
        };
        // Every rule is checked, so that a record reports all its violations
        // at once: the mapper's, required fields, then references (checked on
        // the mapped values, or the record's own when the mapper refused it).
        let mut checked: Vec<(BTreeMap<String, Value>, Vec<Violation>)> = results
            .into_iter()
            .enumerate()
            .map(|(index, result)| match result {
                Ok(record) => (record.fields.into_iter().map(|f| (f.name, f.value)).collect(), Vec::new()),
                // Only a mapper refuses a record, and then the input is still there.
                Err(violations) => (canonical[index].fields.iter().map(|f| (f.name.clone(), f.value.clone())).collect(), violations),
            })
            .collect();
        for (values, violations) in &mut checked {
            // NaN is not equal to itself and infinities have no JSON form:
            // such a value would look changed on every run, or be stored as
            // something else. The record fails, saying so.
            for (name, value) in values.iter() {
                if let Value::Float(f) = value
                    && !f.is_finite()
                {
                    violations.push(Violation {
                        field: Some(name.clone()),
                        message: format!("`{name}` is {f}, which cannot be compared or kept exactly"),
                        hint: Some(format!("store a number or nothing (NULL) in `{name}` on the {source} side")),
                    });
                }
            }
            for field in &ctx.config.required {
                if values.get(field).is_none_or(|v| v.is_empty()) && !violations.iter().any(|v| v.field.as_deref() == Some(field.as_str())) {
                    violations.push(Violation {
                        field: Some(field.clone()),
                        message: format!("`{field}` is required by pipeline `{}` but empty", ctx.name),
                        hint: Some(format!("fill in `{field}` on the {source} side")),
                    });
                }
            }
        }
        if !ctx.references.is_empty() {
            let target = source.other();
            let types: HashMap<String, crate::model::FieldType> =
                ctx.def(target).fields.iter().map(|f| (f.name.clone(), f.type_)).collect();
            let names: HashMap<String, String> =
                ctx.references.iter().map(|r| (r.field.clone(), ctx.config.name_on(target, &r.field).to_owned())).collect();
            self.translate_references(&ctx.references, source, &types, &names, &mut checked).await?;
        }
        let results = checked.into_iter().map(|(values, violations)| if violations.is_empty() { Ok(values) } else { Err(violations) }).collect();
        Ok(results)
    }

    /// Decides what each source record means for the other side.
    pub(super) async fn plan_batch(&self, ctx: &Ctx<'_>, source: Side, records: &[Record]) -> Result<BatchPlan, RunError> {
        let target = source.other();
        let mut plan = BatchPlan::default();
        // Records whose id a new record took (see below).
        let mut gone: Vec<Record> = Vec::new();
        // The newest state of each record wins if a batch holds it twice.
        let mut latest: Vec<&Record> = Vec::with_capacity(records.len());
        let mut position: HashMap<&str, usize> = HashMap::with_capacity(records.len());
        for record in records {
            match position.get(record.id.as_str()) {
                Some(&i) => latest[i] = record,
                None => {
                    position.insert(&record.id, latest.len());
                    latest.push(record);
                }
            }
        }
        let ids: Vec<String> = latest.iter().map(|r| r.id.clone()).collect();
        let mut links = self.state.links_by_ids(ctx.name, source, &ids)?;
        // Birth marks are kept once seen. Another one under a linked id is
        // another record: the one linked is gone (a delete, by the policy; its
        // link keeps another id) and this one is new.
        for record in &latest {
            let Some(born) = &record.born else { continue };
            match links.get(&record.id).and_then(|l| l.born_on(source)) {
                // Known already: nothing to store.
                Some(linked) if linked == born => continue,
                Some(linked) => {
                    let kept = presence::retired_id(&record.id, linked);
                    let link = links.remove(&record.id).expect("looked up above");
                    plan.commit.retired.push((link.link_id, source, kept.clone()));
                    links.insert(kept.clone(), link.with_id_on(source, kept.clone()));
                    gone.push(Record { id: kept, version: None, deleted: true, fields: Vec::new(), born: None });
                }
                None => {}
            }
            plan.commit.births.push((source, record.id.clone(), born.clone()));
        }
        latest.extend(gone.iter());
        // A record still at the version of the last sync is unchanged since (most
        // often the echo of the engine's own write): nothing to compare.
        latest.retain(|r| match (&r.version, links.get(&r.id)) {
            (Some(version), Some(link)) => !link.synced_at(source, version),
            _ => true,
        });
        let remaining: std::collections::HashSet<&str> = latest.iter().map(|r| r.id.as_str()).collect();
        let links: HashMap<String, Link> = links.into_iter().filter(|(id, _)| remaining.contains(id.as_str())).collect();
        let link_ids: Vec<i64> = links.values().map(|l| l.link_id).collect();
        let bases = self.state.base_of(&link_ids)?;
        let counterpart_ids: Vec<String> = links.values().map(|l| l.id_on(target).to_owned()).collect();
        let counterparts: HashMap<String, Record> = if counterpart_ids.is_empty() {
            HashMap::new()
        } else {
            ctx.fetch(target, &counterpart_ids).await?.into_iter().map(|r| (r.id.clone(), r)).collect()
        };
        let live: Vec<&Record> = latest.iter().copied().filter(|r| !r.deleted).collect();
        let mapped = self.map_batch(ctx, source, &live).await?;
        let mut mapped: HashMap<&str, Result<BTreeMap<String, Value>, Vec<Violation>>> =
            live.iter().map(|r| r.id.as_str()).zip(mapped).collect();

        let approval_side = ctx.config.approval.as_ref().is_some_and(|a| a.applies_to(source));
        for record in latest {
            if record.deleted && approval_side {
                self.withdraw_pending_approval(ctx, source, record, &mut plan)?;
            }
            let link = links.get(&record.id);
            let empty = Base::default();
            let base = link.and_then(|l| bases.get(&l.link_id)).unwrap_or(&empty);
            let counterpart = link.and_then(|l| counterparts.get(l.id_on(target)));
            match (link, record.deleted) {
                (None, true) => {}
                (None, false) => {
                    if !ctx.config.create.allows(source) || !ctx.side(source).in_scope(record) {
                        continue;
                    }
                    let broken = broken_checks(ctx, source, record);
                    match mapped.remove(record.id.as_str()) {
                        Some(Ok(values)) if broken.is_empty() => plan_create(ctx, source, record, &values, &mut plan),
                        Some(Ok(_)) => fail_invalid(source, record, None, broken, &mut plan),
                        Some(Err(mut violations)) => {
                            violations.extend(broken);
                            fail_invalid(source, record, None, violations, &mut plan)
                        }
                        None => {}
                    }
                }
                // Deleted on the other side only (kept here by a decision):
                // an edit of the kept record does not sync, and says so.
                (Some(link), false) if link.state == target.deleted_state() => {
                    plan.commit.history.push(skip_entry(
                        source,
                        &record.id,
                        link.id_on(target),
                        "deleted on one side",
                        format!(
                            "the {target} record was deleted and this one kept, so its edits do not sync; to bring it back on the {target} side: {}`synchost links unlink {} {}`, then sync",
                            if ctx.config.create.allows(source) { String::new() } else { format!("allow creates from the {source} side ([pipelines.{}] create), ", ctx.name) },
                            ctx.name,
                            record.id
                        ),
                    ));
                }
                (Some(link), _) if link.state != "active" => {}
                (Some(link), true) => plan_delete(ctx, source, record, link, base, counterpart, &mut plan),
                (Some(link), false) => {
                    // What a linked record may not do: change a frozen field,
                    // leave the scope, break a check.
                    let mut held = frozen_changes(ctx, source, record, base);
                    held.extend(scope_left(ctx, source, record));
                    held.extend(broken_checks(ctx, source, record));
                    match (mapped.remove(record.id.as_str()), counterpart) {
                        // Deleted outright on the other side: decided as that
                        // side's delete (this record's edit since the last sync
                        // wins, and it is made anew there; otherwise the
                        // delete goes by the delete policy).
                        (_, None) => {
                            let gone = Record { id: link.id_on(target).to_owned(), version: None, deleted: true, fields: Vec::new(), born: None };
                            plan_delete(ctx, target, &gone, link, base, Some(record), &mut plan);
                        }
                        // The other side deleted it: its tombstone decides (with the
                        // delete policy and the conflict policy) in that side's pass.
                        (Some(Ok(_)), Some(counterpart)) if counterpart.deleted => {}
                        (Some(Ok(values)), Some(counterpart)) if held.is_empty() => {
                            plan_update(ctx, source, record, link, base, counterpart, &values, &mut plan)
                        }
                        (Some(Ok(_)), Some(_)) => fail_invalid(source, record, Some(link), held, &mut plan),
                        (Some(Err(mut violations)), Some(_)) => {
                            violations.extend(held);
                            fail_invalid(source, record, Some(link), violations, &mut plan)
                        }
                        (None, Some(_)) => {}
                    }
                }
            }
        }
        Ok(plan)
    }
}
