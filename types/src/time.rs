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

/// A day in Korea (UTC+9 all year, no summer time): the day's number since the
/// epoch and the milliseconds left until its midnight. Daily caps count per such day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KoreanDay {
    pub number: u64,
    pub milliseconds_left: u64,
}

const DAY_MS: u64 = 24 * 60 * 60 * 1_000;
const KOREA_OFFSET_MS: u64 = 9 * 60 * 60 * 1_000;

/// The Korean day `milliseconds` since the epoch falls on.
pub fn korean_day(milliseconds: u64) -> KoreanDay {
    let korean = milliseconds + KOREA_OFFSET_MS;
    KoreanDay {
        number: korean / DAY_MS,
        milliseconds_left: DAY_MS - korean % DAY_MS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_korean_day_ends_at_midnight_kst() {
        // 2026-11-24T23:00:00Z is 08:00 on the 25th in Korea: 16 hours left.
        let day = korean_day(1_795_561_200_000);
        assert_eq!(day.milliseconds_left, 16 * 60 * 60 * 1_000);
        // 14:59:59.999Z is the last millisecond of that Korean day.
        let last = korean_day(1_795_561_200_000 + day.milliseconds_left - 1);
        assert_eq!((last.number, last.milliseconds_left), (day.number, 1));
        assert_eq!(
            korean_day(1_795_561_200_000 + day.milliseconds_left).number,
            day.number + 1
        );
    }

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
