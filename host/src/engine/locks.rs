//! Scope locks in a run (L2-L4): while one person holds a scope, only the
//! changes of the endpoint they hold it from apply to its records; everyone
//! else's changes to plan data are held back, not lost, and driven through
//! the engine again once the lock goes (applied, or put to the policy). A
//! conflict with the holder goes to the holder while the lock is held.
//! Auto-lock takes the lock for the scope's editor at the editor's first
//! change; an idle holder loses it at a run's start.

use std::time::Duration;

use super::approval::{split_exempt, Parked};
use super::{BatchPlan, Ctx, Engine, RunError, RunReport};
use crate::config::{ScopeConfig, Side};
use crate::model::{Change, ChangeKind, Field, Record, Value};
use crate::state::locks::{Held, HeldRow, LockAction, LockHow, LockRow};
use crate::state::users::person;
use crate::state::HistoryEntry;

/// The lock in force on a pipeline's scope during a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ActiveLock {
    pub scope: String,
    pub holder: String,
    /// The pipeline's side the holder's changes come from; `None` when the
    /// endpoint it was taken from is no side of this pipeline any more.
    pub holder_side: Option<Side>,
    pub since: String,
}

impl ActiveLock {
    /// "locked by hana since 2026-12-02T10:00:00Z".
    pub fn describe(&self) -> String {
        format!("scope `{}` is locked by {} since {}", self.scope, self.holder, self.since)
    }
}

/// Whether a lock's holder has been idle past the timeout at `now`. Pure.
pub fn idle_past(last_activity: &str, timeout: Duration, now: chrono::DateTime<chrono::Utc>) -> bool {
    match chrono::DateTime::parse_from_rfc3339(last_activity) {
        Ok(last) => now.signed_duration_since(last.with_timezone(&chrono::Utc)).to_std().is_ok_and(|idle| idle >= timeout),
        // A time the host did not write: the lock is not taken away on a guess.
        Err(_) => false,
    }
}

/// Which side of a pipeline an endpoint is. Pure.
pub fn side_of(ctx_endpoints: (&str, &str), endpoint: &str) -> Option<Side> {
    match ctx_endpoints {
        (left, _) if left == endpoint => Some(Side::Left),
        (_, right) if right == endpoint => Some(Side::Right),
        _ => None,
    }
}

impl Ctx<'_> {
    fn endpoints(&self) -> (&str, &str) {
        (self.config.left.endpoint.get_ref().as_str(), self.config.right.endpoint.get_ref().as_str())
    }

    /// The lock in force now, if any.
    pub fn active_lock(&self) -> Option<ActiveLock> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_lock(&self, row: Option<LockRow>) {
        let active = row.map(|row| ActiveLock { holder_side: side_of(self.endpoints(), &row.endpoint), scope: row.scope, holder: row.holder, since: row.since });
        *self.lock.lock().unwrap_or_else(|e| e.into_inner()) = active;
    }

    /// Whether a conflict of field `left` goes to `source` because its side holds the lock.
    pub fn holder_wins(&self, source: Side, left: &str) -> Option<ActiveLock> {
        self.active_lock().filter(|lock| lock.holder_side == Some(source) && self.config.lockable(left))
    }

    /// Whether a change of field `left` from `source` loses to the lock's holder.
    pub fn holder_overrules(&self, source: Side, left: &str) -> Option<ActiveLock> {
        self.active_lock().filter(|lock| lock.holder_side != Some(source) && self.config.lockable(left))
    }
}

impl Engine {
    /// The scope a pipeline belongs to.
    pub fn scope_of(&self, pipeline: &str) -> Option<(&str, &ScopeConfig)> {
        self.config.config.scopes.iter().find(|(_, scope)| scope.pipelines.iter().any(|p| p.as_str() == pipeline)).map(|(name, scope)| (name.as_str(), scope))
    }

