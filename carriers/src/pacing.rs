//! Per-carrier send-rate limits, one budget shared by every carriers process, handed
//! out by priority.
//!
//! A carrier contracts a rate (messages per second per account); above it, it answers
//! "slow down" (HTTP 429, SMPP `ESME_RTHROTTLED`). The budget lives in Redis as a
//! generic cell rate algorithm: one key per carrier holds the theoretical arrival time
//! of the next free slot, and one script call takes the next `count` slots, saying
//! when the first comes and how far apart they are. Slots are spaced exactly
//! `1 / rate` apart and handed out once, whichever process asks, so the processes
//! together never exceed the rate (no burst above it). A slot taken and then not used
//! (its process died) is lost capacity, never extra.
//!
//! Within a process, submits wait for a slot in lanes ([`Priority`]): one task per
//! carrier takes a few slots at a time (never more than are waiting, at most
//! [`SLOTS_PER_TAKE`], and no more than [`HELD_AHEAD`] of the budget: one slot at a
//! time at low rates) and gives each, when it comes, to the first waiter of the
//! highest lane waiting. So a one-time password that arrives behind a campaign on a
//! throttled carrier gets the next slot of its process, and no process holds the
//! budget far ahead of the others.
//!
//! The rate comes from `rns.toml` (`rate_per_second` of the carrier), and the operator
//! changes it at run time (`PUT /v1/admin/carriers/{id}/rate` on the gateway, which
//! writes the Redis hash [`RATES_KEY`]; `{"per_second": null}` returns to the
//! configured rate); every take reads it, so a change applies to the next slots. No
//! rate means no pacing; a process that finds a carrier without a rate asks again
//! only after [`UNPACED_RECHECK`], so an unpaced carrier costs no Redis call per
//! submit (and a rate the operator sets takes up to that long to apply).
//!
//! If Redis cannot be reached, waiting submits are let go (the worker logs it and
//! counts `rns_carrier_pacing_failures_total`): the carrier's own throttle answers
//! are then waited out like any other ([`crate::worker`]), so nothing fails over.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::Script;
use rns_types::{CarrierId, Priority};
use tokio::sync::{oneshot, Notify};

pub use rns_types::carrier::CARRIER_RATES_KEY as RATES_KEY;

/// How long a carrier found without a rate is taken to stay so.
pub const UNPACED_RECHECK: Duration = Duration::from_secs(1);

/// Slots one process takes from Redis at once, at most: few enough that a process
/// holds little of the budget ahead of the others, enough to spare Redis a call per
/// submit at high rates.
pub const SLOTS_PER_TAKE: u32 = 16;

/// How much of the budget's time one take may cover.
pub const HELD_AHEAD: Duration = Duration::from_millis(100);

/// KEYS: the carrier's next-slot time (µs), the hash of overrides. ARGV: carrier id,
/// configured rate (0 for none), slots wanted. Returns `{µs until the first slot, µs
/// between slots}`, or `{-1, 0}` when the carrier has no rate.
const TAKE_SCRIPT: &str = r"
local rate = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or ARGV[2])
if not rate or rate <= 0 then
  return {-1, 0}
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = 1000000 / rate
local next_slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if next_slot < now then
  next_slot = now
end
local after = next_slot + tonumber(ARGV[3]) * interval
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.floor((after - now) / 1000) + 1000)
return {math.floor(next_slot - now), math.floor(interval)}
";

/// The pacing failed: Redis could not be asked. The waiter was let go unpaced.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the shared rate budget cannot be read: {0}")]
pub struct PacingFailed(String);

/// What a waiter is told when its turn comes.
type Turn = Result<(), PacingFailed>;

/// The submits of one process waiting for a slot, by lane.
#[derive(Default)]
struct Waiting {
    lanes: [VecDeque<oneshot::Sender<Turn>>; 3],
}

impl Waiting {
    fn len(&self) -> usize {
        self.lanes.iter().map(VecDeque::len).sum()
    }

    /// Gives a turn to the first waiter of the highest lane that still waits.
    fn release_first(&mut self, turn: Turn) -> bool {
        for lane in &mut self.lanes {
            while let Some(waiter) = lane.pop_front() {
                if waiter.send(turn.clone()).is_ok() {
                    return true;
                }
            }
        }
        false
    }
}

fn lane_index(priority: Priority) -> usize {
    match priority {
        Priority::High => 0,
        Priority::Normal => 1,
        Priority::Bulk => 2,
    }
}

struct Shared {
    connection: ConnectionManager,
    script: Script,
    carrier: CarrierId,
    slot_key: String,
    configured_per_second: u32,
    /// Until when the carrier is known to have no rate.
    unpaced_until: Mutex<Option<Instant>>,
    waiting: Mutex<Waiting>,
    arrived: Arc<Notify>,
}

