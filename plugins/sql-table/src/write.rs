//! Writing a batch: each change planned as a statement (or, for a create, a
//! new row), new rows merged into multi-row `INSERT ... RETURNING`s, all in
//! one transaction; only when something fails, each statement again on its
//! own to find which. Each outcome carries the row's version as `read` will
//! read it.

use synchost_plugin_sdk::host::{BatchMode, Dialect, Executed, Statement};
use synchost_plugin_sdk::prelude::*;
use synchost_plugin_sdk::version;

use crate::convert::{id_to_key, to_column, to_id, version_to_value};
use crate::schema::Table;
use crate::settings::StampFormat;
use crate::{clock, quote, SqlTable, TypedRow};

impl SqlTable {
    /// Applies a batch of changes: one outcome per change, in order.
    pub(crate) fn write_changes(&self, entity: &str, changes: Vec<Change>) -> Result<Vec<Outcome>, Error> {
        let table = self.table(entity)?;
        if !table.writable {
            return Err(Error::new("read-only", format!("entity `{entity}` is configured as not writable"))
                .with_hint("set `writable = true` in the entity's settings to allow writes"));
        }
        let now = clock::now(table.updated_at.as_ref().map_or(StampFormat::Rfc3339, |(_, f)| *f));
        let existing = self.existing_by_origin(&table, &changes)?;
        self.release_tombstone_origins(&table, &changes, &existing)?;
        // The statement's guard compares the stamp, which cannot see an edit
        // within the same tick of its clock: the version's digest can.
        let guarded: Vec<String> = changes.iter().filter(|c| c.expected_version.is_some()).filter_map(|c| c.target_id.clone()).collect();
        let current: std::collections::HashMap<String, Record> = if guarded.is_empty() || table.updated_at.is_none() {
            Default::default()
        } else {
            self.fetch_records(&table, &guarded)?.into_iter().map(|r| (r.id.clone(), r)).collect()
        };
        let planned: Vec<Planned> = changes
            .into_iter()
            .map(|change| {
                let moved = change.target_id.as_ref().and_then(|id| current.get(id)).filter(|now| now.version != change.expected_version);
                if let Some(now) = moved {
                    return Planned::Conflict(now.clone());
                }
                let earlier = (change.target_id.is_none())
                    .then(|| existing.iter().find(|(o, _)| *o == change.origin).map(|(_, k)| k.clone()))
                    .flatten();
                self.plan(&table, change, earlier, &now)
            })
            .collect();

        // Most batches apply cleanly: try them as one transaction, new rows
        // in multi-row statements, and only when something fails pay for a
        // savepoint per statement to find which.
        let mut results = match self.run_bulk(&table, &planned) {
            Ok(results) => results.into_iter(),
            Err(_) => {
                let writes = writes_of(&planned);
                let statements: Vec<Statement> = writes
                    .iter()
                    .map(|write| match write {
                        Write::Statement(statement) => statement.clone(),
                        Write::Row(row) => self.insert_rows(&table, &[row]),
                    })
                    .collect();
                let results = self.sql.execute(&statements, BatchMode::EachAlone)?;
                writes.iter().zip(results).map(|(write, result)| match write {
                    Write::Row(_) => result.map(without_origin),
                    Write::Statement(_) => result,
                }).collect::<Vec<_>>().into_iter()
            }
        };

        let mut outcomes = Vec::with_capacity(planned.len());
        for plan in planned {
            let outcome = match plan {
                Planned::Rejected(error) => Outcome::Rejected(error.into_problem()),
                Planned::Conflict(now) => Outcome::Conflict(now),
                Planned::Run { target, kind, guarded, .. } => match results.next() {
                    None => Outcome::Rejected(
                        Error::new("missing-result", "the host returned fewer results than statements").into_problem(),
                    ),
                    Some(Err(error)) => Outcome::Rejected(error.into_problem()),
                    Some(Ok(executed)) => match executed.returned.into_iter().next() {
                        // Only the id and version go back: no record is made of the row.
                        Some(row) => {
                            let written = TypedRow::of(&table, row);
                            Outcome::Applied(Applied { version: written.version(&table), id: written.id })
                        }
                        // No row matched: the record is gone, or changed since the expected version.
                        None => {
                            let id = target.unwrap_or_default();
                            match self.fetch_records(&table, std::slice::from_ref(&id))?.pop() {
                                Some(current) if guarded => Outcome::Conflict(current),
                                Some(_) => Outcome::Rejected(
                                    Error::transient("not-applied", format!("record `{id}` changed while it was written"))
                                        .into_problem(),
                                ),
                                None if kind == ChangeKind::Delete => Outcome::Applied(Applied { id, version: None }),
                                None => Outcome::Rejected(
                                    Error::new("not-found", format!("record `{id}` of `{entity}` no longer exists"))
                                        .with_hint("it was deleted on this side; resolve the delete before updating it")
                                        .into_problem(),
                                ),
                            }
                        }
                    },
                },
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}

/// One change turned into a statement, or rejected before any SQL runs.
enum Planned {
    /// A statement, or (a create where the table has an origin column) a new
    /// row, which goes into one multi-row `INSERT` with others (`run_bulk`).
    Run { write: Write, target: Option<String>, kind: ChangeKind, guarded: bool },
    Rejected(Error),
    /// The record changed since the version the change expects.
    Conflict(Record),
}

/// What a planned change runs.
enum Write {
    Statement(Statement),
    Row(NewRow),
}

/// A create's columns and values, with the origin that tells its row apart
/// in a multi-row `INSERT ... RETURNING` (whose rows come in no set order).
#[derive(Clone)]
struct NewRow {
    columns: Vec<String>,
    values: Vec<Value>,
    origin: String,
}

/// Rows per multi-row `INSERT`: most statements of a batch share one text
/// (prepared once), and the parameters stay far below SQLite's limit.
const ROWS_PER_INSERT: usize = 100;

impl SqlTable {
    /// Builds the statement for one change. `existing` is the row an earlier
    /// create with the same origin made, if any.
    fn plan(&self, table: &Table<'_>, change: Change, existing: Option<String>, now: &Value) -> Planned {
        let build = || -> Result<Planned, Error> {
            let target = change.target_id.clone().or(existing);
            // Stamp and status that every write sets, as (quoted column, value).
            let mut assignments: Vec<(String, Value)> = Vec::new();
            if change.kind == ChangeKind::Upsert {
                for field in change.fields {
                    let def = table.field(&field.name).ok_or_else(|| {
                        let known: Vec<&str> = table.fields.iter().map(|f| f.name.as_str()).collect();
                        Error::new("unknown-field", format!("entity `{}` has no field `{}`", table.entity, field.name))
                            .with_hint(format!("writable fields: {}", known.join(", ")))
                    })?;
                    assignments.push((quote(&field.name), to_column(def, field.value)?));
                }
            }
            if let Some((u, _)) = &table.updated_at {
                assignments.push((quote(&u.name), now.clone()));
            }
            // A delete writes the tombstone; a create starts live; an update leaves
            // the status alone, so updating a deleted record never revives it.
            if let Some(soft) = table.soft_delete {
                let status = match (change.kind, &target) {
                    (ChangeKind::Delete, _) => Some(&soft.deleted),
                    (ChangeKind::Upsert, None) => Some(&soft.active),
                    (ChangeKind::Upsert, Some(_)) => None,
                };
                if let Some(status) = status {
                    assignments.push((quote(&soft.column), Value::Text(status.clone())));
                }
            }
            if let (ChangeKind::Upsert, None, Some(origin)) = (change.kind, &target, &table.origin) {
                // Goes into a multi-row INSERT (see `insert_rows`), which numbers its own parameters.
                assignments.push((quote(origin), Value::Text(change.origin.clone())));
                let (columns, values) = assignments.into_iter().unzip();
                return Ok(Planned::Run {
                    write: Write::Row(NewRow { columns, values, origin: change.origin }),
                    target: None,
                    kind: ChangeKind::Upsert,
                    guarded: false,
                });
            }

            let mut params: Vec<Value> = Vec::new();
            let mut param = |value: Value| {
                params.push(value);
                self.param(params.len())
            };
            let set: Vec<(String, String)> = assignments.into_iter().map(|(column, value)| (column, param(value))).collect();
            // The row as written, read the way `read` reads it, for its version.
            let returning = format!(" RETURNING {}", Self::select_list(table));
            let guard = |param: &mut dyn FnMut(Value) -> String| -> Result<String, Error> {
                match (&change.expected_version, &table.updated_at) {
                    (Some(version), Some((u, _))) => Ok(format!(
                        " AND {} {} {}",
                        quote(&u.name),
                        self.same(),
                        param(version_to_value(u, version::change_time(version)))
                    )),
                    _ => Ok(String::new()),
                }
            };

            let sql = match (&change.kind, &target) {
                (ChangeKind::Delete, None) => {
                    return Err(Error::new("no-target", "a delete must name the record it deletes (target-id)"))
                }
                (ChangeKind::Delete, Some(id)) if table.soft_delete.is_none() => {
                    let key = param(id_to_key(&table.key, id)?);
                    let guard = guard(&mut param)?;
                    format!("DELETE FROM {} WHERE {} = {key}{guard}{returning}", quote(&table.table), quote(&table.key.name))
                }
                (_, Some(id)) => {
                    let key = param(id_to_key(&table.key, id)?);
                    let guard = guard(&mut param)?;
                    let set: Vec<String> = set.iter().map(|(c, p)| format!("{c} = {p}")).collect();
                    if set.is_empty() {
                        // Nothing to set: read the row back so the outcome still has its version.
                        format!(
                            "UPDATE {t} SET {k} = {k} WHERE {k} = {key}{guard}{returning}",
                            t = quote(&table.table),
                            k = quote(&table.key.name)
                        )
                    } else {
                        format!(
                            "UPDATE {} SET {} WHERE {} = {key}{guard}{returning}",
                            quote(&table.table),
                            set.join(", "),
                            quote(&table.key.name)
                        )
                    }
                }
                (ChangeKind::Upsert, None) => {
                    let (columns, values): (Vec<String>, Vec<String>) = set.into_iter().unzip();
                    if columns.is_empty() {
                        format!("INSERT INTO {} DEFAULT VALUES{returning}", quote(&table.table))
                    } else {
                        format!(
                            "INSERT INTO {} ({}) VALUES ({}){returning}",
                            quote(&table.table),
                            columns.join(", "),
                            values.join(", ")
                        )
                    }
                }
            };
            Ok(Planned::Run {
                write: Write::Statement(Statement { sql, params }),
                target,
                kind: change.kind,
                guarded: change.expected_version.is_some(),
            })
        };
        build().unwrap_or_else(Planned::Rejected)
    }

    /// A record made anew after its row was deleted (the edit on the other
    /// side won) has the deleted row's origin: the tombstone gives it up, so
    /// the new row can take it where the origin column is unique.
    fn release_tombstone_origins(&self, table: &Table<'_>, changes: &[Change], live: &[(String, String)]) -> Result<(), Error> {
        let (Some(origin), Some(soft)) = (&table.origin, table.soft_delete) else { return Ok(()) };
        let fresh: Vec<Value> = changes
            .iter()
            .filter(|c| c.target_id.is_none() && c.kind == ChangeKind::Upsert && !live.iter().any(|(o, _)| *o == c.origin))
            .map(|c| Value::Text(c.origin.clone()))
            .collect();
        let statements: Vec<Statement> = fresh
            .chunks(500)
            .map(|chunk| {
                let mut params = vec![Value::Text(soft.deleted.clone())];
                params.extend(chunk.iter().cloned());
                let placeholders: Vec<String> = (2..=params.len()).map(|n| self.param(n)).collect();
                let sql = format!(
                    "UPDATE {} SET {o} = NULL WHERE {} = {} AND {o} IN ({})",
                    quote(&table.table),
                    quote(&soft.column),
                    self.param(1),
                    placeholders.join(", "),
                    o = quote(origin)
                );
                Statement { sql, params }
            })
            .collect();
        if !statements.is_empty() {
            self.sql.execute(&statements, BatchMode::AllOrNothing)?;
        }
        Ok(())
    }

    /// The live rows earlier creates made, by origin, for creates that name
    /// no target. A tombstone is not one: the record it was is deleted, and
    /// a record made anew after that (the edit won over the delete) is a new row.
    fn existing_by_origin(&self, table: &Table<'_>, changes: &[Change]) -> Result<Vec<(String, String)>, Error> {
        let Some(origin) = &table.origin else { return Ok(Vec::new()) };
        let origins: Vec<Value> = changes
            .iter()
            // Only a create sent before may have made its row already.
            .filter(|c| c.target_id.is_none() && c.kind == ChangeKind::Upsert && c.repeated)
            .map(|c| Value::Text(c.origin.clone()))
            .collect();
        let mut found = Vec::new();
        for chunk in origins.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|n| self.param(n)).collect();
            let mut parameters = chunk.to_vec();
            let live = match table.soft_delete {
                Some(soft) => {
                    parameters.push(Value::Text(soft.deleted.clone()));
                    format!(" AND {} <> {}", quote(&soft.column), self.param(parameters.len()))
                }
                None => String::new(),
            };
            let query = format!(
                "SELECT {}, {} FROM {} WHERE {} IN ({}){live}",
                quote(origin),
                quote(&table.key.name),
                quote(&table.table),
                quote(origin),
                placeholders.join(", ")
            );
            for row in self.sql.query(&query, &parameters)?.rows {
                if let [origin, key] = row.as_slice() {
                    found.push((to_id(origin), to_id(key)));
                }
            }
        }
        Ok(found)
    }
}

impl SqlTable {
    /// Runs the planned statements in one transaction, runs of new rows
    /// merged into multi-row `INSERT`s; one result per planned statement, in
    /// order. Any failure fails the whole (nothing is applied).
    fn run_bulk(&self, table: &Table<'_>, planned: &[Planned]) -> Result<Vec<Result<Executed, Error>>, Error> {
        let writes = writes_of(planned);
        // Each statement sent, with the planned writes it stands for.
        let mut statements: Vec<Statement> = Vec::new();
        let mut covers: Vec<Vec<usize>> = Vec::new();
        let mut index = 0;
        while index < writes.len() {
            let first = match writes[index] {
                Write::Statement(statement) => {
                    statements.push(statement.clone());
                    covers.push(vec![index]);
                    index += 1;
                    continue;
                }
                Write::Row(row) => row,
            };
            // The new rows that follow with the same columns, up to a statement's worth.
            let mut rows = vec![first];
            while rows.len() < ROWS_PER_INSERT
                && let Some(Write::Row(next)) = writes.get(index + rows.len())
                && next.columns == first.columns
            {
                rows.push(next);
            }
            statements.push(self.insert_rows(table, &rows));
            covers.push((index..index + rows.len()).collect());
            index += rows.len();
        }
        let executed = self.sql.execute(&statements, BatchMode::AllOrNothing)?;
        let mut results: Vec<Option<Result<Executed, Error>>> = writes.iter().map(|_| None).collect();
        for (group, result) in covers.into_iter().zip(executed) {
            let executed = result?;
            if let [single] = group.as_slice()
                && matches!(writes[*single], Write::Statement(_))
            {
                results[*single] = Some(Ok(executed));
                continue;
            }
            // Each returned row ends with its origin: it goes to its change.
            let mut by_origin: std::collections::HashMap<String, Vec<Value>> = executed
                .returned
                .into_iter()
                .filter_map(|mut row| {
                    let origin = row.pop()?;
                    Some((origin.as_str()?.to_owned(), row))
                })
                .collect();
            for i in group {
                let Write::Row(row) = writes[i] else { continue };
                let returned: Vec<Vec<Value>> = by_origin.remove(&row.origin).into_iter().collect();
                results[i] = Some(Ok(Executed { rows_affected: returned.len() as u64, returned }));
            }
        }
        Ok(results.into_iter().map(|r| r.unwrap_or_else(|| Err(Error::new("missing-result", "a statement had no result")))).collect())
    }

