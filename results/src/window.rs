//! Newest-first pages over tables sorted by `(customer_id, request_id, …)`.
//!
//! Request ids are ULIDs, so a time range is a request id range, which ClickHouse
//! answers from the primary key without reading the rest of a customer's history.
//! A page is looked for in a window below its upper end that starts at one hour and
//! grows eightfold until it holds a full page or reaches the lower end (the filter's
//! `since`, or the beginning of time). The newest page of a customer with ten million
//! messages thus reads a few thousand rows instead of all of them; ClickHouse 18.16
//! cannot stop an `ORDER BY … DESC LIMIT` early by itself.
use rns_types::RequestId;

const FIRST_SPAN_MS: u64 = 60 * 60 * 1_000;
const GROWTH: u64 = 8;
/// A window wider than this (about 30 years) has no lower end.
const WIDEST_SPAN_MS: u64 = 30 * 365 * 24 * 60 * 60 * 1_000;

/// How much earlier than its request id's time a row's day column may be: none
/// for the acceptance time, which is the id's time or later, but clocks of different
/// machines may disagree a little about when an event happened.
const CLOCK_MARGIN_MS: u64 = 5 * 60 * 1_000;

/// `AND <day_column> >= …`: the condition that lets ClickHouse skip every day before
/// requests made at `at_ms` (a number, written into the statement as digits).
pub fn day_floor(day_column: &str, at_ms: u64) -> String {
    let seconds = at_ms.saturating_sub(CLOCK_MARGIN_MS) / 1_000;
    format!(" AND {day_column} >= toDateTime({seconds})")
}

/// The request id bounds of one window: `lower <= request_id < upper`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub lower: Option<String>,
    pub upper: Option<String>,
    /// The time of `lower`, which also bounds the table's day column from below so
    /// ClickHouse skips whole days: within a day, a small window still costs a granule
    /// per day otherwise.
    pub lower_ms: Option<u64>,
    /// Whether no window below this one can hold more rows.
    pub last: bool,
}

impl Window {
    /// A window of exactly the requests made in `[since_ms, until_ms)`.
    pub fn between(since_ms: u64, until_ms: u64) -> Self {
        Self {
            lower: Some(RequestId::first_at(since_ms).to_string()),
            upper: Some(RequestId::first_at(until_ms).to_string()),
            lower_ms: Some(since_ms),
            last: true,
        }
    }

    /// The conditions on `request_id` and on the table's `day_column` (a `DateTime`
    /// no earlier than the request's time), as `AND …` text, and the values of their
    /// placeholders in order.
    pub fn conditions(&self, day_column: &str) -> (String, Vec<String>) {
        let mut text = String::new();
        let mut values = Vec::new();
        if let Some(lower_ms) = self.lower_ms {
            text.push_str(&day_floor(day_column, lower_ms));
        }
        if let Some(lower) = &self.lower {
            text.push_str(" AND request_id >= ?");
            values.push(lower.clone());
        }
        if let Some(upper) = &self.upper {
            text.push_str(" AND request_id < ?");
            values.push(upper.clone());
        }
        (text, values)
    }
}

/// The windows to try, smallest first, for rows made in `[since_ms, until_ms)` and
/// below `top_ms` (a cursor's time; the window's upper end includes its millisecond,
/// the cursor condition itself excludes what was shown). `now_ms` anchors the first
/// window when nothing else bounds it.
pub fn windows(
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    top_ms: Option<u64>,
    now_ms: u64,
) -> Vec<Window> {
    let upper_ms = match (until_ms, top_ms.map(|top| top + 1)) {
        (Some(until), Some(top)) => Some(until.min(top)),
        (until, top) => until.or(top),
    };
    let upper = upper_ms.map(|at| RequestId::first_at(at).to_string());
    // Nothing is made after now (give or take clocks, which `upper` still covers).
    let anchor = upper_ms.map_or(now_ms, |upper| upper.min(now_ms));
    let mut windows = Vec::new();
    let mut span = FIRST_SPAN_MS;
    loop {
        let start = anchor.saturating_sub(span);
        match since_ms {
            Some(since) if start <= since => {
                windows.push(Window {
                    lower: Some(RequestId::first_at(since).to_string()),
                    upper,
                    lower_ms: Some(since),
                    last: true,
                });
                return windows;
            }
            _ if span >= WIDEST_SPAN_MS || start == 0 => {
                windows.push(Window {
                    lower: since_ms.map(|since| RequestId::first_at(since).to_string()),
                    upper,
                    lower_ms: since_ms,
                    last: true,
                });
                return windows;
            }
            _ => windows.push(Window {
                lower: Some(RequestId::first_at(start).to_string()),
                upper: upper.clone(),
                lower_ms: Some(start),
                last: false,
            }),
        }
        span = span.saturating_mul(GROWTH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 60 * 60 * 1_000;

    #[test]
    fn windows_grow_from_an_hour_to_the_lower_end() {
        let now = 1_795_564_800_000;
        let windows = windows(Some(now - 100 * HOUR), None, None, now);
        let lowers: Vec<_> = windows.iter().map(|window| window.lower.clone()).collect();
        assert_eq!(
            lowers,
            vec![
                Some(RequestId::first_at(now - HOUR).to_string()),
                Some(RequestId::first_at(now - 8 * HOUR).to_string()),
                Some(RequestId::first_at(now - 64 * HOUR).to_string()),
                Some(RequestId::first_at(now - 100 * HOUR).to_string()),
            ]
        );
        assert!(windows.iter().all(|window| window.upper.is_none()));
        assert_eq!(
            windows.iter().map(|window| window.last).collect::<Vec<_>>(),
            vec![false, false, false, true]
        );
    }

    #[test]
    fn without_a_lower_end_the_last_window_is_unbounded_below() {
        let now = 1_795_564_800_000;
        let windows = windows(None, None, None, now);
        let last = windows.last().unwrap();
        assert!(last.last && last.lower.is_none());
        assert!(windows.len() < 12);
    }

    #[test]
    fn a_cursor_or_until_bounds_every_window_above() {
        let now = 1_795_564_800_000;
        let cursor = now - 5 * HOUR;
        let windows = windows(None, Some(now - 2 * HOUR), Some(cursor), now);
        let upper = RequestId::first_at(cursor + 1).to_string();
        assert!(windows
            .iter()
            .all(|window| window.upper.as_deref() == Some(upper.as_str())));
        assert_eq!(
            windows[0].lower,
            Some(RequestId::first_at(cursor + 1 - HOUR).to_string())
        );
    }

    #[test]
    fn ids_made_in_a_millisecond_sort_between_its_bounds() {
        let at = 1_795_564_800_123;
        let id = RequestId::from_parts(at, u128::MAX).to_string();
        assert!(RequestId::first_at(at).to_string() <= id);
        assert!(id < RequestId::first_at(at + 1).to_string());
    }
}
