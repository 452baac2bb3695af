//! Routing positions, handed out by Redis so the split is exact across requests,
//! dispatcher instances and restarts.
//!
//! Each (customer, channel, weights) has a counter. A request of `n` recipients
//! reserves `n` consecutive positions with one atomic script call (the requests of a
//! gathered SEND message reserve theirs in one call), and message `i` goes to
//! `schedule[start + i]`. The reservation is remembered per request for a day,
//! so a redelivered request gets the same positions, routes every message to the same
//! carrier as before, and republishes under the same `Nats-Msg-Id`s (which JetStream
//! drops) instead of advancing the counter twice. A weight change keys a new counter,
//! so the new ratio starts at the beginning of its own cycle.
use redis::aio::ConnectionManager;
use redis::Script;
use rns_types::routing::{position_counter_key, Weights};
use rns_types::wire::SendRequest;

use crate::error::DispatchError;

/// KEYS: per request, its counter and its reservation. ARGV: the seconds a
/// reservation is kept, then per request its recipient count and canonical weights.
/// Returns each request's reservation, `<start>|<weights>`.
const RESERVE_SCRIPT: &str = r"
local reservations = {}
for i = 1, #KEYS / 2 do
  local counter, reservation = KEYS[2 * i - 1], KEYS[2 * i]
  local count, weights = ARGV[2 * i], ARGV[2 * i + 1]
  local stored = redis.call('GET', reservation)
  if not stored then
    local finish = redis.call('INCRBY', counter, count)
    stored = tostring(finish - tonumber(count)) .. '|' .. weights
    redis.call('SET', reservation, stored, 'EX', ARGV[1])
  end
  reservations[i] = stored
end
return reservations
";

/// Positions reserved for a request, and the weights they index: a redelivered
/// request gets the weights of its first dispatch back, even if weights or circuit
/// states changed since, so every message goes to the same carrier as before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub start: u64,
    pub weights: Weights,
}

/// How long a request's reservation is remembered, in seconds.
const RESERVATION_SECONDS: u64 = 24 * 60 * 60;

#[derive(Clone)]
pub struct Positions {
    connection: ConnectionManager,
    script: Script,
}

impl std::fmt::Debug for Positions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Positions").finish_non_exhaustive()
    }
}

impl Positions {
    pub async fn connect(url: &str) -> Result<Self, DispatchError> {
        let client = redis::Client::open(url)?;
        let connection = ConnectionManager::new(client).await?;
        Ok(Self {
            connection,
            script: Script::new(RESERVE_SCRIPT),
        })
    }

    /// The first of the consecutive positions reserved for `request`'s recipients
    /// under `weights`; the same answer, weights included, every time for the same
    /// request and channel.
    pub async fn reserve(
        &self,
        request: &SendRequest,
        weights: &Weights,
    ) -> Result<Reservation, DispatchError> {
        let mut reserved = self.reserve_all(&[(request, weights)]).await?;
        Ok(reserved.remove(0))
    }

    /// [`Positions::reserve`] for each request, in one call to Redis.
    pub async fn reserve_all(
        &self,
        requests: &[(&SendRequest, &Weights)],
    ) -> Result<Vec<Reservation>, DispatchError> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(RESERVATION_SECONDS);
        for (request, weights) in requests {
            invocation
                .key(position_counter_key(
                    &request.customer_id,
                    request.channel,
                    weights,
                ))
                .key(format!(
                    "rns:route-request:{}:{}",
                    request.request_id, request.channel
                ))
                .arg(request.recipients.len())
                .arg(weights.canonical());
        }
        let mut connection = self.connection.clone();
        let stored: Vec<String> = invocation.invoke_async(&mut connection).await?;
        if stored.len() != requests.len() {
            return Err(unreadable(format!(
                "{} reservations for {} requests",
                stored.len(),
                requests.len()
            )));
        }
        stored
            .into_iter()
            .map(|stored| {
                stored
                    .split_once('|')
                    .and_then(|(start, weights)| {
                        Some(Reservation {
                            start: start.parse().ok()?,
                            weights: Weights::from_canonical(weights)?,
                        })
                    })
                    .ok_or_else(|| unreadable(stored))
            })
            .collect()
    }
}

fn unreadable(detail: String) -> DispatchError {
    DispatchError::Redis(redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unreadable routing reservation",
        detail,
    )))
}
