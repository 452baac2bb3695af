//! Rate limits shared by every gateway replica: a token bucket per key in Redis,
//! taken from in one script with Redis' own clock, so replicas whose clocks differ
//! still share one bucket. A caller over its rate is answered 429 with
//! `Retry-After` ([`ApiError::TooManyRequests`]).
//!
//! A replica takes tokens a few at a time ([`Rate::lease`]: a twentieth of a second's
//! worth, at most an eighth of the burst) and spends them locally, so a busy
//! customer costs one Redis call per lease rather than per request. Tokens taken
//! are gone from the shared bucket, so every replica together never passes the
//! rate; tokens a replica holds are spent later (or dropped when the rate changes).
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use redis::aio::ConnectionManager;

use crate::error::ApiError;

/// A rate: `per_second` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    /// How many tokens a replica takes from the shared bucket at once.
    pub fn lease(self) -> u32 {
        (self.per_second / 20.0).min(self.burst / 8.0).max(1.0) as u32
    }
}

/// Takes up to `ARGV[3]` tokens from the bucket `KEYS[1]` refilled at `ARGV[1]` per
/// second up to `ARGV[2]`; answers `{tokens taken, 0}`, or `{0, milliseconds until
/// one is there}`.
const TAKE: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1])
local at = tonumber(bucket[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local taken = math.min(cost, math.floor(tokens))
local wait = 0
if taken >= 1 then
  tokens = tokens - taken
else
  taken = 0
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {taken, wait}
";

/// The tokens a replica holds of one bucket, and the lease in flight: requests that
/// find none wait for one lease instead of each taking its own.
#[derive(Debug, Default)]
struct Held {
    tokens: AtomicU32,
    /// Requests waiting for the lease in flight: the next lease takes enough for
    /// them too, so a burst costs one round trip, not one per lease.
    waiting: AtomicU32,
    leasing: tokio::sync::Mutex<()>,
}

impl Held {
    fn spend(&self) -> bool {
        self.tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tokens| {
                tokens.checked_sub(1)
            })
            .is_ok()
    }
}

#[derive(Clone)]
pub struct RateLimiter {
    connection: ConnectionManager,
    script: redis::Script,
    daily: rns_points::DailyCaps,
    /// Tokens this replica holds, by bucket.
    held: moka::sync::Cache<String, Arc<Held>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RateLimiter")
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            daily: rns_points::DailyCaps::new(connection.clone()),
            connection,
            script: redis::Script::new(TAKE),
            held: moka::sync::Cache::new(100_000),
        }
    }

    /// Takes one token from `bucket` (a Redis key) at `rate` — one this replica
    /// holds, else a lease from the shared bucket — or answers how long to wait as
    /// 429 naming `what` is limited.
    pub async fn take(&self, bucket: &str, rate: Rate, what: &'static str) -> Result<(), ApiError> {
        // Held per rate: tokens leased under a rate the operator has since changed are
        // dropped, not spent under the new one.
        let held = self.held.get_with(
            format!("{bucket}@{}/{}", rate.per_second, rate.burst),
            || Arc::new(Held::default()),
        );
        if held.spend() {
            return Ok(());
        }
        held.waiting.fetch_add(1, Ordering::AcqRel);
        let leasing = held.leasing.lock().await;
        let waiting = held.waiting.fetch_sub(1, Ordering::AcqRel);
        if held.spend() {
            return Ok(());
        }
        let wanted = rate.lease().max(waiting).min(rate.burst.max(1.0) as u32);
        let (taken, wait_ms): (u32, u64) = self
            .script
            .key(bucket)
            .arg(rate.per_second)
            .arg(rate.burst)
            .arg(wanted)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|error| ApiError::unavailable("rate limits", error))?;
        if taken >= 1 {
            // One for this request, the rest for the next ones.
            held.tokens.fetch_add(taken - 1, Ordering::AcqRel);
            drop(leasing);
            return Ok(());
        }
        Err(ApiError::TooManyRequests {
            what,
            retry_after_seconds: wait_ms.div_ceil(1_000).max(1),
        })
    }

    /// Counts `messages` against `customer`'s cap of messages per Korean day, or
    /// answers 429 (`daily_cap_reached`) until the day ends, counting nothing.
    pub async fn count_day(
        &self,
        customer: &rns_types::CustomerId,
        messages: u64,
        cap: u64,
    ) -> Result<(), ApiError> {
        match self.daily.count(customer, messages, cap, None).await {
            Ok(rns_points::DayCount::Counted) => Ok(()),
            Ok(rns_points::DayCount::Over {
                cap,
                sent,
                retry_after_seconds,
            }) => Err(ApiError::DailyCapReached {
                cap,
                sent,
                retry_after_seconds,
            }),
            Err(error) => Err(ApiError::unavailable("daily caps", error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_a_twentieth_of_a_second_and_at_most_an_eighth_of_the_burst() {
        let rate = |per_second: f64, burst: f64| Rate { per_second, burst }.lease();
        assert_eq!(rate(200.0, 400.0), 10);
        assert_eq!(rate(100_000.0, 200_000.0), 5_000);
        assert_eq!(rate(1_000.0, 16.0), 2, "a small burst bounds it");
        assert_eq!(rate(5.0, 20.0), 1, "slow rates take one at a time");
        assert_eq!(rate(1.0, 3.0), 1);
    }
}
