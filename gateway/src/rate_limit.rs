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

#[derive(Clone)]
pub struct RateLimiter {
    connection: ConnectionManager,
    script: redis::Script,
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
}
