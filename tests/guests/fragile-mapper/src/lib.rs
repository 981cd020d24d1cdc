//! A test guest: a mapper that passes records through unchanged, but panics on
//! any record holding the text `poison` and never returns on one holding
//! `hang`. The engine must fail that record only.

use synchost_plugin_sdk::prelude::*;

/// The fragile mapper.
pub struct Fragile;

impl Mapper for Fragile {
    fn new(_context: &Context) -> Result<Self, Error> {
        Ok(Fragile)
    }

    fn map(&self, _direction: Direction, records: Vec<Record>) -> Result<Vec<Mapped>, Error> {
        for record in &records {
            if record.fields.iter().any(|f| f.value.as_str() == Some("poison")) {
                panic!("record {} is poison", record.id);
            }
            if record.fields.iter().any(|f| f.value.as_str() == Some("hang")) {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
        }
        Ok(records.into_iter().map(Mapped::Ok).collect())
    }

    fn validate(&self, _direction: Direction, records: &[Record]) -> Result<Vec<Vec<Violation>>, Error> {
        Ok(records.iter().map(|_| Vec::new()).collect())
    }
}

export_mapper!(Fragile);
