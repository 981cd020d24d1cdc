//! The current time in the formats `updated_at` columns use.

use std::time::{SystemTime, UNIX_EPOCH};

use synchost_plugin_sdk::Value;

use crate::settings::StampFormat;

/// The current time as a value for an `updated_at` column.
pub fn now(format: StampFormat) -> Value {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    match format {
        StampFormat::UnixSeconds => Value::Integer(since_epoch.as_secs() as i64),
        StampFormat::UnixMillis => Value::Integer(since_epoch.as_millis() as i64),
        StampFormat::Rfc3339 => Value::Text(rfc3339_millis(since_epoch.as_millis() as i64)),
    }
}

/// A stamp `overlap_ms` earlier than `stamp`, in the same shape (integer, or
/// text with the same separator, digits of fraction and suffix), so that the
/// column's own order compares the two; none for a text it cannot read.
pub fn earlier(stamp: &Value, format: StampFormat, overlap_ms: u64) -> Option<Value> {
    let overlap = i64::try_from(overlap_ms).ok()?;
    match (format, stamp) {
        (StampFormat::UnixSeconds, Value::Integer(seconds)) => Some(Value::Integer(seconds - (overlap + 999) / 1000)),
        (StampFormat::UnixMillis, Value::Integer(millis)) => Some(Value::Integer(millis - overlap)),
        (_, Value::Text(text)) => earlier_text(text, overlap * 1000).map(Value::Text),
        _ => None,
    }
}

/// `YYYY-MM-DD?HH:MM:SS[.fraction][suffix]`, `micros` earlier.
fn earlier_text(text: &str, micros: i64) -> Option<String> {
    let bytes = text.as_bytes();
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if bytes.len() < 19 || separators.iter().any(|(at, c)| bytes[*at] != *c) || !matches!(bytes[10], b'T' | b' ') {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<i64> { text.get(from..to)?.parse().ok() };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let rest = &text[19..];
    let digits = rest.strip_prefix('.').map_or(0, |r| r.bytes().take_while(u8::is_ascii_digit).count());
    let fraction = if digits > 0 { &rest[1..=digits] } else { "" };
    let suffix = &rest[if digits > 0 { digits + 1 } else { 0 }..];
    let fraction_micros: i64 = format!("{:0<6}", &fraction[..fraction.len().min(6)]).parse().ok()?;
    let days = days_from_civil(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?);
    let total = ((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000 + fraction_micros) - micros;
    let (days, micros_of_day) = (total.div_euclid(86_400_000_000), total.rem_euclid(86_400_000_000));
    let (year, month, day) = civil_from_days(days);
    let seconds = micros_of_day / 1_000_000;
    let mut shifted = format!(
        "{year:04}-{month:02}-{day:02}{}{:02}:{:02}:{:02}",
        bytes[10] as char,
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if digits > 0 {
        let fraction = format!("{:06}", micros_of_day % 1_000_000);
        shifted.push('.');
        shifted.push_str(&format!("{fraction:0<digits$}")[..digits]);
    }
    shifted.push_str(suffix);
    Some(shifted)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`: fixed width, so text order is time order.
pub fn rfc3339_millis(unix_millis: i64) -> String {
    let (days, ms_of_day) = (unix_millis.div_euclid(86_400_000), unix_millis.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms_of_day % 1000
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stamp_moves_back_in_its_own_shape() {
        let text = |t: &str| Value::Text(t.into());
        assert_eq!(earlier(&text("2026-12-01T00:00:01.250Z"), StampFormat::Rfc3339, 2000), Some(text("2026-11-30T23:59:59.250Z")));
        assert_eq!(earlier(&text("2026-03-01 00:00:00.123456"), StampFormat::Rfc3339, 1000), Some(text("2026-02-28 23:59:59.123456")));
        assert_eq!(earlier(&text("2026-03-01 00:00:00.123456"), StampFormat::Rfc3339, 1), Some(text("2026-03-01 00:00:00.122456")));
        assert_eq!(earlier(&text("2024-03-01T00:00:00+02:00"), StampFormat::Rfc3339, 1000), Some(text("2024-02-29T23:59:59+02:00")));
        assert_eq!(earlier(&Value::Integer(1_767_225_600), StampFormat::UnixSeconds, 1500), Some(Value::Integer(1_767_225_598)));
        assert_eq!(earlier(&Value::Integer(5_000), StampFormat::UnixMillis, 1500), Some(Value::Integer(3_500)));
        assert_eq!(earlier(&text("yesterday"), StampFormat::Rfc3339, 1000), None);
        for days in [-1000, 0, 59, 60, 365, 20_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_millis(1_798_761_599_999), "2026-12-31T23:59:59.999Z");
    }
}