    fn scope_named(&self, scope: &str) -> Result<&ScopeConfig, RunError> {
        self.config.config.scopes.iter().find(|(name, _)| name.as_str() == scope).map(|(_, config)| config).ok_or_else(|| {
            let known: Vec<&str> = self.config.config.scopes.keys().map(|k| k.as_str()).collect();
            RunError::Setup {
                message: format!("there is no scope named `{scope}`"),
                hint: if known.is_empty() { "declare one under [scopes.NAME] in the config".into() } else { format!("the scopes are: {}", known.join(", ")) },
            }
        })
    }

    /// Locks a scope for `user`, held from `endpoint` (default: the scope's
    /// editor's). Refused while someone else holds it; taking one's own lock
    /// again is a no-op. Returns the lock.
    pub fn take_lock(&self, scope: &str, user: &str, endpoint: Option<&str>) -> Result<LockRow, RunError> {
        let config = self.scope_named(scope)?;
        let locked = |row: &LockRow| RunError::Setup {
            message: format!("scope `{scope}` is locked by {} since {} ({})", row.holder, row.since, row.how.as_str()),
            hint: format!("wait for {} to release it (or for the idle timeout), or ask someone allowed to force it open", row.holder),
        };
        if let Some(row) = self.state.scope_lock(scope)?.filter(|row| person(&row.holder) != person(user)) {
            return Err(locked(&row));
        }
        let endpoint = match endpoint.or(config.editor.as_ref().map(|e| e.endpoint.as_str())) {
            Some(endpoint) => endpoint.to_owned(),
            None => {
                return Err(RunError::Setup {
                    message: format!("scope `{scope}` has no editor: say which endpoint the lock is held from"),
                    hint: "name the endpoint you edit through (e.g. --endpoint plan), or set [scopes.NAME] editor".into(),
                })
            }
        };
        let sides_ok = config.pipelines.iter().filter_map(|p| self.pipeline(p.as_str()).ok()).all(|p| {
            side_of((p.left.endpoint.get_ref().as_str(), p.right.endpoint.get_ref().as_str()), &endpoint).is_some()
        });
        if !sides_ok {
            return Err(RunError::Setup {
                message: format!("endpoint `{endpoint}` is not a side of every pipeline of scope `{scope}`"),
                hint: "name the endpoint you edit the scope through".into(),
            });
        }
        let (taken, row) = self.state.take_scope_lock(scope, user, &endpoint, LockHow::Lock, &format!("locked by {user} for editing"))?;
        if !taken && person(&row.holder) != person(user) {
            return Err(locked(&row));
        }
        if taken {
            self.state.event("info", None, None, &format!("scope `{scope}` locked by {user} (from `{endpoint}`)"), None)?;
        }
        Ok(row)
    }

    /// Releases a scope's lock: by its holder; by anyone else only with the
    /// permission to force it (`admin`: the caller's role is admin; or the
    /// scope's `unlock` names them), recorded as forced with why. Returns what
    /// was done. The scope's held changes go through on its pipelines' next runs.
    pub fn release_lock(&self, scope: &str, user: &str, admin: bool, why: Option<&str>) -> Result<String, RunError> {
        let config = self.scope_named(scope)?;
        let Some(lock) = self.state.scope_lock(scope)? else {
            return Ok(format!("scope `{scope}` is not locked"));
        };
        let held = self.state.held_changes(Some(scope), None)?.len();
        let then = format!("; {held} held change(s) go through on the next runs");
        if person(&lock.holder) == person(user) {
            let why = why.unwrap_or("released by the holder");
            self.state.release_scope_lock(scope, &lock.holder, LockAction::Release, user, why)?;
            self.state.event("info", None, None, &format!("scope `{scope}` released by {user}: {why}"), None)?;
            return Ok(format!("scope `{scope}` released{then}"));
        }
        let allowed = admin || config.unlock.iter().any(|u| u == person(user));
        if !allowed {
            let why = format!("{user} may not force open the lock of {}", lock.holder);
            self.state.log_lock_refusal(scope, Some(&lock.holder), user, &why)?;
            return Err(RunError::Forbidden {
                message: format!("scope `{scope}` is locked by {} since {}; {user} is neither the holder nor allowed to force it open", lock.holder, lock.since),
                hint: format!("ask {} to release it, or an admin (or a user the scope's `unlock` names) to force it open", lock.holder),
            });
        }
        let why = why.map(str::to_owned).unwrap_or_else(|| format!("forced open by {user}"));
        self.state.release_scope_lock(scope, &lock.holder, LockAction::ForcedUnlock, user, &why)?;
        self.state.event("warn", None, None, &format!("scope `{scope}` forced open by {user} (held by {} since {}): {why}", lock.holder, lock.since), None)?;
        Ok(format!("scope `{scope}` forced open (it was held by {}){then}", lock.holder))
    }

