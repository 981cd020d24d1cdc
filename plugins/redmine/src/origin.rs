//! The origin of a record synchost created, kept in a Redmine custom field
//! (the `origin_field` setting), so that a create sent again after a crash or
//! a timeout finds the record the first sending made instead of making a
//! second one.

use serde_json::{json, Value as Json};
use synchost_plugin_sdk::prelude::*;

use crate::api::{encode, Purpose};
use crate::entities::Kind;
use crate::settings::OriginField;
use crate::{read_purpose, Redmine};

impl Redmine {
    /// The id of the origin custom field of `kind`'s records; none when the
    /// settings name no origin field or `kind` cannot keep one.
    pub(crate) fn origin_field_id(&self, kind: Kind) -> Result<Option<i64>, Error> {
        let name = match &self.settings.origin_field {
            None => return Ok(None),
            Some(_) if !kind.keeps_origin() => return Ok(None),
            Some(OriginField::Ids(ids)) => return Ok(Kind::origin_id(ids, kind)),
            Some(OriginField::Name(name)) => name,
        };
        if let Some(id) = self.origin_ids.borrow().get(&kind) {
            return Ok(Some(*id));
        }
        let by_name = |fields: &Json| -> Option<i64> {
            fields.as_array()?.iter().find(|f| f["name"] == name.as_str() && f.get("customized_type").is_none_or(|t| t == kind.customized_type()))?["id"].as_i64()
        };
        // Administrators see the list of custom fields; others see the
        // fields on a record (Redmine lists every field a record may have).
        let id = match self.api.get("/custom_fields.json", Purpose { action: "list custom fields", permission: "admin" }) {
            Ok(all) => by_name(&all["custom_fields"]),
            Err(error) if error.problem().code == "missing-permission" => {
                let sample = self.api.get(&format!("{}/{}.json?limit=1", self.scope_prefix(), kind.plural()), read_purpose(kind))?;
                sample[kind.plural()].as_array().and_then(|items| items.first()).and_then(|item| by_name(&item["custom_fields"]))
            }
            Err(error) => return Err(error),
        };
        let id = id.ok_or_else(|| {
            Error::new("unknown-origin-field", format!("Redmine has no {} custom field `{name}` that this account can see", kind.customized_type()))
                .with_hint(format!(
                    "create it in Redmine (Administration > Custom fields > New custom field > {}: format Text, name `{name}`, \"Used as a filter\" ticked{}); if it exists, give its id instead (origin_field = ID, the number in the address of its page), since this account sees it by name only on a record that has it; or remove origin_field from [endpoints.{}.settings]",
                    if kind == Kind::Issues { "Issues" } else { "Spent time" },
                    if kind == Kind::Issues { ", for all projects and trackers" } else { "" },
                    self.endpoint
                ))
        })?;
        self.origin_ids.borrow_mut().insert(kind, id);
        Ok(Some(id))
    }

    /// The record an earlier create with this origin made, if Redmine has it.
    pub(crate) fn find_by_origin(&self, kind: Kind, origin: &str) -> Result<Option<Record>, Error> {
        let Some(field) = self.origin_field_id(kind)? else { return Ok(None) };
        let mut path = format!("{}/{}.json?cf_{field}={}&limit=100", self.scope_prefix(), kind.plural(), encode(origin));
        if kind == Kind::Issues {
            path.push_str("&status_id=*");
        }
        let page = self.api.get(&path, read_purpose(kind))?;
        let items = page[kind.plural()].as_array().cloned().unwrap_or_default();
        // A custom field that is not "used as a filter" is ignored by Redmine,
        // which then lists everything: never take that for an answer.
        if items.iter().any(|item| origin_of(item, field) != Some(origin)) {
            return Err(self.not_a_filter(kind));
        }
        items.iter().min_by_key(|item| item["id"].as_i64()).map(|item| kind.to_record(item, &self.custom)).transpose()
    }

    /// Puts the origin into a create's body.
    pub(crate) fn stamp_origin(&self, kind: Kind, body: &mut Json, origin: &str) -> Result<(), Error> {
        let Some(field) = self.origin_field_id(kind)? else { return Ok(()) };
        let entry = json!({ "id": field, "value": origin });
        let record = &mut body[kind.singular()];
        match record.get_mut("custom_fields").and_then(Json::as_array_mut) {
            Some(values) => values.push(entry),
            None => record["custom_fields"] = Json::Array(vec![entry]),
        }
        Ok(())
    }

    /// Checks for `probe` that the origin field of `kind` exists and that
    /// Redmine searches by it.
    pub(crate) fn probe_origin(&self, kind: Kind) -> Option<Problem> {
        let field = match self.origin_field_id(kind) {
            Ok(Some(field)) => field,
            Ok(None) => return None,
            Err(error) => return Some(error.into_problem()),
        };
        let mut path = format!("{}/{}.json?cf_{field}={}&limit=1", self.scope_prefix(), kind.plural(), encode("synchost-probe: no record has this origin"));
        if kind == Kind::Issues {
            path.push_str("&status_id=*");
        }
        match self.api.get(&path, read_purpose(kind)) {
            Ok(page) if page["total_count"].as_u64().unwrap_or(0) > 0 => Some(self.not_a_filter(kind).into_problem()),
            Ok(_) => None,
            Err(error) => Some(error.into_problem()),
        }
    }

    fn not_a_filter(&self, kind: Kind) -> Error {
        let name = self.settings.origin_field.as_ref().map(ToString::to_string).unwrap_or_default();
        Error::new("origin-field-not-a-filter", format!("Redmine does not search {} by the custom field `{name}`", kind.name())).with_hint(format!(
            "tick \"Used as a filter\" in the settings of custom field `{name}` (Administration > Custom fields); until then, a create repeated after an interruption fails rather than risk a second record"
        ))
    }
}

/// The origin a Redmine record keeps in the custom field `field`.
fn origin_of(item: &Json, field: i64) -> Option<&str> {
    item["custom_fields"].as_array()?.iter().find(|cf| cf["id"] == field)?["value"].as_str()
}
