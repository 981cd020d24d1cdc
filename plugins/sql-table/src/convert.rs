//! Conversions between column values and typed record values.

use synchost_plugin_sdk::{Error, FieldDef, FieldType, Value};

use crate::schema::Column;

/// A value as read from a column, typed as the field declares it. A value that
/// does not fit the declared type is passed on as it is, never dropped.
pub fn from_column(kind: FieldType, raw: Value) -> Value {
    match (kind, raw) {
        (_, Value::Null) => Value::Null,
        (FieldType::Boolean, Value::Integer(n)) => Value::Boolean(n != 0),
        (FieldType::Boolean, Value::Text(s)) if matches!(s.as_str(), "true" | "false") => {
            Value::Boolean(s == "true")
        }
        (FieldType::Integer, Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            Value::Integer(f as i64)
        }
        (FieldType::Integer, Value::Text(s)) if s.parse::<i64>().is_ok() => {
            Value::Integer(s.parse().unwrap_or_default())
        }
        (FieldType::Float, Value::Integer(n)) => Value::Float(n as f64),
        (FieldType::Float, Value::Text(s)) if s.parse::<f64>().is_ok() => {
            Value::Float(s.parse().unwrap_or_default())
        }
        (FieldType::Decimal, Value::Integer(n)) => Value::Decimal(n.to_string()),
        (FieldType::Decimal, Value::Float(f)) => Value::Decimal(f.to_string()),
        (FieldType::Decimal, Value::Text(s)) => Value::Decimal(s),
        (FieldType::Text, Value::Integer(n)) => Value::Text(n.to_string()),
        (FieldType::Text, Value::Float(f)) => Value::Text(f.to_string()),
        (FieldType::Date, Value::Text(s)) => Value::Date(s),
        (FieldType::Timestamp, Value::Text(s)) => Value::Timestamp(s),
        (FieldType::Json, Value::Text(s)) => Value::Json(s),
        (FieldType::Bytes, Value::Text(s)) => Value::Bytes(s.into_bytes()),
        (_, other) => other,
    }
}

fn type_name(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Boolean => "boolean",
        FieldType::Integer => "integer",
        FieldType::Float => "float",
        FieldType::Decimal => "decimal",
        FieldType::Text => "text",
        FieldType::Date => "date",
        FieldType::Timestamp => "timestamp",
        FieldType::Bytes => "bytes",
        FieldType::Json => "json",
    }
}

fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// Checks a value against the field it is written to, with the coercions that
/// lose nothing (integer into float or decimal, well-formed text into a date).
pub fn to_column(field: &FieldDef, value: Value) -> Result<Value, Error> {
    let mismatch = |value: &Value| {
        Error::new(
            "type-mismatch",
            format!(
                "field `{}` expects {}, got {} `{}`",
                field.name,
                type_name(field.type_),
                value.field_type().map_or("null", type_name),
                value.to_display_string()
            ),
        )
        .with_hint(format!("map the value to {} before it is written", type_name(field.type_)))
    };
    match (field.type_, value) {
        (_, Value::Null) if field.nullable => Ok(Value::Null),
        (_, Value::Null) => Err(Error::new(
            "required-field",
            format!("field `{}` may not be empty (NOT NULL column)", field.name),
        )
        .with_hint("give the field a value on the source side, or a default in the mapping")),
        (FieldType::Float, Value::Integer(n)) => Ok(Value::Float(n as f64)),
        (FieldType::Decimal, Value::Integer(n)) => Ok(Value::Decimal(n.to_string())),
        (FieldType::Decimal, Value::Float(f)) => Ok(Value::Decimal(f.to_string())),
        (FieldType::Decimal, Value::Text(s)) if s.trim().parse::<f64>().is_ok() => {
            Ok(Value::Decimal(s.trim().to_owned()))
        }
        (FieldType::Date, Value::Text(s)) if is_iso_date(&s) => Ok(Value::Date(s)),
        (FieldType::Date, Value::Timestamp(s)) if s.len() >= 10 && is_iso_date(&s[..10]) => {
            Ok(Value::Date(s[..10].to_owned()))
        }
        (FieldType::Text, v @ (Value::Decimal(_) | Value::Date(_) | Value::Timestamp(_) | Value::Json(_))) => {
            Ok(Value::Text(v.to_display_string()))
        }
        (FieldType::Text, Value::Integer(n)) => Ok(Value::Text(n.to_string())),
        (kind, value) if value.field_type() == Some(kind) => Ok(value),
        (_, value) => Err(mismatch(&value)),
    }
}

/// A record id as a key value of the key column's type.
pub fn id_to_key(key: &Column, id: &str) -> Result<Value, Error> {
    match key.kind {
        FieldType::Integer => id.parse().map(Value::Integer).map_err(|_| {
            Error::new("bad-id", format!("id `{id}` is not an integer, but key column `{}` is", key.name))
        }),
        _ => Ok(Value::Text(id.to_owned())),
    }
}

/// A key or version value as the string ids and versions are made of.
pub fn to_id(value: &Value) -> String {
    value.to_display_string()
}

/// A version string back as a value of the updated_at column's type.
pub fn version_to_value(column: &Column, version: &str) -> Value {
    match column.kind {
        FieldType::Integer => version.parse().map(Value::Integer).unwrap_or(Value::Text(version.to_owned())),
        _ => Value::Text(version.to_owned()),
    }
}
