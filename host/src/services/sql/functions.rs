//! SQL functions the host puts in place of SQLite's own on plugin connections.
//!
//! SQLite's `instr`, `replace`, two-argument `trim`, `ltrim` and `rtrim`,
//! `like` and `glob` do work proportional to the *product* of their
//! arguments' lengths, all inside one step of the virtual machine, where the
//! progress handler (and so the call's deadline) cannot stop them. These
//! versions give SQLite's results, on the same bytes: the substring
//! functions in time linear in their input (a two-way search, a set of
//! characters to trim); every one of them looks at the call's deadline
//! (`LIKE` and `GLOB` while they match) and stops with `SQLITE_INTERRUPT`;
//! `replace` refuses a result longer than the call allows.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::Connection;

/// Whether the running call must stop (its deadline passed, or it was given up).
pub type Stop = Arc<dyn Fn() -> bool + Send + Sync>;

/// Installs the functions. `longest` is the longest value the running
/// statement may build, in bytes (its `SQLITE_LIMIT_LENGTH`).
pub fn install(connection: &Connection, longest: Arc<AtomicU64>, stop: Stop) -> rusqlite::Result<()> {
    // Innocuous, as SQLite's own are: views and triggers of the user's schema
    // may use them while the schema is untrusted.
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_INNOCUOUS;
    let checked = |stop: &Stop| -> rusqlite::Result<()> { if stop() { Err(interrupted()) } else { Ok(()) } };
    let s = stop.clone();
    connection.create_scalar_function("instr", 2, flags, move |ctx| checked(&s).and_then(|()| instr(ctx)))?;
    let s = stop.clone();
    connection.create_scalar_function("replace", 3, flags, move |ctx| {
        checked(&s).and_then(|()| replace(ctx, longest.load(Ordering::Relaxed)))
    })?;
    for (name, ends) in [("trim", Ends::Both), ("ltrim", Ends::Start), ("rtrim", Ends::End)] {
        let s = stop.clone();
        connection.create_scalar_function(name, 2, flags, move |ctx| checked(&s).and_then(|()| trim(ctx, ends)))?;
    }
    for arguments in [2, 3] {
        let s = stop.clone();
        connection.create_scalar_function("like", arguments, flags, move |ctx| like(ctx, &s))?;
    }
    let s = stop;
    connection.create_scalar_function("glob", 2, flags, move |ctx| glob(ctx, &s))?;
    Ok(())
}

fn interrupted() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT), None)
}

/// Bytes handed back to SQLite as TEXT exactly as they are (SQLite's own
/// string functions do not repair invalid UTF-8 either).
pub struct TextBytes(Vec<u8>);

impl ToSql for TextBytes {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(&self.0)))
    }
}

/// A value's bytes as SQLite's text functions see them; `None` for NULL.
fn text(value: ValueRef<'_>) -> Option<Vec<u8>> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string().into_bytes()),
        ValueRef::Real(f) => Some(real_text(f).into_bytes()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(t.to_vec()),
    }
}

/// A real number as SQLite writes it as text. SQLite's own rendering
/// (`%!.15g`, with its own decimal rounding) is asked of a private in-memory
/// connection, so that no digit differs from what the user's other programs
/// write into indexes and generated columns.
fn real_text(f: f64) -> String {
    thread_local! {
        static CAST: Option<Connection> = Connection::open_in_memory().ok();
    }
    CAST.with(|connection| {
        connection
            .as_ref()
            .and_then(|c| c.query_row("SELECT CAST(?1 AS TEXT)", [f], |r| r.get::<_, String>(0)).ok())
            .unwrap_or_else(|| f.to_string())
    })
}

/// Characters of UTF-8 text as SQLite counts them: a lead byte and the
/// continuation bytes after it.
fn is_char_start(byte: u8) -> bool {
    byte & 0xC0 != 0x80
}