    /// One `INSERT` of several new rows with the same columns, returning each
    /// row as `read` reads it followed by its origin.
    fn insert_rows(&self, table: &Table<'_>, rows: &[&NewRow]) -> Statement {
        let width = rows[0].columns.len();
        let mut params = Vec::with_capacity(width * rows.len());
        let origin = table.origin.as_deref().map(quote).unwrap_or_default();
        let mut sql = format!("INSERT INTO {} ({}) VALUES ", quote(&table.table), rows[0].columns.join(", "));
        // Written in place: a statement of 100 rows has a thousand placeholders.
        let marker = match self.dialect {
            Dialect::Sqlite => '?',
            Dialect::Postgres => '$',
        };
        for (i, row) in rows.iter().enumerate() {
            let start = params.len();
            params.extend(row.values.iter().cloned());
            sql.push_str(if i == 0 { "(" } else { ", (" });
            for n in start + 1..=start + width {
                if n > start + 1 {
                    sql.push_str(", ");
                }
                sql.push(marker);
                sql.push_str(itoa::Buffer::new().format(n));
            }
            sql.push(')');
        }
        sql.push_str(" RETURNING ");
        sql.push_str(&Self::select_list(table));
        sql.push_str(", ");
        sql.push_str(&origin);
        Statement { sql, params }
    }
}

/// What the planned changes run, in order (those rejected before any SQL run nothing).
fn writes_of(planned: &[Planned]) -> Vec<&Write> {
    planned
        .iter()
        .filter_map(|p| match p {
            Planned::Run { write, .. } => Some(write),
            Planned::Rejected(_) | Planned::Conflict(_) => None,
        })
        .collect()
}

/// A new row's result without the origin `insert_rows` returns after it.
fn without_origin(mut executed: Executed) -> Executed {
    for row in &mut executed.returned {
        row.pop();
    }
    executed
}
