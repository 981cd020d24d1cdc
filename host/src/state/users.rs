//! The admin API's users, what their role lets them do, and their tokens.
//!
//! A token is shown once, when it is made; the state keeps its SHA-256
//! digest only (a token is 160 random bits, so a plain digest is enough: no
//! one guesses a preimage), so a copy of the state gives no access.

use rand::RngCore;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{now, State, StateError};

/// How a person's name is recorded when they act through the host's own
/// command line (`grace (command line)`).
pub const VIA_COMMAND_LINE: &str = " (command line)";

/// The person in a recorded name, without the way they acted.
pub fn person(recorded: &str) -> &str {
    recorded.strip_suffix(VIA_COMMAND_LINE).unwrap_or(recorded)
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything: status, runs, history, queues, events.
    Viewer,
    /// Reads, and pauses, resumes, syncs, retries failed items, resolves conflicts.
    Operator,
    /// Reads, and approves or rejects changes waiting for approval.
    Approver,
    /// Everything, users and packages included.
    Admin,
}

/// A kind of action, as the API checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read,
    /// Pause, resume, sync now, retry, resolve.
    Operate,
    /// Approve or reject.
    Approve,
    /// Users, tokens, packages, reloads.
    Administer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Whether the role grants `permission` at all.
    pub fn allows(self, permission: Permission) -> bool {
        match (self, permission) {
            (Role::Admin, _) | (_, Permission::Read) => true,
            (Role::Operator, Permission::Operate) | (Role::Approver, Permission::Approve) => true,
            _ => false,
        }
    }
}

impl ToSql for Role {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for Role {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_str()? {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "approver" => Ok(Role::Approver),
            "admin" => Ok(Role::Admin),
            other => Err(FromSqlError::Other(format!("unknown role `{other}`").into())),
        }
    }
}

/// A user of the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The pipelines an operator or approver acts on; `None`: every one.
    pub pipelines: Option<Vec<String>>,
    pub created_at: String,
}

impl User {
    /// Whether the user may do `permission`, on `pipeline` when the action is about one.
    pub fn may(&self, permission: Permission, pipeline: Option<&str>) -> bool {
        if !self.role.allows(permission) {
            return false;
        }
        match (permission, &self.pipelines, pipeline) {
            (Permission::Read | Permission::Administer, _, _) | (_, None, _) => true,
            (_, Some(allowed), Some(pipeline)) => allowed.iter().any(|p| p == pipeline),
            // An action about no one pipeline needs a user of every pipeline.
            (_, Some(_), None) => false,
        }
    }
}

/// A token as listed (never its value).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TokenRow {
    pub id: i64,
    pub user: String,
    pub label: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// Why a user or token change was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("there is already a user named `{0}`")]
    Exists(String),
    #[error("there is no user named `{0}`")]
    Unknown(String),
    #[error("there is no token {0}")]
    UnknownToken(i64),
    #[error("`{0}` is not a user name: use letters, digits, `.`, `_`, `-` and `@` (up to 64)")]
    BadName(String),
    #[error(transparent)]
    State(#[from] StateError),
}

/// The digest a token is kept as.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let pipelines: Option<String> = r.get(2)?;
    Ok(User {
        name: r.get(0)?,
        role: r.get(1)?,
        pipelines: pipelines.and_then(|p| serde_json::from_str(&p).ok()),
        created_at: r.get(3)?,
    })
}