/// `instr(X, Y)`: one more than the characters (bytes, for two blobs)
/// before the first `Y` in `X`; 0 when there is none; NULL for a NULL.
fn instr(ctx: &Context<'_>) -> rusqlite::Result<Option<i64>> {
    let (haystack, needle) = (ctx.get_raw(0), ctx.get_raw(1));
    let blobs = matches!((haystack, needle), (ValueRef::Blob(_), ValueRef::Blob(_)));
    let (Some(haystack), Some(needle)) = (text(haystack), text(needle)) else { return Ok(None) };
    let Some(at) = memchr::memmem::find(&haystack, &needle) else { return Ok(Some(0)) };
    let before = if blobs { at } else { haystack[..at].iter().filter(|b| is_char_start(**b)).count() };
    Ok(Some(before as i64 + 1))
}

/// `replace(X, Y, Z)`: every `Y` in `X` replaced by `Z`. In SQLite's order:
/// NULL for a NULL `X` or `Y`, `X` itself when `Y` is empty, then NULL for a
/// NULL `Z`.
fn replace(ctx: &Context<'_>, longest: u64) -> rusqlite::Result<Option<ReplaceResult>> {
    let Some(subject) = text(ctx.get_raw(0)) else { return Ok(None) };
    let Some(pattern) = text(ctx.get_raw(1)) else { return Ok(None) };
    if pattern.is_empty() {
        return Ok(Some(ReplaceResult::Unchanged(ctx.get_raw(0).into())));
    }
    let Some(replacement) = text(ctx.get_raw(2)) else { return Ok(None) };
    let finder = memchr::memmem::Finder::new(&pattern);
    let found = finder.find_iter(&subject).count() as u64;
    let length = subject.len() as u64 - found * pattern.len() as u64 + found * replacement.len() as u64;
    if length > longest {
        return Err(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG), None));
    }
    let mut out = Vec::with_capacity(length as usize);
    let mut from = 0;
    for at in finder.find_iter(&subject) {
        out.extend_from_slice(&subject[from..at]);
        out.extend_from_slice(&replacement);
        from = at + pattern.len();
    }
    out.extend_from_slice(&subject[from..]);
    Ok(Some(ReplaceResult::Replaced(TextBytes(out))))
}

/// What `replace` gives back: `X` as it was, or new text.
enum ReplaceResult {
    Unchanged(rusqlite::types::Value),
    Replaced(TextBytes),
}

impl ToSql for ReplaceResult {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            ReplaceResult::Unchanged(value) => value.to_sql(),
            ReplaceResult::Replaced(text) => text.to_sql(),
        }
    }
}

#[derive(Clone, Copy)]
enum Ends {
    Start,
    End,
    Both,
}

/// The characters of UTF-8 bytes, each as its bytes.
fn chars(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=bytes.len() {
        if i == bytes.len() || is_char_start(bytes[i]) {
            out.push(&bytes[start..i]);
            start = i;
        }
    }
    out
}

/// `trim(X, Y)` and its one-ended forms: `X` without the characters of `Y` at its ends.
fn trim(ctx: &Context<'_>, ends: Ends) -> rusqlite::Result<Option<TextBytes>> {
    let (Some(subject), Some(set)) = (text(ctx.get_raw(0)), text(ctx.get_raw(1))) else { return Ok(None) };
    let set: HashSet<&[u8]> = chars(&set).into_iter().collect();
    let characters = chars(&subject);
    let mut first = 0;
    let mut last = characters.len();
    if matches!(ends, Ends::Start | Ends::Both) {
        while first < last && set.contains(characters[first]) {
            first += 1;
        }
    }
    if matches!(ends, Ends::End | Ends::Both) {
        while last > first && set.contains(characters[last - 1]) {
            last -= 1;
        }
    }
    Ok(Some(TextBytes(characters[first..last].concat())))
}

/// One element of a LIKE or GLOB pattern.
#[derive(Debug, PartialEq)]
enum Token {
    /// `%` or `*`: any run of characters.
    Any,
    /// `_` or `?`: one character.
    One,
    /// A character, compared without ASCII case for LIKE.
    Char(char),
    /// A GLOB class `[...]`: ranges and single characters, maybe negated.
    Class { negated: bool, ranges: Vec<(char, char)> },
    /// Nothing: a pattern SQLite never matches (a trailing escape, an
    /// unclosed class).
    Never,
}

