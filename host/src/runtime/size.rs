//! Approximate sizes of what plugins return, to enforce `max_output`.

use crate::model::{EntityDef, Mapped, Outcome, Problem, ReadBatch, Record, Value, Violation};

/// About how many bytes a value holds once lifted out of the guest.
pub trait OutputSize {
    fn output_size(&self) -> u64;
}

impl OutputSize for Value {
    fn output_size(&self) -> u64 {
        16 + match self {
            Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Timestamp(s) | Value::Json(s) => s.len() as u64,
            Value::Bytes(b) => b.len() as u64,
            _ => 0,
        }
    }
}

impl OutputSize for Record {
    fn output_size(&self) -> u64 {
        let header = self.id.len() + self.version.as_ref().map_or(0, String::len) + 32;
        header as u64 + self.fields.iter().map(|f| f.name.len() as u64 + f.value.output_size()).sum::<u64>()
    }
}

impl OutputSize for ReadBatch {
    fn output_size(&self) -> u64 {
        self.records.output_size() + self.cursor.as_ref().map_or(0, |c| c.len() as u64)
    }
}

impl OutputSize for EntityDef {
    fn output_size(&self) -> u64 {
        (self.name.len() + self.key.len() + self.fields.iter().map(|f| f.name.len() + 8).sum::<usize>()) as u64
    }
}

impl OutputSize for Outcome {
    fn output_size(&self) -> u64 {
        match self {
            Outcome::Applied(a) => (a.id.len() + a.version.as_ref().map_or(0, String::len)) as u64,
            Outcome::Rejected(p) => p.output_size(),
            Outcome::Conflict(r) => r.output_size(),
        }
    }
}

impl OutputSize for Problem {
    fn output_size(&self) -> u64 {
        (self.code.len() + self.message.len() + self.hint.as_ref().map_or(0, String::len)) as u64
    }
}

impl OutputSize for Violation {
    fn output_size(&self) -> u64 {
        (self.message.len() + self.hint.as_ref().map_or(0, String::len) + 16) as u64
    }
}

impl OutputSize for Mapped {
    fn output_size(&self) -> u64 {
        match self {
            Mapped::Ok(record) => record.output_size(),
            Mapped::Invalid(violations) => violations.output_size(),
        }
    }
}

impl<T: OutputSize> OutputSize for Vec<T> {
    fn output_size(&self) -> u64 {
        self.iter().map(OutputSize::output_size).sum::<u64>() + 8
    }
}

impl OutputSize for Option<String> {
    fn output_size(&self) -> u64 {
        self.as_ref().map_or(0, |text| text.len() as u64) + 8
    }
}
