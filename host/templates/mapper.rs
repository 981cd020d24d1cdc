//! A mapper: upper-cases the fields its settings name.

use serde::Deserialize;
use synchost_plugin_sdk::prelude::*;

#[derive(Deserialize)]
struct Settings {
    /// Fields to upper-case.
    uppercase: Vec<String>,
}

pub struct Upper(Settings);

impl Mapper for Upper {
    fn new(context: &Context) -> Result<Self, Error> {
        Ok(Upper(context.settings()?))
    }

    fn map(&self, _direction: Direction, records: Vec<Record>) -> Result<Vec<Mapped>, Error> {
        Ok(records
            .into_iter()
            .map(|mut record| {
                for name in &self.0.uppercase {
                    if let Some(text) = record.text(name).map(str::to_uppercase) {
                        record.set(name, text);
                    }
                }
                Mapped::Ok(record)
            })
            .collect())
    }

    fn validate(&self, _direction: Direction, records: &[Record]) -> Result<Vec<Vec<Violation>>, Error> {
        Ok(records.iter().map(|_| Vec::new()).collect())
    }
}

export_mapper!(Upper);

#[cfg(test)]
mod tests {
    use super::*;
    use synchost_plugin_sdk::testing::Harness;

    #[test]
    fn upper_cases_the_named_fields_only() {
        Harness::set("shout", serde_json::json!({ "uppercase": ["name"] }));
        let mapper = Upper::new(&Context::current().unwrap()).unwrap();
        let records = vec![Record::new("1").with("name", "Ada").with("city", "London")];
        let mapped = mapper.map(Direction::LeftToRight, records).unwrap();
        let Mapped::Ok(record) = &mapped[0] else { panic!("mapped: {mapped:?}") };
        assert_eq!(record.text("name"), Some("ADA"));
        assert_eq!(record.text("city"), Some("London"));
    }
}