fn like_tokens(pattern: &str, escape: Option<char>) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            c if Some(c) == escape => match chars.next() {
                Some(next) => Token::Char(next),
                None => Token::Never,
            },
            '%' => Token::Any,
            '_' => Token::One,
            c => Token::Char(c),
        });
    }
    tokens
}

fn glob_tokens(pattern: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => tokens.push(Token::Any),
            '?' => tokens.push(Token::One),
            '[' => {
                let mut j = i + 1;
                let negated = chars.get(j) == Some(&'^');
                if negated {
                    j += 1;
                }
                let mut ranges = Vec::new();
                // A `]` right after the opening (or after `^`) is a member.
                if chars.get(j) == Some(&']') {
                    ranges.push((']', ']'));
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    if chars.get(j + 1) == Some(&'-') && chars.get(j + 2).is_some_and(|c| *c != ']') {
                        ranges.push((chars[j], chars[j + 2]));
                        j += 3;
                    } else {
                        ranges.push((chars[j], chars[j]));
                        j += 1;
                    }
                }
                if j >= chars.len() {
                    // No closing `]`: SQLite's GLOB then matches nothing.
                    return vec![Token::Never];
                }
                tokens.push(Token::Class { negated, ranges });
                i = j;
            }
            c => tokens.push(Token::Char(c)),
        }
        i += 1;
    }
    tokens
}

fn token_matches(token: &Token, c: char, fold_case: bool) -> bool {
    match token {
        Token::Any | Token::One => true,
        Token::Char(p) if fold_case => p.to_ascii_lowercase() == c.to_ascii_lowercase(),
        Token::Char(p) => *p == c,
        Token::Class { negated, ranges } => ranges.iter().any(|(low, high)| *low <= c && c <= *high) != *negated,
        Token::Never => false,
    }
}

/// Whether `text` matches `tokens`: greedy, going back to the last `Any`
/// on a mismatch; looks at `stop` every few thousand steps.
fn matches(tokens: &[Token], text: &[char], fold_case: bool, stop: &Stop) -> rusqlite::Result<bool> {
    let (mut t, mut p) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    let mut steps: u32 = 0;
    while t < text.len() {
        steps = steps.wrapping_add(1);
        if steps.is_multiple_of(4096) && stop() {
            return Err(interrupted());
        }
        match tokens.get(p) {
            Some(Token::Any) => {
                back = Some((p, t));
                p += 1;
            }
            Some(token) if token_matches(token, text[t], fold_case) => {
                p += 1;
                t += 1;
            }
            _ => match back {
                Some((star, at)) => {
                    p = star + 1;
                    t = at + 1;
                    back = Some((star, at + 1));
                }
                None => return Ok(false),
            },
        }
    }
    Ok(tokens[p..].iter().all(|token| *token == Token::Any) && !tokens.contains(&Token::Never))
}

fn decoded(bytes: &[u8]) -> Vec<char> {
    String::from_utf8_lossy(bytes).chars().collect()
}

/// `like(PATTERN, X [, ESCAPE])`, that is `X LIKE PATTERN [ESCAPE E]`:
/// ASCII letters without case, `%`, `_`, an escape character.
fn like(ctx: &Context<'_>, stop: &Stop) -> rusqlite::Result<Option<bool>> {
    let (Some(pattern), Some(subject)) = (text(ctx.get_raw(0)), text(ctx.get_raw(1))) else { return Ok(None) };
    let escape = if ctx.len() == 3 {
        let Some(escape) = text(ctx.get_raw(2)) else { return Ok(None) };
        let escape = decoded(&escape);
        if escape.len() != 1 {
            return Err(rusqlite::Error::UserFunctionError("ESCAPE expression must be a single character".into()));
        }
        Some(escape[0])
    } else {
        None
    };
    let tokens = like_tokens(&String::from_utf8_lossy(&pattern), escape);
    matches(&tokens, &decoded(&subject), true, stop).map(Some)
}

