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
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_millis(1_798_761_599_999), "2026-12-31T23:59:59.999Z");
    }
}