    /// At a run's start: an idle holder's lock is released; the lock in force
    /// is noted for the run; changes held by a lock that is gone are driven
    /// through the engine again.
    pub(super) async fn scope_lock_at_start(&self, ctx: &Ctx<'_>, report: &mut RunReport) -> Result<(), RunError> {
        let Some((scope, config)) = self.scope_of(ctx.name) else { return Ok(()) };
        if let Some(lock) = self.state.scope_lock(scope)? {
            if idle_past(&lock.last_activity, config.idle_timeout.0, chrono::Utc::now()) {
                let why = format!("{} changed nothing in the scope for {}", lock.holder, humantime::format_duration(config.idle_timeout.0));
                if self.state.release_scope_lock(scope, &lock.holder, LockAction::IdleRelease, "synchost", &why)? {
                    self.state.event("info", Some(ctx.name), ctx.run_id, &format!("scope `{scope}` unlocked (idle timeout): {why}"), None)?;
                }
            }
        }
        ctx.set_lock(self.state.scope_lock(scope)?);
        if ctx.active_lock().is_none() {
            self.drive_held(ctx, report).await?;
        }
        Ok(())
    }

    /// Before a batch's writes: auto-lock at the editor's first change; the
    /// holder's activity noted; everyone else's plan changes held back.
    pub(super) fn apply_scope_lock(&self, ctx: &Ctx<'_>, source: Side, plan: &mut BatchPlan) -> Result<(), RunError> {
        let Some((scope, config)) = self.scope_of(ctx.name) else { return Ok(()) };
        if plan.pending.is_empty() || ctx.overlay.is_some() || ctx.undoing {
            return Ok(());
        }
        if ctx.active_lock().is_none() {
            let Some(editor) = config.editor.as_ref().filter(|_| config.auto_lock) else { return Ok(()) };
            if side_of(ctx.endpoints(), editor.endpoint.as_str()) != Some(source) {
                return Ok(());
            }
            let first = plan.pending.iter().find_map(|p| p.label.clone()).unwrap_or_else(|| plan.pending[0].source_id.clone());
            let why = format!("{}'s first change in the scope, from `{}` ({first})", editor.user, editor.endpoint);
            let (taken, row) = self.state.take_scope_lock(scope, &editor.user, editor.endpoint.as_str(), LockHow::AutoLock, &why)?;
            if taken {
                self.state.event("info", Some(ctx.name), ctx.run_id, &format!("scope `{scope}` locked for {} (auto-lock): {why}", editor.user), None)?;
            }
            ctx.set_lock(Some(row));
        }
        let Some(lock) = ctx.active_lock() else { return Ok(()) };
        if lock.holder_side == Some(source) {
            self.state.touch_scope_lock(scope)?;
            return Ok(());
        }
        self.hold_back(ctx, source, &lock, plan)
    }

