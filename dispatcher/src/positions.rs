//! Routing positions, handed out by Redis so the split is exact across requests,
//! dispatcher instances and restarts.
//!
//! Each (customer, channel, weights) has a counter. A request of `n` recipients
//! reserves `n` consecutive positions with one atomic script call, and message `i`
//! goes to `schedule[start + i]`. The reservation is remembered per request for a day,
//! so a redelivered request gets the same positions, routes every message to the same
//! carrier as before, and republishes under the same `Nats-Msg-Id`s (which JetStream
//! drops) instead of advancing the counter twice. A weight change keys a new counter,
//! so the new ratio starts at the beginning of its own cycle.
use redis::aio::ConnectionManager;
use redis::Script;
use rns_types::routing::Weights;
use rns_types::wire::SendRequest;

use crate::error::DispatchError;

const RESERVE_SCRIPT: &str = r"
local stored = redis.call('GET', KEYS[2])
if stored then return stored end
local finish = redis.call('INCRBY', KEYS[1], ARGV[1])
local reservation = tostring(finish - tonumber(ARGV[1])) .. '|' .. ARGV[3]
redis.call('SET', KEYS[2], reservation, 'EX', ARGV[2])
return reservation
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
        let (customer, channel, count) = (
            &request.customer_id,
            request.channel,
            request.recipients.len(),
        );
        let request = &request.request_id;
        let canonical = weights.canonical();
        let counter = format!("rns:route:{customer}:{channel}:{canonical}");
        let reservation = format!("rns:route-request:{request}:{channel}");
        let mut connection = self.connection.clone();
        let stored: String = self
            .script
            .key(counter)
            .key(reservation)
            .arg(count)
            .arg(RESERVATION_SECONDS)
            .arg(&canonical)
            .invoke_async(&mut connection)
            .await?;
        let parsed = stored.split_once('|').and_then(|(start, weights)| {
            Some(Reservation {
                start: start.parse().ok()?,
                weights: Weights::from_canonical(weights)?,
            })
        });
        parsed.ok_or_else(|| {
            DispatchError::Redis(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "unreadable routing reservation",
                stored,
            )))
        })
    }
}
