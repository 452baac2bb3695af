//! Rate limits shared by every gateway replica: a token bucket per key in Redis,
//! taken from in one script with Redis' own clock, so replicas whose clocks differ
//! still share one bucket. A caller over its rate is answered 429 with
//! `Retry-After` ([`ApiError::TooManyRequests`]).
use redis::aio::ConnectionManager;

use crate::error::ApiError;

/// A rate: `per_second` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// Takes `ARGV[3]` tokens from the bucket `KEYS[1]` refilled at `ARGV[1]` per second
/// up to `ARGV[2]`; answers `{1, 0}` when taken, else `{0, milliseconds to wait}`.
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
local taken = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  taken = 1
else
  wait = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {taken, wait}
";

/// Adds `ARGV[1]` messages to the day's count `KEYS[1]` unless that passes the cap
/// `ARGV[2]`; answers the count before, and whether they were added.
const COUNT_DAY: &str = r"
local before = tonumber(redis.call('GET', KEYS[1]) or '0')
local adding = tonumber(ARGV[1])
if before + adding > tonumber(ARGV[2]) then
  return {before, 0}
end
redis.call('INCRBY', KEYS[1], adding)
redis.call('EXPIRE', KEYS[1], 172800)
return {before, 1}
";

#[derive(Clone)]
pub struct RateLimiter {
    connection: ConnectionManager,
    script: redis::Script,
    day_script: redis::Script,
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
            connection,
            script: redis::Script::new(TAKE),
            day_script: redis::Script::new(COUNT_DAY),
        }
    }

    /// Takes one token from `bucket` (a Redis key) at `rate`, or answers how long to
    /// wait as 429 naming `what` is limited.
    pub async fn take(&self, bucket: &str, rate: Rate, what: &'static str) -> Result<(), ApiError> {
        let (taken, wait_ms): (u8, u64) = self
            .script
            .key(bucket)
            .arg(rate.per_second)
            .arg(rate.burst)
            .arg(1)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|error| ApiError::unavailable("rate limits", error))?;
        if taken == 1 {
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
        let now_ms = rns_types::time::now_milliseconds();
        let korean_ms = now_ms + KOREA_OFFSET_MS;
        let day = korean_ms / DAY_MS;
        let (before, added): (u64, u8) = self
            .day_script
            .key(format!("rns:c:{customer}:messages-on:{day}"))
            .arg(messages)
            .arg(cap)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|error| ApiError::unavailable("daily caps", error))?;
        if added == 1 {
            return Ok(());
        }
        Err(ApiError::DailyCapReached {
            cap,
            sent: before,
            retry_after_seconds: ((day + 1) * DAY_MS - korean_ms).div_ceil(1_000),
        })
    }
}

const DAY_MS: u64 = 24 * 60 * 60 * 1_000;
/// Korea is UTC+9 all year.
const KOREA_OFFSET_MS: u64 = 9 * 60 * 60 * 1_000;
