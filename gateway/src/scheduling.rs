//! When a send goes out: now, once at a time, or recurring — parsed and checked
//! without I/O, with every error saying what is wrong.
//!
//! - `scheduled_at`: RFC 3339, in the future, at most [`MAX_DAYS_AHEAD`] days ahead;
//!   a fraction of a second rounds up to the next second (schedules fire on whole
//!   seconds, never early).
//! - `recurrence`: `{"cron": "0 0 9 * * MON", "timezone": "Asia/Seoul", "until": …}`
//!   (6 fields: second minute hour day month weekday) or `{"every": "30m"}` (units
//!   `s`, `m`, `h`, `d`, combinable: `1h30m`), with an optional `until`.
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rns_types::schedule::Recurrence;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// How far ahead a send may be scheduled.
pub const MAX_DAYS_AHEAD: u64 = 180;
const DAY_MS: u64 = 24 * 60 * 60 * 1_000;
/// The shortest interval of a recurring send.
pub const MIN_EVERY_SECONDS: u64 = 1;
pub const DEFAULT_TIMEZONE: &str = "Asia/Seoul";

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
            let (cron, every_seconds) = match (&input.cron, &input.every) {
                (Some(cron), None) => {
                    cron_pattern(cron)?;
                    (
                        Some(cron.split_whitespace().collect::<Vec<_>>().join(" ")),
                        None,
                    )
                }
                (None, Some(every)) => {
                    let seconds = parse_interval(every)?;
                    if !(MIN_EVERY_SECONDS..=MAX_DAYS_AHEAD * 86_400).contains(&seconds) {
                        return Err(invalid(format!(
                            "recurrence.every must be between {MIN_EVERY_SECONDS} second and {MAX_DAYS_AHEAD} days"
                        )));
                    }
                    (None, Some(seconds))
                }
                _ => return Err(invalid(
                    "recurrence needs exactly one of cron (\"0 0 9 * * MON\") or every (\"30m\")",
                )),
            };
            Ok(When::Recurring(Recurrence {
                cron,
                every_seconds,
                timezone: timezone_name,
                until_ms,
            }))
        }
    }
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
        }
    }

    fn message(result: Result<When, ApiError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn one_time_schedules_are_future_whole_seconds_within_180_days() {
        assert_eq!(
            when(Some("2026-11-25T09:00:00.200+09:00"), None, NOW).unwrap(),
            When::Once {
                at_ms: NOW + 12 * 3_600_000 + 1_000
            }
        );
        assert!(message(when(Some("2026-11-24T11:59:59Z"), None, NOW)).contains("in the past"));
        assert!(message(when(Some("2027-06-01T00:00:00Z"), None, NOW)).contains("180 days"));
        assert!(message(when(Some("tomorrow"), None, NOW)).contains("RFC 3339"));
    }

    #[test]
    fn recurrences_are_checked_and_say_what_is_wrong() {
        let cron = when(
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
        let every = when(None, Some(&recurrence(None, Some("1h30m"), None)), NOW).unwrap();
        let When::Recurring(every) = every else {
            panic!()
        };
        assert_eq!(every.header(), "@every 5400s");

        assert!(message(when(
            None,
            Some(&recurrence(Some("0 9 * * MON"), None, None)),
            NOW
        ))
        .contains("it needs 6"));
        assert!(message(when(
            None,
            Some(&recurrence(Some("0 0 25 * * MON"), None, None)),
            NOW
        ))
        .contains("not a valid cron"));
        assert!(message(when(
            None,
            Some(&recurrence(Some("0 0 9 * * MON"), None, Some("Mars/Base"))),
            NOW
        ))
        .contains("time zone"));
        assert!(
            message(when(None, Some(&recurrence(None, Some("soon"), None)), NOW))
                .contains("interval")
        );
        assert!(
            message(when(None, Some(&recurrence(None, None, None)), NOW)).contains("exactly one")
        );
        assert!(message(when(
            Some("2026-12-01T00:00:00Z"),
            Some(&recurrence(None, Some("1m"), None)),
            NOW
        ))
        .contains("not both"));
    }
}
