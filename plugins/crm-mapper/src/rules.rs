//! The CRM mapping rules, independent of the plugin boundary.

use std::collections::BTreeMap;

use serde::Deserialize;
use synchost_plugin_sdk::{Direction, Mapped, Record, Value, Violation};

/// The mapper's settings (`[mappers.NAME.settings]`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    /// Left field name -> right field name.
    #[serde(default)]
    pub renames: BTreeMap<String, String>,
    /// Phone fields, normalised to E.164.
    #[serde(default)]
    pub phones: Vec<String>,
    /// Country code for national numbers (`0` prefix), without `+`, e.g. `49`.
    pub default_country_code: Option<String>,
    /// Email fields, trimmed and lower-cased.
    #[serde(default)]
    pub emails: Vec<String>,
    /// Date fields given as text in a local format.
    #[serde(default)]
    pub dates: Vec<String>,
    /// Per field, left value -> right value (text, or a number for fields
    /// that hold ids on the right, e.g. a work item type -> a tracker id).
    #[serde(default)]
    pub lookups: BTreeMap<String, BTreeMap<String, LookupValue>>,
    /// Computed field -> template with `{field}` placeholders.
    #[serde(default)]
    pub derived: BTreeMap<String, String>,
    /// Fields that must have a value.
    #[serde(default)]
    pub required: Vec<String>,
}

/// A value in a lookup table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum LookupValue {
    Integer(i64),
    Text(String),
}

impl LookupValue {
    fn to_value(&self) -> Value {
        match self {
            LookupValue::Integer(i) => Value::Integer(*i),
            LookupValue::Text(t) => Value::Text(t.clone()),
        }
    }

    fn key(&self) -> String {
        match self {
            LookupValue::Integer(i) => i.to_string(),
            LookupValue::Text(t) => t.clone(),
        }
    }
}

impl From<&str> for LookupValue {
    fn from(text: &str) -> Self {
        LookupValue::Text(text.to_owned())
    }
}

/// Settings turned into the lookup structures the rules use per record.
#[derive(Debug, Clone)]
pub struct CrmRules {
    settings: RuleSettings,
    /// Right field name -> left field name.
    renames_back: BTreeMap<String, String>,
    /// Per field, right value (as text) -> left value.
    lookups_back: BTreeMap<String, BTreeMap<String, LookupValue>>,
}

fn violation(field: &str, message: String, hint: String) -> Violation {
    Violation { field: Some(field.to_owned()), message, hint: Some(hint) }
}

impl CrmRules {
    /// Prepares the rules.
    pub fn new(settings: RuleSettings) -> Self {
        let renames_back = settings.renames.iter().map(|(l, r)| (r.clone(), l.clone())).collect();
        let lookups_back = settings
            .lookups
            .iter()
            .map(|(field, table)| (field.clone(), table.iter().map(|(l, r)| (r.key(), LookupValue::Text(l.clone()))).collect()))
            .collect();
        CrmRules { settings, renames_back, lookups_back }
    }

    /// Maps one record in the given direction.
    pub fn map_record(&self, direction: Direction, mut record: Record) -> Mapped {
        if direction == Direction::RightToLeft {
            self.rename(&mut record, &self.renames_back);
        }
        self.normalise(&mut record);
        let lookups = match direction {
            Direction::LeftToRight => &self.settings.lookups,
            Direction::RightToLeft => &self.lookups_back,
        };
        let mut violations = Vec::new();
        for (field, table) in lookups {
            let Some(value) = record.get(field).filter(|v| !v.is_null()).map(Value::to_display_string) else { continue };
            let value = value.as_str();
            match table.get(value) {
                Some(mapped) => record.set(field, mapped.to_value()),
                None => violations.push(violation(
                    field,
                    format!("`{field}` value `{value}` has no counterpart on the other side"),
                    format!("add `{value}` to lookups.{field} in the mapper settings, or correct the record"),
                )),
            }
        }
        if !violations.is_empty() {
            return Mapped::Invalid(violations);
        }
        match direction {
            Direction::LeftToRight => {
                for (field, template) in &self.settings.derived {
                    let value = render(template, &record);
                    record.set(field, value);
                }
                self.rename(&mut record, &self.settings.renames);
            }
            Direction::RightToLeft => {
                for field in self.settings.derived.keys() {
                    record.take(field);
                }
            }
        }
        Mapped::Ok(record)
    }

