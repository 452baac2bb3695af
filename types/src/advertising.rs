//! The Korean rules for commercial messages (정보통신망법 제50조) that depend on time:
//! advertisements may not be sent from 21:00 to 08:00 KST unless the recipients
//! consented to night-time advertising.

/// Korea Standard Time, which has no daylight saving.
const KST_OFFSET_MS: u64 = 9 * 60 * 60 * 1_000;
const HOUR_MS: u64 = 60 * 60 * 1_000;
const DAY_MS: u64 = 24 * HOUR_MS;
const QUIET_FROM_HOUR: u64 = 21;
const QUIET_UNTIL_HOUR: u64 = 8;

/// When an advertisement accepted at `now_ms` may be sent: `None` if now, else the
/// next 08:00 KST (as epoch milliseconds) when `now_ms` falls in 21:00–08:00 KST.
pub fn advertisement_hold_until(now_ms: u64) -> Option<u64> {
    let local = now_ms + KST_OFFSET_MS;
    let hour = (local % DAY_MS) / HOUR_MS;
    if (QUIET_UNTIL_HOUR..QUIET_FROM_HOUR).contains(&hour) {
        return None;
    }
    let day_start = local - local % DAY_MS;
    let release_local = if hour >= QUIET_FROM_HOUR {
        day_start + DAY_MS + QUIET_UNTIL_HOUR * HOUR_MS
    } else {
        day_start + QUIET_UNTIL_HOUR * HOUR_MS
    };
    Some(release_local - KST_OFFSET_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertisements_wait_for_eight_in_the_morning_korean_time() {
        // 2026-11-24 12:00 UTC is 21:00 KST: held until 2026-11-25 08:00 KST,
        // which is 2026-11-24 23:00 UTC.
        let nine_pm_kst = 1_795_521_600_000;
        assert_eq!(
            advertisement_hold_until(nine_pm_kst),
            Some(1_795_561_200_000)
        );
        // 02:00 KST is held until 08:00 the same day.
        let two_am_kst = nine_pm_kst + 5 * HOUR_MS;
        assert_eq!(
            advertisement_hold_until(two_am_kst),
            Some(1_795_561_200_000)
        );
        // 08:00 and 20:59 KST send at once.
        assert_eq!(advertisement_hold_until(1_795_561_200_000), None);
        assert_eq!(advertisement_hold_until(nine_pm_kst - 60_000), None);
    }
}
