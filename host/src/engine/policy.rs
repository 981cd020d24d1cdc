//! Conflict policies: who wins when a field changed on both sides since base.

use crate::config::{ConflictPolicy, Side};

/// What a policy decided for one conflicting field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// This side's value goes to the other side.
    Wins(Side),
    /// Each side keeps its value; each other's value goes to the mirror fields.
    KeepBoth,
    /// Parked for an admin.
    Park,
}

/// A record's own change time, from its version: RFC 3339, or Unix seconds or
/// milliseconds, optionally followed by `/` and a digest (systems whose clock
/// has coarse steps add one to tell edits within a step apart). `None` when
/// the version is not a time.
pub fn change_time(version: Option<&str>) -> Option<i64> {
    let version = version?.trim();
    let version = version.split_once('/').map_or(version, |(time, _)| time);
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(version) {
        return Some(time.timestamp_millis());
    }
    if let Ok(time) = chrono::NaiveDateTime::parse_from_str(version, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(time.and_utc().timestamp_millis());
    }
    let number: i64 = version.parse().ok()?;
    // Before 2001 in milliseconds is after 5138 in seconds: tell them apart by size.
    Some(if number > 100_000_000_000 { number } else { number * 1000 })
}

/// Decides a conflict. `left_version` and `right_version` are the records' own
/// versions (their change times, where the system has them).
pub fn decide(policy: ConflictPolicy, left_version: Option<&str>, right_version: Option<&str>) -> Decision {
    // Ties and missing times go to the left, so every run decides the same way.
    let later = || match (change_time(left_version), change_time(right_version)) {
        (Some(l), Some(r)) if r > l => Side::Right,
        _ => Side::Left,
    };
    let earlier = || match (change_time(left_version), change_time(right_version)) {
        (Some(l), Some(r)) if r < l => Side::Right,
        _ => Side::Left,
    };
    match policy {
        ConflictPolicy::LeftWins => Decision::Wins(Side::Left),
        ConflictPolicy::RightWins => Decision::Wins(Side::Right),
        ConflictPolicy::LastWriterWins => Decision::Wins(later()),
        ConflictPolicy::FirstWriterWins => Decision::Wins(earlier()),
        ConflictPolicy::Mirror => Decision::KeepBoth,
        ConflictPolicy::Manual => Decision::Park,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_every_format_compare() {
        assert!(change_time(Some("2026-01-02T00:00:00Z")) > change_time(Some("2026-01-01T23:59:59.999Z")));
        assert_eq!(change_time(Some("1767225600")), change_time(Some("1767225600000")));
        assert_eq!(change_time(Some("r17")), None);
        assert_eq!(change_time(Some("2026-01-02T00:00:00Z/00ff")), change_time(Some("2026-01-02T00:00:00Z")));
    }

    #[test]
    fn policies_decide_deterministically() {
        let (old, new) = (Some("2026-01-01T00:00:00Z"), Some("2026-01-02T00:00:00Z"));
        assert_eq!(decide(ConflictPolicy::LastWriterWins, old, new), Decision::Wins(Side::Right));
        assert_eq!(decide(ConflictPolicy::FirstWriterWins, old, new), Decision::Wins(Side::Left));
        assert_eq!(decide(ConflictPolicy::LastWriterWins, new, new), Decision::Wins(Side::Left));
        assert_eq!(decide(ConflictPolicy::LastWriterWins, None, new), Decision::Wins(Side::Left));
        assert_eq!(decide(ConflictPolicy::Manual, old, new), Decision::Park);
    }
}
