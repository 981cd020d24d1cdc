//! A test guest that declares a plugin API version this host does not support:
//! the host must refuse it before instantiation, naming both versions.

use synchost_plugin_sdk::prelude::*;

/// Passes records through unchanged.
pub struct FutureMapper;

impl Mapper for FutureMapper {
    fn new(_context: &Context) -> Result<Self, Error> {
        Ok(FutureMapper)
    }

    fn map(&self, _direction: Direction, records: Vec<Record>) -> Result<Vec<Mapped>, Error> {
        Ok(records.into_iter().map(Mapped::Ok).collect())
    }

    fn validate(&self, _direction: Direction, records: &[Record]) -> Result<Vec<Vec<Violation>>, Error> {
        Ok(records.iter().map(|_| Vec::new()).collect())
    }
}

export_mapper!(FutureMapper, api_version = "0.9.0");
