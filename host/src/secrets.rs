//! Secrets never leave the host: one redaction function, [`redact`], used by
//! every sink a person or a file sees (log lines, CLI output, the state
//! store's events, runs, health and failed items) and at the plugin boundary
//! (what a plugin logs, prints or returns in a problem).
//!
//! What it masks:
//! - every value substituted from `${VARIABLE}` into settings, and every
//!   literal setting under a key that looks secret, registered when the
//!   config's settings are built ([`register`]);
//! - in URLs: the userinfo (`user:password@`) and the values of the query;
//! - `KEY = VALUE` and `KEY: VALUE` where the key looks secret (`password`,
//!   `key`, `token`, `secret`, `credential`, `authorization`), which covers
//!   config excerpts, DSNs written as key/value pairs and HTTP headers.
//!
//! A plugin that encodes a secret (base64, reversed, split up) gets past
//! any masking; `docs/writing-plugins.md` tells authors never to echo one.

use std::borrow::Cow;
use std::sync::{LazyLock, RwLock};

use regex::Regex;

/// What a masked secret reads as.
pub const MASK: &str = "***";

/// Values shorter than this are not registered: masking every `1` or `on`
/// in the output would hide more than it protects.
const SHORTEST_SECRET: usize = 4;

static REGISTERED: RwLock<Vec<String>> = RwLock::new(Vec::new());

