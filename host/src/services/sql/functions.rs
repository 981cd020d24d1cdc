//! SQL functions the host puts in place of SQLite's own on plugin connections.
//!
//! SQLite's `instr`, `replace` and two-argument `trim`, `ltrim` and `rtrim`
//! do work proportional to the *product* of their arguments' lengths, all
//! inside one step of the virtual machine, where the progress handler (and
//! so the call's deadline) cannot stop them: `instr` of two megabyte strings
//! runs for minutes. These versions give SQLite's results in time linear in
//! their input (a two-way substring search, a set of characters to trim),
//! and refuse a `replace` whose result would be longer than the call allows.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

/// Installs the functions. `longest` is the longest value the running call
/// may build, in bytes (SQLite's `SQLITE_LIMIT_LENGTH` for the call).
pub fn install(connection: &Connection, longest: Arc<AtomicU64>) -> rusqlite::Result<()> {
    // Innocuous, as SQLite's own are: views and triggers of the user's schema
    // may use them while the schema is untrusted.
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_INNOCUOUS;
    connection.create_scalar_function("instr", 2, flags, instr)?;
    connection.create_scalar_function("replace", 3, flags, move |ctx| replace(ctx, longest.load(Ordering::Relaxed)))?;
    connection.create_scalar_function("trim", 2, flags, |ctx| trim(ctx, Ends::Both))?;
    connection.create_scalar_function("ltrim", 2, flags, |ctx| trim(ctx, Ends::Start))?;
    connection.create_scalar_function("rtrim", 2, flags, |ctx| trim(ctx, Ends::End))?;
    Ok(())
}

/// A value as SQLite turns it into text; `None` for NULL.
fn text(value: ValueRef<'_>) -> Option<String> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(real_text(f)),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

/// A real number as SQLite prints it: whole numbers keep a `.0`.
fn real_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 { format!("{f:.1}") } else { format!("{f}") }
}

/// `instr(X, Y)`: one more than the characters (bytes, for two blobs)
/// before the first `Y` in `X`; 0 when there is none; NULL for a NULL.
fn instr(ctx: &Context<'_>) -> rusqlite::Result<Option<i64>> {
    let (haystack, needle) = (ctx.get_raw(0), ctx.get_raw(1));
    if let (ValueRef::Blob(h), ValueRef::Blob(n)) = (haystack, needle) {
        return Ok(Some(memchr::memmem::find(h, n).map_or(0, |at| at as i64 + 1)));
    }
    let (Some(haystack), Some(needle)) = (text(haystack), text(needle)) else { return Ok(None) };
    Ok(Some(haystack.find(&needle).map_or(0, |at| haystack[..at].chars().count() as i64 + 1)))
}

/// `replace(X, Y, Z)`: every `Y` in `X` replaced by `Z`; `X` itself when `Y`
/// is empty; NULL for a NULL.
fn replace(ctx: &Context<'_>, longest: u64) -> rusqlite::Result<Option<String>> {
    let (Some(subject), Some(pattern), Some(replacement)) = (text(ctx.get_raw(0)), text(ctx.get_raw(1)), text(ctx.get_raw(2)))
    else {
        return Ok(None);
    };
    if pattern.is_empty() {
        return Ok(Some(subject));
    }
    let found = subject.matches(&pattern).count() as u64;
    let length = subject.len() as u64 - found * pattern.len() as u64 + found * replacement.len() as u64;
    if length > longest {
        return Err(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG), None));
    }
    Ok(Some(subject.replace(&pattern, &replacement)))
}

#[derive(Clone, Copy)]
enum Ends {
    Start,
    End,
    Both,
}

/// `trim(X, Y)` and its one-ended forms: `X` without the characters of `Y` at its ends.
fn trim(ctx: &Context<'_>, ends: Ends) -> rusqlite::Result<Option<Value>> {
    let (Some(subject), Some(set)) = (text(ctx.get_raw(0)), text(ctx.get_raw(1))) else { return Ok(None) };
    let set: HashSet<char> = set.chars().collect();
    let trimmed = match ends {
        Ends::Start => subject.trim_start_matches(|c| set.contains(&c)),
        Ends::End => subject.trim_end_matches(|c| set.contains(&c)),
        Ends::Both => subject.trim_matches(|c| set.contains(&c)),
    };
    Ok(Some(Value::Text(trimmed.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        install(&connection, Arc::new(AtomicU64::new(1 << 20))).unwrap();
        connection
    }

    fn one<T: rusqlite::types::FromSql>(connection: &Connection, sql: &str) -> T {
        connection.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn results_are_sqlites() {
        let c = connection();
        assert_eq!(one::<i64>(&c, "SELECT instr('héllo wörld', 'wö')"), 7);
        assert_eq!(one::<i64>(&c, "SELECT instr('abc', 'x')"), 0);
        assert_eq!(one::<i64>(&c, "SELECT instr('abc', '')"), 1);
        assert_eq!(one::<i64>(&c, "SELECT instr(x'00ff01', x'01')"), 3);
        assert_eq!(one::<Option<i64>>(&c, "SELECT instr(NULL, 'a')"), None);
        assert_eq!(one::<i64>(&c, "SELECT instr(12345, 34)"), 3);
        assert_eq!(one::<String>(&c, "SELECT replace('a-b-c', '-', '+')"), "a+b+c");
        assert_eq!(one::<String>(&c, "SELECT replace('abc', '', 'x')"), "abc");
        assert_eq!(one::<Option<String>>(&c, "SELECT replace('abc', NULL, 'x')"), None);
        assert_eq!(one::<String>(&c, "SELECT trim('xxhixx', 'x')"), "hi");
        assert_eq!(one::<String>(&c, "SELECT ltrim('xxhixx', 'x')"), "hixx");
        assert_eq!(one::<String>(&c, "SELECT rtrim('xxhixx', 'x')"), "xxhi");
        assert_eq!(one::<String>(&c, "SELECT trim('  hi  ')"), "hi");
    }

    #[test]
    fn the_worst_case_of_the_quadratic_originals_is_linear() {
        let c = connection();
        let started = std::time::Instant::now();
        let found: i64 = one(&c, "SELECT instr(printf('%.*c', 1000000, 'a'), printf('%.*c', 500000, 'a') || 'b')");
        assert_eq!(found, 0);
        let trimmed: String = one(&c, "SELECT trim(printf('%.*c', 1000000, 'a') || 'b', printf('%.*c', 500000, 'c') || 'a')");
        assert_eq!(trimmed, "b");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn a_replace_longer_than_the_call_allows_is_refused() {
        let c = connection();
        let error = c.query_row("SELECT replace(printf('%.*c', 100000, 'a'), 'a', 'bbbbbbbbbbbbbbbbbbbb')", [], |r| r.get::<_, String>(0));
        assert_eq!(error.unwrap_err().sqlite_error_code(), Some(rusqlite::ErrorCode::TooBig));
    }
}
