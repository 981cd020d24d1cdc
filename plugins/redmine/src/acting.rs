//! Who a change is made by (P2): a change the host makes for a person (an
//! approver's decision) goes into Redmine in their name when the endpoint's
//! account is an administrator and a Redmine user has their synchost user
//! name as login (Redmine's `X-Redmine-Switch-User`): the journal shows
//! them, not the service account. Otherwise an issue's journal entry gets a
//! note naming them.

use serde_json::Value as Json;
use synchost_plugin_sdk::Error;

use crate::api::Purpose;
use crate::entities::Kind;
use crate::Redmine;

impl Redmine {
    /// Sends `body` with `method` to `path`, in the name of `person` where
    /// Redmine lets this account act for them, else naming them in a note
    /// (issues only: other records keep no journal).
    pub(crate) fn change_for(&self, kind: Kind, method: &str, path: &str, mut body: Json, person: Option<&str>, purpose: Purpose<'_>) -> Result<Option<Json>, Error> {
        let Some(person) = person else { return self.api.change(method, path, Some(&body), purpose) };
        if self.account_is_admin()? {
            match self.api.change_as(Some(person), method, path, Some(&body), purpose) {
                // No such active user in Redmine: made by the account, with a note.
                Err(error) if error.problem().code == "unknown-user" => {}
                answer => return answer,
            }
        }
        if kind == Kind::Issues && body["issue"].get("notes").is_none_or(Json::is_null) {
            body["issue"]["notes"] = Json::String(format!("synchost: changed on behalf of {person}"));
        }
        self.api.change(method, path, Some(&body), purpose)
    }

    /// Whether the endpoint's account is a Redmine administrator (asked once per call).
    fn account_is_admin(&self) -> Result<bool, Error> {
        if let Some(admin) = self.account_admin.get() {
            return Ok(*admin);
        }
        let admin = self.current_user()?.get("admin").and_then(Json::as_bool).unwrap_or(false);
        Ok(*self.account_admin.get_or_init(|| admin))
    }
}
