//! When a send goes out: now, once at a time, or recurring — parsed and checked
//! without I/O, with every error saying what is wrong.
//!
//! - `scheduled_at`: RFC 3339, in the future, at most [`MAX_DAYS_AHEAD`] days ahead;
//!   a fraction of a second rounds up to the next second (schedules fire on whole
//!   seconds, never early).
//! - `recurrence`: `{"cron": "0 0 9 * * MON", "timezone": "Asia/Seoul", "until": …}`
//!   (6 fields: second minute hour day month weekday) or `{"every": "30m"}` (units
//!   `s`, `m`, `h`, `d`, combinable: `1h30m`), with an optional `until` or `count`
//!   (firings, sent or failed). A recurrence fires at most once a minute
//!   ([`RecurrenceLimits`]); one that fires more often than hourly must end (`until`
//!   or `count`), so a forgotten schedule cannot charge a customer indefinitely.
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rns_types::advertising::advertisement_hold_until;
use rns_types::schedule::Recurrence;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// How far ahead a send may be scheduled.
pub const MAX_DAYS_AHEAD: u64 = 180;
const DAY_MS: u64 = 24 * 60 * 60 * 1_000;
pub const DEFAULT_TIMEZONE: &str = "Asia/Seoul";
/// A recurrence firing more often than this must have an end (`until` or `count`).
pub const ENDLESS_FROM_SECONDS: u64 = 3_600;
/// The most firings a `count` may ask for.
pub const MAX_COUNT: u32 = 100_000;

/// How often a recurring send may fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecurrenceLimits {
    /// The shortest interval between two firings: 60 s (`[gateway]
    /// min_recurrence_seconds`, lowered only by tests that watch firings).
    pub min_interval_seconds: u64,
}

impl Default for RecurrenceLimits {
    fn default() -> Self {
        Self {
            min_interval_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceInput {
    #[serde(default)]
    cron: Option<String>,
    #[serde(default)]
    every: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    until: Option<String>,
    /// How many times it fires (sent or failed), at most.
    #[serde(default)]
    count: Option<u32>,
}

/// When a send goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    Now,
    Once { at_ms: u64 },
    Recurring(Recurrence),
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid("invalid_schedule", message)
}

fn parse_time(field: &str, value: &str) -> Result<u64, ApiError> {
    let parsed = DateTime::parse_from_rfc3339(value.trim()).map_err(|error| {
        invalid(format!(
            "{field} must be an RFC 3339 time such as 2026-12-01T10:00:00+09:00 ({error})"
        ))
    })?;
    u64::try_from(parsed.timestamp_millis()).map_err(|_| invalid(format!("{field} is before 1970")))
}

/// The longest validity a send may give its messages: 72 hours.
pub const MAX_VALID_FOR_SECONDS: u64 = 72 * 60 * 60;

/// How long after its send time (now, or the scheduled time, or each firing of a
/// recurring send) a send's messages may still be submitted, in milliseconds: from
/// `valid_for` (seconds) or `expires_at` (a time after the send time; not for
/// recurring sends). None when neither is given.
pub fn validity(
    valid_for: Option<u64>,
    expires_at: Option<&str>,
    when: &When,
    now_ms: u64,
) -> Result<Option<u64>, ApiError> {
    let invalid = |message: String| ApiError::invalid("invalid_validity", message);
    let valid_for_ms = match (valid_for, expires_at) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(invalid("give valid_for or expires_at, not both".to_owned()))
        }
        (Some(seconds), None) => seconds.saturating_mul(1_000),
        (None, Some(at)) => {
            let sent_at_ms = match when {
                When::Now => now_ms,
                When::Once { at_ms } => *at_ms,
                When::Recurring(_) => return Err(invalid(
                    "expires_at cannot apply to every firing of a recurring send; give valid_for"
                        .to_owned(),
                )),
            };
            let expires_at_ms = DateTime::parse_from_rfc3339(at.trim())
                .ok()
                .and_then(|parsed| u64::try_from(parsed.timestamp_millis()).ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "expires_at must be an RFC 3339 time such as 2026-12-01T10:00:00+09:00, not {at:?}"
                    ))
                })?;
            if expires_at_ms <= sent_at_ms {
                return Err(invalid(format!(
                    "expires_at {at} is not after the send; it must be a later time"
                )));
            }
            expires_at_ms - sent_at_ms
        }
    };
    if valid_for_ms == 0 || valid_for_ms > MAX_VALID_FOR_SECONDS * 1_000 {
        return Err(invalid(format!(
            "the validity must be 1 second to {MAX_VALID_FOR_SECONDS} seconds (72 hours)"
        )));
    }
    Ok(Some(valid_for_ms))
}