    /// Holds back the plan changes of a batch from `source` (not the holder's):
    /// actuals and other information go on at once.
    fn hold_back(&self, ctx: &Ctx<'_>, source: Side, lock: &ActiveLock, plan: &mut BatchPlan) -> Result<(), RunError> {
        let free: Vec<&String> = ctx.config.fields.keys().filter(|left| !ctx.config.lockable(left)).collect();
        let target_names: Vec<String> = free.iter().map(|f| ctx.config.name_on(source.other(), f).to_owned()).collect();
        let source_names: Vec<String> = free.iter().map(|f| ctx.config.name_on(source, f).to_owned()).collect();
        let mut written_at_once = Vec::new();
        for pending in std::mem::take(&mut plan.pending) {
            let (mut now, waits) = split_exempt(pending, &target_names, &source_names);
            if let (Some(now), true) = (now.as_mut(), waits.is_some()) {
                // The record is not synced at this version while part of it
                // waits: when the lock goes it is compared again, not passed over.
                now.source_version = None;
            }
            written_at_once.extend(now);
            let Some(mut pending) = waits else { continue };
            let parked = Parked::from_pending(&pending);
            let summary = parked.summary();
            let change = serde_json::to_string(&parked).expect("a held change serialises");
            let held = self.state.hold_change(
                &lock.scope,
                ctx.name,
                source,
                &pending.source_id,
                pending.change.target_id.as_deref(),
                &summary,
                &change,
                &lock.holder,
                pending.label.as_deref(),
            )?;
            let message = format!("held: {}; it goes through when the lock goes", lock.describe());
            if let (Held::New(_), Some(field)) = (held, ctx.config.notes.on(source)) {
                let note = format!("synchost: your change ({summary}) is held: {}. It is applied when the lock goes.", lock.describe());
                plan.reverse.push((note_change(ctx, &pending.source_id, field, note), note_entry(&pending.history, source, field)));
            }
            if let Held::New(_) = held {
                plan.counts.held += 1;
            }
            pending.history.action = "hold";
            pending.history.target = None;
            pending.history.message = Some(message);
            plan.commit.history.push(pending.history);
        }
        plan.pending = written_at_once;
        Ok(())
    }

    /// Drives the changes a lock held back through the engine again, now
    /// that nobody holds the scope: what nobody else changed is applied,
    /// what the holder changed too goes to the policy; a held value that
    /// did not survive is noted on its side.
    async fn drive_held(&self, ctx: &Ctx<'_>, report: &mut RunReport) -> Result<(), RunError> {
        let held = self.state.held_changes(None, Some(ctx.name))?;
        if held.is_empty() {
            return Ok(());
        }
        tracing::info!(pipeline = ctx.name, count = held.len(), "Driving the changes a scope lock held back");
        for side in [Side::Left, Side::Right] {
            let rows: Vec<&HeldRow> = held.iter().filter(|row| row.side == side.as_str()).collect();
            if rows.is_empty() {
                continue;
            }
            let ids: Vec<String> = rows.iter().map(|row| row.source_id.clone()).collect();
            let records = ctx.fetch(side, &ids).await?;
            let plan = self.plan_batch(ctx, side, &records).await?;
            self.finish_batch(ctx, side, plan, report).await?;
            self.note_overruled(ctx, side, &rows).await?;
            self.state.drop_held(&rows.iter().map(|row| row.id).collect::<Vec<_>>())?;
        }
        Ok(())
    }

