//! `crm-mapper`: field mapping and validation between two CRM instances.
//!
//! Rules are written in the left side's field names (the canonical names):
//! - `renames`: left field -> right field.
//! - `phones`, `emails`: fields normalised to E.164 (`+4930123456`) and to
//!   lower case; `default_country_code` turns national numbers international.
//! - `dates`: text dates (`31.12.2026`, `2026/12/31`) made ISO 8601 dates.
//! - `lookups`: a value table per field (left value -> right value, text or a
//!   number), used backwards from right to left; a value with no entry makes
//!   the record invalid.
//! - `derived`: fields computed from a template (`"{last_name}, {first_name}"`),
//!   left to right only.
//! - `required`: fields that must not be empty.
//!
//! `validate` reports every rule a record breaks, each with a hint.
//!
//! # Layout
//! - `rules`: the settings and the mapping and validation logic, plain Rust
//!   (also compiled natively, for unit tests and the host's benchmark).

pub mod rules;

use synchost_plugin_sdk::prelude::*;

pub use rules::{CrmRules, RuleSettings};

impl Mapper for CrmRules {
    fn new(context: &Context) -> Result<Self, Error> {
        Ok(CrmRules::new(context.settings()?))
    }

    fn map(&self, direction: Direction, records: Vec<Record>) -> Result<Vec<Mapped>, Error> {
        Ok(records.into_iter().map(|record| self.map_record(direction, record)).collect())
    }

    fn validate(&self, direction: Direction, records: &[Record]) -> Result<Vec<Vec<Violation>>, Error> {
        Ok(records.iter().map(|record| self.violations(direction, record)).collect())
    }
}

export_mapper!(CrmRules);