static URL_USERINFO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#]+@").expect("valid pattern"));
static URL_QUERY_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"([?&][^=&#\s"'`<>]+=)[^&#\s"'`<>)]+"#).expect("valid pattern"));
/// `NAME = VALUE` or `NAME: VALUE`; whether NAME is a secret's is decided by
/// [`is_secret_name`], so one rule serves settings and text.
static PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\b([a-z][a-z0-9_.\-]*)(["']?\s*[=:]\s*)(?:bearer\s+|basic\s+)?("[^"]*"|'[^']*'|[^\s,;&{}\[\]"'][^\s,;&}\]]*)"#,
    )
    .expect("valid pattern")
});

/// Words that make a settings key a secret's, wherever they stand in it.
const SECRET_WORDS: &[&str] = &["password", "passwd", "pwd", "passphrase", "secret", "token", "credential", "credentials", "apikey", "authorization"];

/// Words that make a following `key` a secret's (`api_key`, `access-key`).
const KEY_QUALIFIERS: &[&str] = &["api", "access", "private", "secret", "auth", "license", "signing", "client", "encryption"];

/// The words of a name: split at `_`, `-`, `.`, spaces and camelCase
/// humps, lower-cased, a plural `s` dropped (`accessTokens` -> access, token).
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if matches!(c, '_' | '-' | '.' | ' ') || (c.is_uppercase() && previous_lower) {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        if !matches!(c, '_' | '-' | '.' | ' ') {
            word.extend(c.to_lowercase());
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .into_iter()
        .map(|w| match w.strip_suffix('s') {
            Some(single) if w.len() > 3 && !w.ends_with("ss") => single.to_owned(),
            _ => w,
        })
        .collect()
}

/// Whether a settings key names a secret: `api_key`, `password`,
/// `accessToken`, `client-secret`, `privateKeys`. A bare `key` does not:
/// connectors use it for a table's key column.
pub fn is_secret_key(key: &str) -> bool {
    let words = words(key);
    words.iter().any(|w| SECRET_WORDS.contains(&w.as_str()))
        || words.windows(2).any(|pair| pair[1] == "key" && KEY_QUALIFIERS.contains(&pair[0].as_str()))
}

/// Whether a name in text is a secret's: a settings key that is
/// ([`is_secret_key`]), or a bare `key`, which in text (`key = ...`,
/// `?key=...`) is most often one.
fn is_secret_name(name: &str) -> bool {
    is_secret_key(name) || name.eq_ignore_ascii_case("key")
}

/// Remembers a value that must never be shown, and the forms it takes in
/// a URL (`+` or `%20` for a space) and in a JSON string (a JSON log line).
pub fn register(value: &str) {
    if value.chars().count() < SHORTEST_SECRET {
        return;
    }
    let mut registered = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
    let form_encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let percent_encoded = form_encoded.replace('+', "%20");
    let json = serde_json::Value::from(value).to_string();
    let json = json[1..json.len() - 1].to_owned();
    for form in [value.to_owned(), form_encoded, percent_encoded, json] {
        if !registered.contains(&form) {
            registered.push(form);
        }
    }
    // Longest first, so a secret containing another is masked whole.
    registered.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every secret masked.
pub fn redact(text: &str) -> Cow<'_, str> {
    let registered = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    redact_with(&registered, text)
}

/// `text` with `secrets` and everything that looks secret masked. Pure.
pub fn redact_with<'t>(secrets: &[String], text: &'t str) -> Cow<'t, str> {
    let mut out = Cow::Borrowed(text);
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    for (pattern, replacement) in [(&*URL_USERINFO, format!("${{1}}{MASK}@")), (&*URL_QUERY_VALUE, format!("${{1}}{MASK}"))] {
        if let Cow::Owned(masked) = pattern.replace_all(&out, replacement.as_str()) {
            out = Cow::Owned(masked);
        }
    }
    // A quoted value stays quoted, so JSON and TOML stay well-formed.
    let pair = |captures: &regex::Captures<'_>| {
        if !is_secret_name(&captures[1]) {
            return captures[0].to_owned();
        }
        let quote = captures[3].chars().next().filter(|c| *c == '"' || *c == '\'');
        let quote = quote.map(String::from).unwrap_or_default();
        format!("{}{}{quote}{MASK}{quote}", &captures[1], &captures[2])
    };
    if let Cow::Owned(masked) = PAIR.replace_all(&out, pair) {
        out = Cow::Owned(masked);
    }
    out
}

/// An owned, redacted copy.
pub fn redacted(text: &str) -> String {
    redact(text).into_owned()
}

/// A redacted copy of text that was cut off at its end (a capped capture):
/// a secret cut in two would not match whole, so a tail that starts one is
/// masked as well.
pub fn redacted_cut(text: &str) -> String {
    let mut out = redacted(text);
    let registered = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    if let Some(cut) = cut_secret_at_end(&registered, &out) {
        out.truncate(cut);
        out.push_str(MASK);
    }
    out
}

/// Where a tail of `text` that begins one of `secrets` starts. Pure.
fn cut_secret_at_end(secrets: &[String], text: &str) -> Option<usize> {
    secrets
        .iter()
        .filter_map(|secret| {
            (SHORTEST_SECRET.min(secret.len())..secret.len())
                .rev()
                .map(|length| &secret[..secret.floor_char_boundary(length)])
                .find(|prefix| prefix.len() >= SHORTEST_SECRET && text.ends_with(prefix))
                .map(|prefix| text.len() - prefix.len())
        })
        .min()
}

/// A `tracing` writer that masks secrets in every line it writes.
pub struct RedactingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buffer);
        self.0.write_all(redact(&text).as_bytes())?;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> String {
        redact_with(&["s3cr3t-value".to_owned()], text).into_owned()
    }

    #[test]
    fn registered_values_are_masked_wherever_they_appear() {
        assert_eq!(masked("the key is s3cr3t-value, see"), "the key is ***, see");
        assert_eq!(masked("nothing here"), "nothing here");
    }

    #[test]
    fn urls_lose_their_userinfo_and_query_values() {
        assert_eq!(
            masked("GET http://admin:hunter2@example.org:3000/issues.json?key=abc&limit=5 failed"),
            "GET http://***@example.org:3000/issues.json?key=***&limit=*** failed"
        );
        assert_eq!(masked("postgres://app:pw@db/crm"), "postgres://***@db/crm");
        assert_eq!(masked("see http://example.org/path"), "see http://example.org/path");
    }

    #[test]
    fn secret_looking_pairs_are_masked() {
        assert_eq!(masked(r#"api_key = "abc123""#), r#"api_key = "***""#);
        assert_eq!(masked(r#"{"token": "abc", "n": 1}"#), r#"{"token": "***", "n": 1}"#);
        assert_eq!(masked(r#""key": {"type": "string"}"#), r#""key": {"type": "string"}"#);
        assert_eq!(masked("host=db password=pw user=app"), "host=db password=*** user=app");
        assert_eq!(masked("X-Redmine-API-Key: 0123abcd"), "X-Redmine-API-Key: ***");
        assert_eq!(masked("Authorization: Bearer abc.def"), "Authorization: ***");
        assert_eq!(masked("name = \"Ada\""), "name = \"Ada\"");
        assert_eq!(masked("entity `secrets`: key column `id` is missing"), "entity `secrets`: key column `id` is missing");
        assert_eq!(masked("monkey = banana"), "monkey = banana");
        assert_eq!(masked(r#"key = "abc""#), r#"key = "***""#);
        assert_eq!(masked(r#"{"accessToken":"abc123","n":1}"#), r#"{"accessToken":"***","n":1}"#);
        assert_eq!(masked("clientSecret: hush"), "clientSecret: ***");
    }

    #[test]
    fn a_secret_cut_off_at_the_end_is_masked() {
        let secrets = vec!["s3cr3t-value".to_owned()];
        assert_eq!(cut_secret_at_end(&secrets, "key=s3cr3t-v"), Some(4));
        assert_eq!(cut_secret_at_end(&secrets, "key=s3c"), None, "too short to tell");
        assert_eq!(cut_secret_at_end(&secrets, "nothing"), None);
    }

    #[test]
    fn secret_keys_are_recognised() {
        assert!(is_secret_key("api_key"));
        assert!(is_secret_key("Password"));
        assert!(is_secret_key("access-token"));
        assert!(is_secret_key("X-Redmine-API-Key"));
        assert!(!is_secret_key("url"));
        assert!(!is_secret_key("connection"));
        assert!(!is_secret_key("key"), "a table's key column");
        assert!(!is_secret_key("sort_key"));
        assert!(!is_secret_key("keyboard_layout"));
        assert!(is_secret_key("accessToken"));
        assert!(is_secret_key("clientSecret"));
        assert!(is_secret_key("privateKey"));
        assert!(is_secret_key("api_keys"));
        assert!(is_secret_key("tokens"));
        assert!(!is_secret_key("status"));
        assert!(!is_secret_key("address"));
    }
}