impl State {
    pub fn add_user(&self, name: &str, role: Role, pipelines: Option<&[String]>) -> Result<User, UserError> {
        let valid = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_alphanumeric() || "._-@".contains(c));
        if !valid {
            return Err(UserError::BadName(name.to_owned()));
        }
        if self.user(name)?.is_some() {
            return Err(UserError::Exists(name.to_owned()));
        }
        let listed = pipelines.map(|p| serde_json::to_string(p).expect("names serialize"));
        self.with(|c| c.execute("INSERT INTO users (name, role, pipelines, created_at) VALUES (?1, ?2, ?3, ?4)", params![name, role, listed, now()]))?;
        Ok(self.user(name)?.expect("just added"))
    }

    pub fn user(&self, name: &str) -> Result<Option<User>, StateError> {
        self.with(|c| c.query_row("SELECT name, role, pipelines, created_at FROM users WHERE name = ?1", [name], user_row).optional())
    }

    pub fn users(&self) -> Result<Vec<User>, StateError> {
        self.with(|c| c.prepare("SELECT name, role, pipelines, created_at FROM users ORDER BY name")?.query_map([], user_row)?.collect())
    }

    /// Removes a user and every token of theirs.
    pub fn remove_user(&self, name: &str) -> Result<(), UserError> {
        let removed = self.with(|c| {
            let transaction = c.transaction()?;
            transaction.execute("DELETE FROM tokens WHERE user = ?1", [name])?;
            let removed = transaction.execute("DELETE FROM users WHERE name = ?1", [name])?;
            transaction.commit()?;
            Ok(removed)
        })?;
        if removed == 0 {
            return Err(UserError::Unknown(name.to_owned()));
        }
        Ok(())
    }

    /// Makes a token for `user`: its id, and the token itself (shown once).
    pub fn create_token(&self, user: &str, label: Option<&str>) -> Result<(i64, String), UserError> {
        if self.user(user)?.is_none() {
            return Err(UserError::Unknown(user.to_owned()));
        }
        let mut secret = [0u8; 20];
        rand::rng().fill_bytes(&mut secret);
        let token = format!("synchost_{}", hex::encode(secret));
        let id = self.with(|c| {
            c.execute("INSERT INTO tokens (user, digest, label, created_at) VALUES (?1, ?2, ?3, ?4)", params![user, digest(&token), label, now()])?;
            Ok(c.last_insert_rowid())
        })?;
        Ok((id, token))
    }

    pub fn tokens(&self) -> Result<Vec<TokenRow>, StateError> {
        self.with(|c| {
            c.prepare("SELECT id, user, label, created_at, last_used_at, revoked_at FROM tokens ORDER BY id")?
                .query_map([], |r| {
                    Ok(TokenRow { id: r.get(0)?, user: r.get(1)?, label: r.get(2)?, created_at: r.get(3)?, last_used_at: r.get(4)?, revoked_at: r.get(5)? })
                })?
                .collect()
        })
    }

    pub fn revoke_token(&self, id: i64) -> Result<(), UserError> {
        let changed = self.with(|c| c.execute("UPDATE tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1", params![id, now()]))?;
        if changed == 0 {
            return Err(UserError::UnknownToken(id));
        }
        Ok(())
    }

    /// The user a token belongs to, if it is valid (not revoked); notes its use.
    pub fn authenticate(&self, token: &str) -> Result<Option<User>, StateError> {
        let digest = digest(token);
        let user: Option<String> = self.with(|c| {
            c.query_row("SELECT user FROM tokens WHERE digest = ?1 AND revoked_at IS NULL", [&digest], |r| r.get(0)).optional()
        })?;
        let Some(user) = user else { return Ok(None) };
        // At most once a minute: a dashboard asks every few seconds, and each
        // write would queue behind the engine's transactions.
        let a_minute_ago = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.with(|c| {
            c.execute(
                "UPDATE tokens SET last_used_at = ?2 WHERE digest = ?1 AND (last_used_at IS NULL OR last_used_at < ?3)",
                params![digest, now(), a_minute_ago],
            )
        })?;
        self.user(&user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, pipelines: Option<&[&str]>) -> User {
        User { name: "u".into(), role, pipelines: pipelines.map(|p| p.iter().map(|s| s.to_string()).collect()), created_at: String::new() }
    }

    #[test]
    fn each_role_may_do_its_own_actions_only() {
        use Permission::*;
        let table = [
            (Role::Viewer, [true, false, false, false]),
            (Role::Operator, [true, true, false, false]),
            (Role::Approver, [true, false, true, false]),
            (Role::Admin, [true, true, true, true]),
        ];
        for (role, expected) in table {
            let got = [Read, Operate, Approve, Administer].map(|p| user(role, None).may(p, Some("p")));
            assert_eq!(got, expected, "{role:?}");
        }
    }

    #[test]
    fn an_approver_of_some_pipelines_approves_there_only() {
        let approver = user(Role::Approver, Some(&["plan"]));
        assert!(approver.may(Permission::Approve, Some("plan")));
        assert!(!approver.may(Permission::Approve, Some("crm")));
        assert!(approver.may(Permission::Read, Some("crm")));
    }

    #[test]
    fn a_token_authenticates_until_revoked_and_only_its_digest_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.sqlite")).unwrap();
        state.add_user("ada", Role::Approver, Some(&["plan".to_owned()])).unwrap();
        assert!(matches!(state.add_user("ada", Role::Viewer, None), Err(UserError::Exists(_))));
        let (id, token) = state.create_token("ada", Some("laptop")).unwrap();
        assert_eq!(state.authenticate(&token).unwrap().unwrap().name, "ada");
        assert!(state.authenticate("synchost_guess").unwrap().is_none());
        let stored: String = state.with(|c| c.query_row("SELECT digest FROM tokens", [], |r| r.get(0))).unwrap();
        assert_ne!(stored, token);
        state.revoke_token(id).unwrap();
        assert!(state.authenticate(&token).unwrap().is_none());
        state.remove_user("ada").unwrap();
        assert!(state.tokens().unwrap().is_empty());
    }
}