/// `glob(PATTERN, X)`, that is `X GLOB PATTERN`: `*`, `?`, `[...]`, with case.
fn glob(ctx: &Context<'_>, stop: &Stop) -> rusqlite::Result<Option<bool>> {
    let (Some(pattern), Some(subject)) = (text(ctx.get_raw(0)), text(ctx.get_raw(1))) else { return Ok(None) };
    let tokens = glob_tokens(&String::from_utf8_lossy(&pattern));
    matches(&tokens, &decoded(&subject), false, stop).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        install(&connection, Arc::new(AtomicU64::new(1 << 20)), Arc::new(|| false)).unwrap();
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
        assert_eq!(one::<String>(&c, "SELECT replace('abc', '', NULL)"), "abc");
        assert_eq!(one::<i64>(&c, "SELECT replace(42, '', 'x')"), 42, "X itself, with its type");
        assert_eq!(one::<Option<String>>(&c, "SELECT replace('abc', NULL, 'x')"), None);
        assert_eq!(one::<Option<String>>(&c, "SELECT replace('abc', 'b', NULL)"), None);
        assert_eq!(one::<String>(&c, "SELECT replace(0.1 + 0.2, '.', ',')"), "0,3");
        assert_eq!(one::<String>(&c, "SELECT replace(1e15, 'x', 'y')"), "1.0e+15");
        assert_eq!(one::<String>(&c, "SELECT replace(1e-5, 'x', 'y')"), "1.0e-05");
        assert_eq!(one::<String>(&c, "SELECT replace(2.5, 'x', 'y')"), "2.5");
        assert_eq!(one::<String>(&c, "SELECT replace(100.0, 'x', 'y')"), "100.0");
        assert_eq!(one::<String>(&c, "SELECT trim('xxhixx', 'x')"), "hi");
        assert_eq!(one::<String>(&c, "SELECT ltrim('xxhixx', 'x')"), "hixx");
        assert_eq!(one::<String>(&c, "SELECT rtrim('xxhixx', 'x')"), "xxhi");
        assert_eq!(one::<String>(&c, "SELECT trim('ééaéé', 'é')"), "a");
        assert_eq!(one::<String>(&c, "SELECT trim('  hi  ')"), "hi");
    }

    #[test]
    fn like_and_glob_match_as_sqlites() {
        let c = connection();
        for (sql, expected) in [
            ("SELECT 'Hello' LIKE 'h%O'", true),
            ("SELECT 'Hello' LIKE 'h_llo'", true),
            ("SELECT 'Hello' LIKE 'h_lo'", false),
            ("SELECT 'Ärger' LIKE 'ä%'", false),
            ("SELECT '50%' LIKE '50!%' ESCAPE '!'", true),
            ("SELECT '505' LIKE '50!%' ESCAPE '!'", false),
            ("SELECT 'abc' LIKE '%%%'", true),
            ("SELECT '' LIKE '%'", true),
            ("SELECT 'Hello' GLOB 'H*o'", true),
            ("SELECT 'Hello' GLOB 'h*'", false),
            ("SELECT 'Hello' GLOB 'H?llo'", true),
            ("SELECT 'Hello' GLOB '[A-Z]ello'", true),
            ("SELECT 'hello' GLOB '[^a-z]ello'", false),
            ("SELECT ']x' GLOB '[]]x'", true),
            ("SELECT 'a' GLOB '[a'", false),
        ] {
            assert_eq!(one::<bool>(&c, sql), expected, "{sql}");
        }
        assert_eq!(one::<Option<bool>>(&c, "SELECT NULL LIKE 'a'"), None);
    }

    #[test]
    fn a_long_match_stops_when_the_call_must() {
        let connection = Connection::open_in_memory().unwrap();
        install(&connection, Arc::new(AtomicU64::new(1 << 20)), Arc::new(|| true)).unwrap();
        let error = connection
            .query_row("SELECT printf('%.*c', 100000, 'a') LIKE '%' || printf('%.*c', 60, 'a') || 'b'", [], |r| r.get::<_, bool>(0))
            .unwrap_err();
        assert_eq!(error.sqlite_error_code(), Some(rusqlite::ErrorCode::OperationInterrupted));
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

    /// The host's functions and SQLite's own, on the same random input.
    mod against_sqlite {
        use super::*;
        use proptest::prelude::*;

        fn sqlite_value(c: &Connection, sql: &str, args: &[&str]) -> Result<rusqlite::types::Value, String> {
            let params: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a as &dyn rusqlite::ToSql).collect();
            c.query_row(sql, params.as_slice(), |r| r.get::<_, rusqlite::types::Value>(0)).map_err(|e| e.to_string())
        }

        /// Short strings over a small alphabet with wildcards, escapes, case
        /// and a multi-byte letter, so that matches and near misses are common.
        fn text() -> impl Strategy<Value = String> {
            proptest::collection::vec(prop_oneof![Just('a'), Just('A'), Just('b'), Just('%'), Just('_'), Just('*'), Just('?'), Just('['), Just(']'), Just('^'), Just('-'), Just('!'), Just('é')], 0..8)
                .prop_map(|chars| chars.into_iter().collect())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn same_results(subject in text(), pattern in text(), replacement in text()) {
                let ours = connection();
                let sqlites = Connection::open_in_memory().unwrap();
                for (sql, args) in [
                    ("SELECT ?1 LIKE ?2", vec![subject.as_str(), pattern.as_str()]),
                    ("SELECT ?1 LIKE ?2 ESCAPE '!'", vec![subject.as_str(), pattern.as_str()]),
                    ("SELECT ?1 GLOB ?2", vec![subject.as_str(), pattern.as_str()]),
                    ("SELECT instr(?1, ?2)", vec![subject.as_str(), pattern.as_str()]),
                    ("SELECT replace(?1, ?2, ?3)", vec![subject.as_str(), pattern.as_str(), replacement.as_str()]),
                    ("SELECT trim(?1, ?2)", vec![subject.as_str(), pattern.as_str()]),
                    ("SELECT ltrim(?1, ?2)", vec![subject.as_str(), pattern.as_str()]),
                    ("SELECT rtrim(?1, ?2)", vec![subject.as_str(), pattern.as_str()]),
                ] {
                    let expected = sqlite_value(&sqlites, sql, &args);
                    let got = sqlite_value(&ours, sql, &args);
                    prop_assert_eq!(got.is_ok(), expected.is_ok(), "{} {:?}: {:?} vs {:?}", sql, args, got, expected);
                    if let (Ok(got), Ok(expected)) = (got, expected) {
                        prop_assert_eq!(got, expected, "{} {:?}", sql, args);
                    }
                }
            }

            #[test]
            fn numbers_become_the_same_text(real in proptest::num::f64::NORMAL | proptest::num::f64::ZERO, whole in any::<i64>(), scale in -30i32..30) {
                let ours = connection();
                let sqlites = Connection::open_in_memory().unwrap();
                let scaled = real * 10f64.powi(scale);
                for value in [rusqlite::types::Value::Real(real), rusqlite::types::Value::Real(scaled), rusqlite::types::Value::Integer(whole)] {
                    for sql in ["SELECT replace(?1, 'x', 'y')", "SELECT instr(?1, '5')", "SELECT trim(?1, '-')"] {
                        let query = |c: &Connection| c.query_row(sql, [&value], |r| r.get::<_, rusqlite::types::Value>(0)).unwrap();
                        prop_assert_eq!(query(&ours), query(&sqlites), "{} {:?}", sql, value);
                    }
                }
            }
        }
    }

    #[test]
    fn a_replace_longer_than_the_call_allows_is_refused() {
        let c = connection();
        let error = c.query_row("SELECT replace(printf('%.*c', 100000, 'a'), 'a', 'bbbbbbbbbbbbbbbbbbbb')", [], |r| r.get::<_, String>(0));
        assert_eq!(error.unwrap_err().sqlite_error_code(), Some(rusqlite::ErrorCode::TooBig));
    }
}