/// One carrier's slots for this process. Clones share the waiting lanes; the task
/// that hands out slots ends with the last clone.
#[derive(Clone)]
pub struct Pacer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Pacer")
            .field("carrier", &self.shared.carrier)
            .field("configured_per_second", &self.shared.configured_per_second)
            .finish_non_exhaustive()
    }
}

impl Pacer {
    /// A pacer of `carrier` at `per_second` (0: none unless the operator sets one)
    /// on the shared connection. Starts its task, so it needs a Tokio runtime.
    pub fn new(connection: ConnectionManager, carrier: CarrierId, per_second: u32) -> Self {
        let arrived = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            connection,
            script: Script::new(TAKE_SCRIPT),
            slot_key: format!("carrier_rate:{carrier}:next_slot"),
            carrier,
            configured_per_second: per_second,
            unpaced_until: Mutex::new(None),
            waiting: Mutex::new(Waiting::default()),
            arrived: arrived.clone(),
        });
        tokio::spawn(hand_out(Arc::downgrade(&shared), arrived));
        Self { shared }
    }

    /// Waits for this carrier's next slot that goes to `priority`; at once when the
    /// carrier has no rate. An error says the budget could not be read (the caller
    /// goes on unpaced).
    pub async fn acquire(&self, priority: Priority) -> Result<(), PacingFailed> {
        if self.shared.unpaced() {
            return Ok(());
        }
        let (turn_tx, turn_rx) = oneshot::channel();
        self.shared.lock_waiting().lanes[lane_index(priority)].push_back(turn_tx);
        self.shared.arrived.notify_one();
        turn_rx
            .await
            .unwrap_or_else(|_| Err(PacingFailed("the pacer stopped".to_owned())))
    }
}

impl Shared {
    fn unpaced(&self) -> bool {
        self.unpaced_until
            .lock()
            .expect("never poisoned")
            .is_some_and(|until| Instant::now() < until)
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().expect("never poisoned")
    }

    /// Lets every waiter go with `turn`.
    fn release_all(&self, turn: Turn) {
        let mut waiting = self.lock_waiting();
        while waiting.release_first(turn.clone()) {}
    }

    /// Takes `count` slots: when the first comes and the time between them, or
    /// `None` when the carrier has no rate.
    async fn take(&self, count: u32) -> Result<Option<(Duration, Duration)>, redis::RedisError> {
        let mut connection = self.connection.clone();
        let (wait_microseconds, interval_microseconds): (i64, i64) = self
            .script
            .key(&self.slot_key)
            .key(RATES_KEY)
            .arg(self.carrier.as_str())
            .arg(self.configured_per_second)
            .arg(count.max(1))
            .invoke_async(&mut connection)
            .await?;
        let microseconds = |value: i64| Duration::from_micros(u64::try_from(value).unwrap_or(0));
        Ok((wait_microseconds >= 0).then(|| {
            (
                microseconds(wait_microseconds),
                microseconds(interval_microseconds),
            )
        }))
    }
}

/// The task that hands out one carrier's slots to this process's waiters, highest
/// lane first; ends once the pacer is gone.
async fn hand_out(shared: Weak<Shared>, arrived: Arc<Notify>) {
    // The time between slots as the last take found it; none before the first.
    let mut interval_seen: Option<Duration> = None;
    loop {
        let Some(pacer) = shared.upgrade() else {
            return;
        };
        let waiting = pacer.lock_waiting().len();
        if waiting == 0 {
            // Woken by an arrival, or now and then to notice the pacer is gone.
            drop(pacer);
            let _ = tokio::time::timeout(Duration::from_secs(1), arrived.notified()).await;
            continue;
        }
        let within_held_ahead = interval_seen.map_or(1, |interval| {
            u32::try_from(HELD_AHEAD.as_nanos() / interval.as_nanos().max(1))
                .unwrap_or(u32::MAX)
                .max(1)
        });
        let count = u32::try_from(waiting)
            .unwrap_or(u32::MAX)
            .min(SLOTS_PER_TAKE)
            .min(within_held_ahead);
        match pacer.take(count).await {
            Ok(Some((first, interval))) => {
                interval_seen = Some(interval);
                let started = tokio::time::Instant::now();
                for slot in 0..count {
                    tokio::time::sleep_until(started + first + interval * slot).await;
                    // A slot nobody waits for any more is lost, never saved up.
                    pacer.lock_waiting().release_first(Ok(()));
                }
            }
            Ok(None) => {
                *pacer.unpaced_until.lock().expect("never poisoned") =
                    Some(Instant::now() + UNPACED_RECHECK);
                pacer.release_all(Ok(()));
            }
            Err(error) => {
                pacer.release_all(Err(PacingFailed(error.to_string())));
                // Not a hot loop while Redis is away: the next waiters come later.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
