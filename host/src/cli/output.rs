//! Printing for people (aligned tables) and for programs (JSON).
//!
//! Everything the command line prints goes through [`say!`] (stdout) or
//! [`tell!`] (stderr): secrets are masked, and a closed pipe (`| head`) ends
//! the command quietly instead of with a panic.

use std::io::Write;

/// Prints a line to stdout, secrets masked.
macro_rules! say {
    () => { $crate::cli::output::write_line(false, "") };
    ($($arg:tt)*) => { $crate::cli::output::write_line(false, &format!($($arg)*)) };
}

/// Prints a line to stderr, secrets masked.
macro_rules! tell {
    ($($arg:tt)*) => { $crate::cli::output::write_line(true, &format!($($arg)*)) };
}

pub(crate) use {say, tell};

/// Writes `text` and a newline with secrets masked. A closed stdout ends the
/// process with success: the reader has what it wanted.
pub fn write_line(to_stderr: bool, text: &str) {
    let text = crate::secrets::redact(text);
    let result = if to_stderr {
        writeln!(std::io::stderr().lock(), "{text}")
    } else {
        writeln!(std::io::stdout().lock(), "{text}")
    };
    if let Err(error) = result
        && error.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

use crate::model::Record;

/// A record as a JSON object.
pub fn record_json(record: &Record) -> serde_json::Value {
    let fields: serde_json::Map<String, serde_json::Value> =
        record.fields.iter().map(|f| (f.name.clone(), f.value.to_json())).collect();
    serde_json::json!({
        "id": record.id,
        "version": record.version,
        "deleted": record.deleted,
        "fields": fields,
    })
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
                    _ => r.fields.iter().find(|f| &f.name == column).map(|f| f.value.to_text()).unwrap_or_default(),
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