    /// After held changes were driven again: each held value the other side
    /// does not hold now lost to the holder's (or the policy's) value; its
    /// side is told, in the history and where it takes notes.
    async fn note_overruled(&self, ctx: &Ctx<'_>, source: Side, rows: &[&HeldRow]) -> Result<(), RunError> {
        let target = source.other();
        let target_ids: Vec<String> = rows.iter().filter_map(|row| row.target_id.clone()).collect();
        let current: std::collections::HashMap<String, Record> = ctx.fetch(target, &target_ids).await?.into_iter().map(|r| (r.id.clone(), r)).collect();
        let mut notes = Vec::new();
        let mut commit = crate::state::Commit::default();
        for row in rows {
            let Ok(parked) = serde_json::from_str::<Parked>(&row.change) else { continue };
            let Some(now) = row.target_id.as_ref().and_then(|id| current.get(id)) else { continue };
            let lost: Vec<String> = parked
                .history
                .fields
                .iter()
                .filter(|(name, _, held)| now.get(name).cloned().unwrap_or(Value::Null).to_json() != crate::state::decode(held).to_json())
                .map(|(name, _, held)| format!("{name} = {}", crate::state::decode(held).to_text()))
                .collect();
            if lost.is_empty() {
                continue;
            }
            let message = format!(
                "the change {} was held while {} held scope `{}` and lost to the value there now; the {source} side must refresh",
                lost.join(", "),
                row.holder,
                row.scope
            );
            let (left_id, right_id) = match source {
                Side::Left => (Some(row.source_id.clone()), row.target_id.clone()),
                Side::Right => (row.target_id.clone(), Some(row.source_id.clone())),
            };
            commit.history.push(HistoryEntry {
                left_id,
                right_id,
                action: "reject",
                target: None,
                origin: Some(source),
                fields: Vec::new(),
                rule: format!("held by the lock of {}; overruled", row.holder),
                message: Some(message.clone()),
                label: row.label.clone(),
            });
            self.state.event("warn", Some(ctx.name), ctx.run_id, &format!("{}: {message}", row.label.as_deref().unwrap_or(&row.source_id)), Some("refresh and make the change again if it still matters"))?;
            if let Some(field) = ctx.config.notes.on(source) {
                notes.push(note_change(ctx, &row.source_id, field, format!("synchost: {message}.")));
            }
        }
        if !notes.is_empty() {
            ctx.write(source, &notes).await?;
        }
        if !commit.is_empty() {
            self.state.apply(ctx.name, ctx.run_id, &commit)?;
        }
        Ok(())
    }
}

/// A note written to one record.
pub(super) fn note_change(ctx: &Ctx<'_>, id: &str, field: &str, note: String) -> Change {
    Change {
        origin: format!("{}/note", ctx.name),
        target_id: Some(id.to_owned()),
        expected_version: None,
        kind: ChangeKind::Upsert,
        repeated: false,
        on_behalf_of: None,
        fields: vec![Field { name: field.to_owned(), value: Value::Text(note) }],
    }
}

/// The history entry of a note written to the record a change came from.
fn note_entry(of: &HistoryEntry, side: Side, field: &str) -> HistoryEntry {
    HistoryEntry {
        left_id: of.left_id.clone(),
        right_id: of.right_id.clone(),
        action: "note",
        target: Some(side),
        origin: None,
        fields: Vec::new(),
        rule: format!("note in {field}"),
        message: None,
        label: of.label.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_idle_once_the_timeout_passed_since_the_last_change() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-02T10:30:00Z").unwrap().with_timezone(&chrono::Utc);
        assert!(idle_past("2026-12-02T10:00:00.000Z", Duration::from_secs(30 * 60), now));
        assert!(!idle_past("2026-12-02T10:00:01.000Z", Duration::from_secs(30 * 60), now));
        // A time from the future (a clock moved back) is not idle.
        assert!(!idle_past("2026-12-02T11:00:00Z", Duration::from_secs(60), now));
        assert!(!idle_past("yesterday", Duration::from_secs(60), now));
    }

    #[test]
    fn an_endpoint_is_the_side_it_is_configured_as() {
        assert_eq!(side_of(("plan", "redmine"), "plan"), Some(Side::Left));
        assert_eq!(side_of(("plan", "redmine"), "redmine"), Some(Side::Right));
        assert_eq!(side_of(("plan", "redmine"), "crm"), None);
    }
}