    /// Every rule a record breaks. The record is in the target's shape for
    /// `direction` (as `map_record` returned it).
    pub fn violations(&self, direction: Direction, record: &Record) -> Vec<Violation> {
        let mut canonical = record.clone();
        if direction == Direction::LeftToRight {
            self.rename(&mut canonical, &self.renames_back);
        }
        let mut found = Vec::new();
        for field in &self.settings.required {
            if canonical.get(field).is_none_or(|v| v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty())) {
                found.push(violation(
                    field,
                    format!("`{field}` is required but empty"),
                    format!("fill in `{field}` in the source record"),
                ));
            }
        }
        for field in &self.settings.emails {
            if let Some(email) = canonical.text(field).filter(|e| !e.is_empty())
                && !is_email(email)
            {
                found.push(violation(
                    field,
                    format!("`{field}` value `{email}` is not an email address"),
                    "write it as name@example.com".into(),
                ));
            }
        }
        for field in &self.settings.phones {
            if let Some(phone) = canonical.text(field).filter(|p| !p.is_empty())
                && !is_e164(phone)
            {
                found.push(violation(
                    field,
                    format!("`{field}` value `{phone}` is not a phone number with country code"),
                    "write it with its country code, e.g. +49 30 1234567, or set default_country_code".into(),
                ));
            }
        }
        for field in &self.settings.dates {
            if let Some(value) = canonical.get(field)
                && !value.is_null()
                && !matches!(value, Value::Date(_))
            {
                found.push(violation(
                    field,
                    format!("`{field}` value `{}` is not a date", value.to_display_string()),
                    "write it as YYYY-MM-DD, DD.MM.YYYY or YYYY/MM/DD".into(),
                ));
            }
        }
        found
    }

    fn rename(&self, record: &mut Record, names: &BTreeMap<String, String>) {
        for field in &mut record.fields {
            if let Some(to) = names.get(&field.name) {
                field.name.clone_from(to);
            }
        }
    }

    fn normalise(&self, record: &mut Record) {
        for field in &mut record.fields {
            let name = field.name.as_str();
            let Value::Text(text) = &field.value else { continue };
            if self.settings.emails.iter().any(|f| f == name) {
                field.value = Value::Text(text.trim().to_lowercase());
            } else if self.settings.phones.iter().any(|f| f == name) {
                field.value = Value::Text(normalise_phone(text, self.settings.default_country_code.as_deref()));
            } else if self.settings.dates.iter().any(|f| f == name)
                && let Some(iso) = parse_date(text)
            {
                field.value = Value::Date(iso);
            }
        }
    }
}

/// Keeps the digits, as E.164 where the number says its country: `+49 (30) 123-4567` -> `+49301234567`.
pub fn normalise_phone(raw: &str, default_country_code: Option<&str>) -> String {
    let trimmed = raw.trim();
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return trimmed.to_owned();
    }
    if trimmed.starts_with('+') {
        format!("+{digits}")
    } else if let Some(rest) = digits.strip_prefix("00") {
        format!("+{rest}")
    } else if let (Some(rest), Some(cc)) = (digits.strip_prefix('0'), default_country_code) {
        format!("+{cc}{rest}")
    } else {
        trimmed.to_owned()
    }
}

fn is_e164(phone: &str) -> bool {
    phone.strip_prefix('+').is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

fn is_email(email: &str) -> bool {
    let mut parts = email.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.contains(char::is_whitespace)
        }
        _ => false,
    }
}

/// ISO `YYYY-MM-DD` from `YYYY-MM-DD`, `DD.MM.YYYY` or `YYYY/MM/DD`.
pub fn parse_date(text: &str) -> Option<String> {
    let text = text.trim();
    let numbers: Vec<&str> = text.split(['-', '.', '/']).collect();
    let (y, m, d) = match numbers.as_slice() {
        [y, m, d] if y.len() == 4 => (*y, *m, *d),
        [d, m, y] if y.len() == 4 && text.contains('.') => (*y, *m, *d),
        _ => return None,
    };
    let (y, m, d): (u32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

fn render(template: &str, record: &Record) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                let name = &rest[start + 1..start + end];
                out.push_str(&record.get(name).map(Value::to_display_string).unwrap_or_default());
                rest = &rest[start + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> CrmRules {
        CrmRules::new(RuleSettings {
            renames: [("phone".into(), "phone_number".into())].into(),
            phones: vec!["phone".into()],
            default_country_code: Some("49".into()),
            emails: vec!["email".into()],
            dates: vec!["since".into()],
            lookups: [("status".into(), [("A".into(), "active".into())].into())].into(),
            derived: [("display_name".into(), "{last_name}, {first_name}".into())].into(),
            required: vec!["email".into()],
        })
    }

    #[test]
    fn maps_both_ways() {
        let record = Record::new("1")
            .with("first_name", "Ada")
            .with("last_name", "Lovelace")
            .with("phone", "030 123-4567")
            .with("email", " Ada@Example.COM ")
            .with("since", "31.12.2025")
            .with("status", "A");
        let Mapped::Ok(right) = rules().map_record(Direction::LeftToRight, record) else { panic!("invalid") };
        assert_eq!(right.text("phone_number"), Some("+49301234567"));
        assert_eq!(right.text("email"), Some("ada@example.com"));
        assert_eq!(right.get("since"), Some(&Value::Date("2025-12-31".into())));
        assert_eq!(right.text("status"), Some("active"));
        assert_eq!(right.text("display_name"), Some("Lovelace, Ada"));
        assert!(rules().violations(Direction::LeftToRight, &right).is_empty());

        let Mapped::Ok(left) = rules().map_record(Direction::RightToLeft, right) else { panic!("invalid") };
        assert_eq!(left.text("phone"), Some("+49301234567"));
        assert_eq!(left.text("status"), Some("A"));
        assert_eq!(left.get("display_name"), None);
    }

    #[test]
    fn reports_every_violation_with_hints() {
        let record = Record::new("1").with("phone_number", "12").with("email", "nope").with("since", "soon");
        let found = rules().violations(Direction::LeftToRight, &record);
        let fields: Vec<_> = found.iter().filter_map(|v| v.field.as_deref()).collect();
        assert_eq!(fields, ["email", "phone", "since"]);
        assert!(found.iter().all(|v| v.hint.is_some()));
        let unknown = Record::new("2").with("status", "Q");
        assert!(matches!(rules().map_record(Direction::LeftToRight, unknown), Mapped::Invalid(v) if v.len() == 1));
    }
}
