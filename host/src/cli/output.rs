//! Printing records for people (aligned tables) and for programs (JSON).

use crate::runtime::bindings::{Record, Value};

/// A value as JSON: dates, timestamps and decimals stay exact strings.
pub fn value_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Boolean(b) => (*b).into(),
        Value::Integer(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
        Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Timestamp(s) => s.clone().into(),
        Value::Bytes(b) => hex::encode(b).into(),
        Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| s.clone().into()),
    }
}

/// A record as a JSON object.
pub fn record_json(record: &Record) -> serde_json::Value {
    let fields: serde_json::Map<String, serde_json::Value> =
        record.fields.iter().map(|f| (f.name.clone(), value_json(&f.value))).collect();
    serde_json::json!({
        "id": record.id,
        "version": record.version,
        "deleted": record.deleted,
        "fields": fields,
    })
}

/// A value as a table cell.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "∅".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bytes(b) => format!("<{} bytes>", b.len()),
        Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Timestamp(s) | Value::Json(s) => s.clone(),
    }
}

/// Records as an aligned text table: id, version, deleted, then every field.
pub fn records_table(records: &[Record]) -> String {
    let mut columns: Vec<String> = vec!["id".into(), "version".into(), "deleted".into()];
    for record in records {
        for field in &record.fields {
            if !columns.contains(&field.name) {
                columns.push(field.name.clone());
            }
        }
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            columns
                .iter()
                .enumerate()
                .map(|(i, column)| match i {
                    0 => r.id.clone(),
                    1 => r.version.clone().unwrap_or_default(),
                    2 => if r.deleted { "yes".into() } else { String::new() },
                    _ => r.fields.iter().find(|f| &f.name == column).map(|f| value_text(&f.value)).unwrap_or_default(),
                })
                .map(|cell| truncate(&cell, 40))
                .collect()
        })
        .collect();
    text_table(&columns, &rows)
}

/// Rows under a header, each column as wide as its widest cell, with a rule
/// under the header.
pub fn text_table(columns: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([columns[i].chars().count()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[String]| {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_owned()
    };
    let mut out = line(columns);
    out.push('\n');
    out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    for row in rows {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}
