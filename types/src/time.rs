//! Wall-clock time as milliseconds since the Unix epoch, the one time unit on the wire.
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_milliseconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

/// `milliseconds` since the epoch as RFC 3339 in UTC with milliseconds
/// (`2026-11-24T23:00:00.000Z`), the API's time format.
pub fn rfc3339(milliseconds: u64) -> String {
    chrono::DateTime::from_timestamp_millis(milliseconds as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// RFC 3339 in UTC with whole seconds (`2026-11-24T23:00:00Z`), as message schedules
/// take it.
pub fn rfc3339_seconds(milliseconds: u64) -> String {
    chrono::DateTime::from_timestamp_millis(milliseconds as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 time into milliseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text.trim()).ok()?;
    u64::try_from(parsed.timestamp_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_in_utc() {
        assert_eq!(rfc3339(1_795_561_200_000), "2026-11-24T23:00:00.000Z");
        assert_eq!(rfc3339_seconds(1_795_561_200_500), "2026-11-24T23:00:00Z");
        assert_eq!(
            parse_rfc3339("2026-11-25T08:00:00+09:00"),
            Some(1_795_561_200_000)
        );
        assert_eq!(parse_rfc3339("soon"), None);
    }
}