/// Parses `30m`, `1h30m`, `90s`, `1d` into seconds.
pub fn parse_interval(value: &str) -> Result<u64, ApiError> {
    let bad = || {
        invalid(format!(
            "recurrence.every {value:?} is not an interval such as \"30m\", \"1h30m\" or \"90s\""
        ))
    };
    let mut total: u64 = 0;
    let mut number = String::new();
    for character in value.trim().chars() {
        if character.is_ascii_digit() {
            number.push(character);
            continue;
        }
        let unit = match character {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let amount: u64 = number.parse().map_err(|_| bad())?;
        total = amount
            .checked_mul(unit)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(total)
}

fn cron_pattern(expression: &str) -> Result<croner::Cron, ApiError> {
    let fields = expression.split_whitespace().count();
    if fields != 6 {
        return Err(invalid(format!(
            "recurrence.cron {expression:?} has {fields} fields; it needs 6: second minute hour day month weekday (e.g. \"0 0 9 * * MON\")"
        )));
    }
    croner::Cron::new(expression)
        .with_seconds_required()
        .parse()
        .map_err(|error| {
            invalid(format!(
                "recurrence.cron {expression:?} is not a valid cron expression: {error}"
            ))
        })
}

fn timezone(name: &str) -> Result<chrono_tz::Tz, ApiError> {
    chrono_tz::Tz::from_str(name).map_err(|_| {
        invalid(format!(
            "recurrence.timezone {name:?} is not a known time zone (an IANA name such as \"Asia/Seoul\")"
        ))
    })
}

/// Parses and checks when a send goes out.
pub fn when(
    scheduled_at: Option<&str>,
    recurrence: Option<&RecurrenceInput>,
    now_ms: u64,
    limits: RecurrenceLimits,
) -> Result<When, ApiError> {
    let latest = now_ms + MAX_DAYS_AHEAD * DAY_MS;
    match (scheduled_at, recurrence) {
        (None, None) => Ok(When::Now),
        (Some(_), Some(_)) => Err(invalid("give scheduled_at or recurrence, not both")),
        (Some(at), None) => {
            let at_ms = parse_time("scheduled_at", at)?.div_ceil(1_000) * 1_000;
            if at_ms <= now_ms {
                return Err(invalid(format!(
                    "scheduled_at {at} is in the past; it must be a future time"
                )));
            }
            if at_ms > latest {
                return Err(invalid(format!(
                    "scheduled_at {at} is more than {MAX_DAYS_AHEAD} days ahead"
                )));
            }
            Ok(When::Once { at_ms })
        }
        (None, Some(input)) => {
            let timezone_name = input
                .timezone
                .clone()
                .unwrap_or_else(|| DEFAULT_TIMEZONE.to_owned());
            timezone(&timezone_name)?;
            let until_ms = input
                .until
                .as_deref()
                .map(|until| parse_time("recurrence.until", until))
                .transpose()?;
            if let Some(until_ms) = until_ms {
                if until_ms <= now_ms {
                    return Err(invalid("recurrence.until is in the past"));
                }
            }
            if input
                .count
                .is_some_and(|count| !(1..=MAX_COUNT).contains(&count))
            {
                return Err(invalid(format!(
                    "recurrence.count must be 1 to {MAX_COUNT} firings"
                )));
            }
            let (cron, every_seconds) = match (&input.cron, &input.every) {
                (Some(cron), None) => {
                    cron_pattern(cron)?;
                    let seconds_field = cron.split_whitespace().next().unwrap_or_default();
                    if !seconds_field
                        .chars()
                        .all(|character| character.is_ascii_digit())
                    {
                        return Err(invalid(format!(
                            "recurrence.cron {cron:?} fires more than once a minute; its first field (seconds) must be one number, such as 0"
                        )));
                    }
                    (
                        Some(cron.split_whitespace().collect::<Vec<_>>().join(" ")),
                        None,
                    )
                }
                (None, Some(every)) => {
                    let seconds = parse_interval(every)?;
                    let shortest = limits.min_interval_seconds;
                    if !(shortest..=MAX_DAYS_AHEAD * 86_400).contains(&seconds) {
                        return Err(invalid(format!(
                            "recurrence.every must be between {shortest} seconds and {MAX_DAYS_AHEAD} days"
                        )));
                    }
                    (None, Some(seconds))
                }
                _ => return Err(invalid(
                    "recurrence needs exactly one of cron (\"0 0 9 * * MON\") or every (\"30m\")",
                )),
            };
            let recurrence = Recurrence {
                cron,
                every_seconds,
                timezone: timezone_name,
                until_ms,
                count: input.count,
            };
            let gap = shortest_gap_seconds(&recurrence, now_ms);
            if recurrence.until_ms.is_none()
                && recurrence.count.is_none()
                && gap.is_some_and(|gap| gap < ENDLESS_FROM_SECONDS)
            {
                return Err(invalid(
                    "a recurrence that fires more often than hourly needs an end: give recurrence.until or recurrence.count",
                ));
            }
            Ok(When::Recurring(recurrence))
        }
    }
}

/// How many of a recurrence's next firings are looked at to judge it.
const FIRINGS_JUDGED: usize = 1_000;

/// The recurrence's firings after `now_ms` (at most [`FIRINGS_JUDGED`], within
/// [`MAX_DAYS_AHEAD`] days), in epoch milliseconds.
pub fn next_firings(recurrence: &Recurrence, now_ms: u64) -> Vec<u64> {
    let horizon = now_ms + MAX_DAYS_AHEAD * DAY_MS;
    let before_end =
        |at_ms: &u64| *at_ms <= horizon && recurrence.until_ms.is_none_or(|until| *at_ms <= until);
    if let Some(seconds) = recurrence.every_seconds {
        return (1..=FIRINGS_JUDGED as u64)
            .map(|index| now_ms + index * seconds * 1_000)
            .take_while(before_end)
            .collect();
    }
    let (Some(pattern), Ok(zone)) = (
        recurrence
            .cron
            .as_deref()
            .and_then(|cron| cron_pattern(cron).ok()),
        timezone(&recurrence.timezone),
    ) else {
        return Vec::new();
    };
    let Some(now) = DateTime::<Utc>::from_timestamp_millis(now_ms as i64) else {
        return Vec::new();
    };
    pattern
        .iter_after(now.with_timezone(&zone))
        .filter_map(|at| u64::try_from(at.timestamp_millis()).ok())
        .take_while(before_end)
        .take(FIRINGS_JUDGED)
        .collect()
}

/// The shortest time between two of the next firings, if it fires twice.
fn shortest_gap_seconds(recurrence: &Recurrence, now_ms: u64) -> Option<u64> {
    if let Some(seconds) = recurrence.every_seconds {
        return Some(seconds);
    }
    next_firings(recurrence, now_ms)
        .windows(2)
        .map(|pair| (pair[1] - pair[0]) / 1_000)
        .min()
}

/// An advertisement without the recipients' night consent may not go out between
/// 21:00 and 08:00 KST (each firing is checked and held back then): one whose every
/// firing falls at night could never send, so it is refused with the reason.
pub fn check_advertisement_firings(recurrence: &Recurrence, now_ms: u64) -> Result<(), ApiError> {
    let firings = next_firings(recurrence, now_ms);
    if !firings.is_empty()
        && firings
            .iter()
            .all(|at_ms| advertisement_hold_until(*at_ms).is_some())
    {
        return Err(ApiError::invalid(
            "advertisement_rules",
            "every firing of this recurring advertisement falls between 21:00 and 08:00 KST, when advertisements may not be sent without the recipients' night consent (night_consent); it could never send",
        ));
    }
    Ok(())
}

/// The first firing of a recurring schedule created at `now_ms`, if it can be told.
pub fn first_firing(recurrence: &Recurrence, now_ms: u64) -> Option<u64> {
    if let Some(seconds) = recurrence.every_seconds {
        return Some(now_ms + seconds * 1_000);
    }
    let pattern = cron_pattern(recurrence.cron.as_deref()?).ok()?;
    let zone = timezone(&recurrence.timezone).ok()?;
    let now = DateTime::<Utc>::from_timestamp_millis(now_ms as i64)?.with_timezone(&zone);
    let next = pattern.find_next_occurrence(&now, false).ok()?;
    u64::try_from(next.timestamp_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_521_600_000; // 2026-11-24T12:00:00Z

    fn recurrence(
        cron: Option<&str>,
        every: Option<&str>,
        timezone: Option<&str>,
    ) -> RecurrenceInput {
        RecurrenceInput {
            cron: cron.map(str::to_owned),
            every: every.map(str::to_owned),
            timezone: timezone.map(str::to_owned),
            until: None,
            count: None,
        }
    }

    /// [`when`] with the production limits.
    fn checked(
        scheduled_at: Option<&str>,
        recurrence: Option<&RecurrenceInput>,
        now_ms: u64,
    ) -> Result<When, ApiError> {
        when(
            scheduled_at,
            recurrence,
            now_ms,
            RecurrenceLimits::default(),
        )
    }

    fn message(result: Result<When, ApiError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn one_time_schedules_are_future_whole_seconds_within_180_days() {
        assert_eq!(
            checked(Some("2026-11-25T09:00:00.200+09:00"), None, NOW).unwrap(),
            When::Once {
                at_ms: NOW + 12 * 3_600_000 + 1_000
            }
        );
        assert!(message(checked(Some("2026-11-24T11:59:59Z"), None, NOW)).contains("in the past"));
        assert!(message(checked(Some("2027-06-01T00:00:00Z"), None, NOW)).contains("180 days"));
        assert!(message(checked(Some("tomorrow"), None, NOW)).contains("RFC 3339"));
    }

    #[test]
    fn recurrences_are_checked_and_say_what_is_wrong() {
        let cron = checked(
            None,
            Some(&recurrence(Some("0 0 9 * * MON"), None, None)),
            NOW,
        )
        .unwrap();
        let When::Recurring(cron) = cron else {
            panic!()
        };
        assert_eq!(cron.header(), "0 0 9 * * MON");
        assert_eq!(cron.timezone, "Asia/Seoul");
        // Monday 2026-11-30 09:00 KST = 00:00 UTC.
        assert_eq!(first_firing(&cron, NOW), Some(1_795_996_800_000));
        let every = checked(None, Some(&recurrence(None, Some("1h30m"), None)), NOW).unwrap();
        let When::Recurring(every) = every else {
            panic!()
        };
        assert_eq!(every.header(), "@every 5400s");

        assert!(message(checked(
            None,
            Some(&recurrence(Some("0 9 * * MON"), None, None)),
            NOW
        ))
        .contains("it needs 6"));
        assert!(message(checked(
            None,
            Some(&recurrence(Some("0 0 25 * * MON"), None, None)),
            NOW
        ))
        .contains("not a valid cron"));
        assert!(message(checked(
            None,
            Some(&recurrence(Some("0 0 9 * * MON"), None, Some("Mars/Base"))),
            NOW
        ))
        .contains("time zone"));
        assert!(message(checked(
            None,
            Some(&recurrence(None, Some("soon"), None)),
            NOW
        ))
        .contains("interval"));
        assert!(
            message(checked(None, Some(&recurrence(None, None, None)), NOW))
                .contains("exactly one")
        );
        assert!(message(checked(
            Some("2026-12-01T00:00:00Z"),
            Some(&recurrence(None, Some("1m"), None)),
            NOW
        ))
        .contains("not both"));
    }

    #[test]
    fn recurrences_fire_at_most_once_a_minute_and_frequent_ones_must_end() {
        let every = |every: &str| recurrence(None, Some(every), None);
        assert!(message(checked(None, Some(&every("1s")), NOW)).contains("between 60 seconds"));
        assert!(message(checked(
            None,
            Some(&recurrence(Some("* * * * * *"), None, None)),
            NOW
        ))
        .contains("more than once a minute"));
        assert!(message(checked(
            None,
            Some(&recurrence(Some("0,30 * * * * *"), None, None)),
            NOW
        ))
        .contains("more than once a minute"));
        // Below an hour without an end: refused; with until or count: accepted.
        assert!(message(checked(None, Some(&every("30m")), NOW)).contains("needs an end"));
        assert!(message(checked(
            None,
            Some(&recurrence(Some("0 */10 * * * *"), None, None)),
            NOW
        ))
        .contains("needs an end"));
        let counted = RecurrenceInput {
            count: Some(5),
            ..every("30m")
        };
        let When::Recurring(counted) = checked(None, Some(&counted), NOW).unwrap() else {
            panic!()
        };
        assert_eq!(counted.count, Some(5));
        let until = RecurrenceInput {
            until: Some("2026-11-25T00:00:00Z".to_owned()),
            ..every("1m")
        };
        assert!(checked(None, Some(&until), NOW).is_ok());
        let never = RecurrenceInput {
            count: Some(0),
            ..every("1h")
        };
        assert!(message(checked(None, Some(&never), NOW)).contains("count must be 1"));
        // Hourly and slower may run without an end.
        assert!(checked(None, Some(&every("1h")), NOW).is_ok());
        assert!(checked(
            None,
            Some(&recurrence(Some("0 0 * * * *"), None, None)),
            NOW
        )
        .is_ok());
        // A test lowers the minimum.
        let fast = RecurrenceLimits {
            min_interval_seconds: 1,
        };
        let bounded = RecurrenceInput {
            count: Some(3),
            ..every("1s")
        };
        assert!(when(None, Some(&bounded), NOW, fast).is_ok());
    }

    #[test]
    fn an_advertisement_whose_every_firing_is_at_night_is_refused() {
        let recurring = |cron: &str| {
            let When::Recurring(recurrence) =
                checked(None, Some(&recurrence(Some(cron), None, None)), NOW).unwrap()
            else {
                panic!()
            };
            recurrence
        };
        // 22:00 KST every day, and 07:30 on Mondays: always at night.
        for night in ["0 0 22 * * *", "0 30 7 * * MON"] {
            let error = check_advertisement_firings(&recurring(night), NOW).unwrap_err();
            assert!(
                error.to_string().contains("21:00 and 08:00"),
                "{night}: {error}"
            );
        }
        // 10:00 KST, or every hour (some firings by day): allowed, each firing checked.
        for day in ["0 0 10 * * *", "0 0 * * * *"] {
            assert!(
                check_advertisement_firings(&recurring(day), NOW).is_ok(),
                "{day}"
            );
        }
        // Every 24 hours from a night-time start is always at night too.
        let nightly = Recurrence {
            cron: None,
            every_seconds: Some(86_400),
            timezone: DEFAULT_TIMEZONE.to_owned(),
            until_ms: None,
            count: None,
        };
        // NOW is 21:00 KST.
        assert!(check_advertisement_firings(&nightly, NOW).is_err());
        assert!(check_advertisement_firings(&nightly, NOW + 12 * 3_600_000).is_ok());
    }
}
