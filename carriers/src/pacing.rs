//! Per-carrier send-rate limits, one budget shared by every carriers process.
//!
//! A carrier contracts a rate (messages per second per account); above it, it answers
//! "slow down" (HTTP 429, SMPP `ESME_RTHROTTLED`). The budget lives in Redis as a
//! generic cell rate algorithm: one key per carrier holds the theoretical arrival time
//! of the next free slot, and one script call takes the next `count` slots and says
//! how long to wait for the first. Slots are spaced exactly `1 / rate` apart and handed
//! out once, whichever process asks, so the processes together never exceed the rate
//! (no burst above it). A slot taken and then not used (its process died) is lost
//! capacity, never extra.
//!
//! The rate comes from `rns.toml` (`rate_per_second` of the carrier), and the operator
//! changes it at run time (`PUT /v1/admin/carriers/{id}/rate` on the gateway, which
//! writes the Redis hash [`RATES_KEY`]; `{"per_second": null}` returns to the
//! configured rate); every call reads it, so a change applies to the next slot. No
//! rate means no pacing; a process that finds a carrier without a rate asks again
//! only after [`UNPACED_RECHECK`], so an unpaced carrier costs no Redis call per
//! submit (and a rate the operator sets takes up to that long to apply).
//!
//! If Redis cannot be reached, submits are not held back (the worker logs it and
//! counts `rns_carrier_pacing_failures_total`): the carrier's own throttle answers
//! are then waited out like any other ([`crate::worker`]), so nothing fails over.
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::Script;
use rns_types::CarrierId;

pub use rns_types::carrier::CARRIER_RATES_KEY as RATES_KEY;

/// How long a carrier found without a rate is taken to stay so.
pub const UNPACED_RECHECK: Duration = Duration::from_secs(1);

/// KEYS: the carrier's next-slot time (µs), the hash of overrides. ARGV: carrier id,
/// configured rate (0 for none), slots wanted. Returns the µs to wait for the first,
/// or -1 when the carrier has no rate.
const TAKE_SCRIPT: &str = r"
local rate = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or ARGV[2])
if not rate or rate <= 0 then
  return -1
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local next_slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if next_slot < now then
  next_slot = now
end
local after = next_slot + tonumber(ARGV[3]) * 1000000 / rate
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.floor((after - now) / 1000) + 1000)
return math.floor(next_slot - now)
";

/// Slots handed out by Redis for one carrier.
#[derive(Clone)]
pub struct Pacer {
    connection: ConnectionManager,
    script: Script,
    carrier: CarrierId,
    slot_key: String,
    configured_per_second: u32,
    /// Until when the carrier is known to have no rate.
    unpaced_until: std::sync::Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Pacer")
            .field("carrier", &self.carrier)
            .field("configured_per_second", &self.configured_per_second)
            .finish_non_exhaustive()
    }
}

impl Pacer {
    /// A pacer of `carrier` at `per_second` (0: none unless the operator sets one)
    /// on the shared connection.
    pub fn new(connection: ConnectionManager, carrier: CarrierId, per_second: u32) -> Self {
        Self {
            connection,
            script: Script::new(TAKE_SCRIPT),
            slot_key: format!("carrier_rate:{carrier}:next_slot"),
            carrier,
            configured_per_second: per_second,
            unpaced_until: Default::default(),
        }
    }

    /// Takes the next `count` slots of the carrier's budget; returns how long to wait
    /// before the first of them.
    pub async fn take(&self, count: u32) -> Result<Duration, redis::RedisError> {
        let now = Instant::now();
        if self.unpaced().is_some_and(|until| now < until) {
            return Ok(Duration::ZERO);
        }
        let mut connection = self.connection.clone();
        let wait_microseconds: i64 = self
            .script
            .key(&self.slot_key)
            .key(RATES_KEY)
            .arg(self.carrier.as_str())
            .arg(self.configured_per_second)
            .arg(count.max(1))
            .invoke_async(&mut connection)
            .await?;
        let Ok(wait_microseconds) = u64::try_from(wait_microseconds) else {
            *self.unpaced_until.lock().expect("never poisoned") = Some(now + UNPACED_RECHECK);
            return Ok(Duration::ZERO);
        };
        Ok(Duration::from_micros(wait_microseconds))
    }

    fn unpaced(&self) -> Option<Instant> {
        *self.unpaced_until.lock().expect("never poisoned")
    }
}
