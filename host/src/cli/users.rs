//! `synchost users ...` and `synchost tokens ...`: who may use the admin
//! API and the dashboard, and with what role.

use std::path::Path;

use super::admin::{open_state_only, state_error};
use super::output::say;
use super::CommandError;
use crate::state::users::{Role, UserError};

fn refused(error: UserError) -> CommandError {
    let fix = match &error {
        UserError::Exists(_) => "choose another name, or `synchost users remove NAME` first",
        UserError::Unknown(_) => "`synchost users list` shows the users",
        UserError::UnknownToken(_) => "`synchost tokens list` shows the tokens",
        UserError::BadName(_) => "a name such as `ada` or `ada.lovelace@example.com`",
        UserError::State(_) => "check that the data folder is writable",
    };
    CommandError::Reported(format!("{error}\n  = fix: {fix}"))
}

/// `synchost users add NAME --role ROLE [--pipeline P]...`
pub fn add(config: &Path, name: &str, role: Role, pipelines: &[String]) -> Result<(), CommandError> {
    let state = open_state_only(config)?;
    let scope = (!pipelines.is_empty()).then_some(pipelines);
    let user = state.add_user(name, role, scope).map_err(refused)?;
    let on = user.pipelines.as_ref().map(|p| format!(" on {}", p.join(", "))).unwrap_or_default();
    say!("added {} ({}{on}); make a token for them: `synchost tokens create {}`", user.name, user.role.as_str(), user.name);
    Ok(())
}

/// `synchost users list`
pub fn list(config: &Path) -> Result<(), CommandError> {
    let state = open_state_only(config)?;
    let users = state.users().map_err(state_error)?;
    if users.is_empty() {
        say!("no users yet: `synchost users add NAME --role viewer|operator|approver|admin`");
    }
    for user in users {
        let on = user.pipelines.map(|p| p.join(", ")).unwrap_or_else(|| "every pipeline".into());
        say!("{:<24} {:<9} {on}  (since {})", user.name, user.role.as_str(), user.created_at);
    }
    Ok(())
}

/// `synchost users remove NAME`
pub fn remove(config: &Path, name: &str) -> Result<(), CommandError> {
    let state = open_state_only(config)?;
    state.remove_user(name).map_err(refused)?;
    say!("removed {name} and every token of theirs");
    Ok(())
}

/// `synchost tokens create USER [--label TEXT]`
pub fn create(config: &Path, user: &str, label: Option<&str>) -> Result<(), CommandError> {
    let state = open_state_only(config)?;
    let (id, token) = state.create_token(user, label).map_err(refused)?;
    // The token alone on stdout, so that scripts can take it; the rest on stderr.
    super::output::tell!("token {id} for {user}; it is shown this once, keep it somewhere safe (`synchost tokens revoke {id}` ends it):");
    say!("{token}");
    Ok(())
}

/// `synchost tokens list`
pub fn tokens(config: &Path) -> Result<(), CommandError> {
    let state = open_state_only(config)?;
    for token in state.tokens().map_err(state_error)? {
        let status = match (&token.revoked_at, &token.last_used_at) {
            (Some(at), _) => format!("revoked {at}"),
            (None, Some(at)) => format!("last used {at}"),
            (None, None) => "never used".into(),
        };
        say!("{:<5} {:<24} {:<20} made {}, {status}", token.id, token.user, token.label.unwrap_or_default(), token.created_at);
    }
    Ok(())
}

/// `synchost tokens revoke ID`
pub fn revoke(config: &Path, id: i64) -> Result<(), CommandError> {
    let state = open_state_only(config)?;
    state.revoke_token(id).map_err(refused)?;
    say!("token {id} revoked: requests with it are refused from now on");
    Ok(())
}
