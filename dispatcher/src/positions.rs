//! Routing positions, handed out by Redis so the split is exact across requests,
//! dispatcher instances and restarts.
//!
//! Each (customer, channel, weights) has a counter. A request of `n` recipients
//! reserves `n` consecutive positions with one atomic script call, and message `i`
//! goes to `schedule[start + i]`. The reservation is remembered for a day, so a
//! redelivered request gets the same positions, routes every message to the same
//! carrier as before, and republishes under the same `Nats-Msg-Id`s (which JetStream
//! drops) instead of advancing the counter twice. A weight change keys a new counter,
//! so the new ratio starts at the beginning of its own cycle.
//!
//! The requests of a gathered SEND message ([`Positions::reserve_gathered`]) reserve
//! one run of positions per channel and weights they were accepted with, remembered
//! under the message's first request: the requests follow each other in it in the
//! order of the message, which a redelivery repeats. A busy customer's requests cost
//! Redis three commands and one remembered key per SEND message, not per request. A
//! message whose requests a dispatcher older than this reserved one by one (and
//! that is redelivered after an upgrade) gets those reservations back.
use redis::aio::ConnectionManager;
use redis::Script;
use rns_types::routing::{position_counter_key, Weights};
use rns_types::wire::SendRequest;
use rns_types::{Channel, RequestId};

use crate::error::DispatchError;

/// KEYS: per run of positions (a request's, or a gathered message's run), its
/// counter, its reservation and the reservation whose presence says the run's
/// requests were reserved one by one before (the run's first request's, for a
/// gathered run reserved by a dispatcher older than gathered runs; the reservation
/// itself otherwise). ARGV: the seconds a reservation is kept, then per run its length
/// and canonical weights. Returns each run's reservation, `<start>|<weights>`, or an
/// empty string when its requests were reserved one by one.
const RESERVE_SCRIPT: &str = r"
local reservations = {}
for i = 1, #KEYS / 3 do
  local counter, reservation, earlier = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local count, weights = ARGV[2 * i], ARGV[2 * i + 1]
  local stored = redis.call('GET', reservation)
  if not stored then
    if earlier ~= reservation and redis.call('EXISTS', earlier) == 1 then
      stored = ''
    else
      local finish = redis.call('INCRBY', counter, count)
      stored = tostring(finish - tonumber(count)) .. '|' .. weights
      redis.call('SET', reservation, stored, 'EX', ARGV[1])
    end
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
        let mut reserved = self.reserve_runs(&[Run::request(request, weights)]).await?;
        reserved
            .remove(0)
            .ok_or_else(|| unreadable("a request's reservation answered empty".to_owned()))
    }

    /// The positions of the requests of one gathered SEND message whose first request
    /// is `first`, each given with its weights around open circuits: one run per
    /// channel and weights the requests were accepted with, in order of first
    /// appearance, routed by the weights given with the run's first request; each
    /// request's positions follow those of the requests before it in its run. The
    /// same message gets the same answers every time.
    pub async fn reserve_gathered(
        &self,
        first: &RequestId,
        requests: &[(&SendRequest, &Weights)],
    ) -> Result<Vec<Reservation>, DispatchError> {
        // Per request: its run, and where in the run its positions start.
        let mut placed: Vec<(usize, u64)> = Vec::with_capacity(requests.len());
        let mut keys: Vec<(Channel, Option<String>)> = Vec::new();
        let mut runs: Vec<Run<'_>> = Vec::new();
        for (request, weights) in requests {
            let key = (
                request.channel,
                request.weights.as_ref().map(Weights::canonical),
            );
            let run = match keys.iter().position(|known| *known == key) {
                Some(run) => run,
                None => {
                    runs.push(Run {
                        counter: position_counter_key(
                            &request.customer_id,
                            request.channel,
                            weights,
                        ),
                        reservation: format!(
                            "rns:route-gathered:{first}:{}:{}",
                            request.channel,
                            keys.len()
                        ),
                        earlier: Some(request_reservation_key(request)),
                        length: 0,
                        weights,
                    });
                    keys.push(key);
                    runs.len() - 1
                }
            };
            placed.push((run, runs[run].length as u64));
            runs[run].length += request.recipients.len();
        }
        let reserved = self.reserve_runs(&runs).await?;
        // A run whose requests an older dispatcher reserved one by one (the message
        // is redelivered after an upgrade) gets those reservations back.
        let mut alone: Vec<Run<'_>> = Vec::new();
        let mut alone_index: Vec<Option<usize>> = vec![None; requests.len()];
        for (index, ((request, weights), (run, _))) in requests.iter().zip(&placed).enumerate() {
            if reserved[*run].is_none() {
                alone_index[index] = Some(alone.len());
                alone.push(Run::request(request, weights));
            }
        }
        let earlier = if alone.is_empty() {
            Vec::new()
        } else {
            self.reserve_runs(&alone).await?
        };
        placed
            .into_iter()
            .zip(alone_index)
            .map(|((run, offset), alone)| {
                let reservation = match alone {
                    Some(index) => earlier[index].clone(),
                    None => reserved[run].as_ref().map(|reservation| Reservation {
                        start: reservation.start + offset,
                        weights: reservation.weights.clone(),
                    }),
                };
                reservation
                    .ok_or_else(|| unreadable("a request's reservation answered empty".to_owned()))
            })
            .collect()
    }

    /// Reserves each run's positions, or reads back those reserved before; `None` for
    /// a run whose requests were reserved one by one before.
    async fn reserve_runs(
        &self,
        runs: &[Run<'_>],
    ) -> Result<Vec<Option<Reservation>>, DispatchError> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(RESERVATION_SECONDS);
        for run in runs {
            invocation
                .key(&run.counter)
                .key(&run.reservation)
                .key(run.earlier.as_ref().unwrap_or(&run.reservation))
                .arg(run.length)
                .arg(run.weights.canonical());
        }
        let mut connection = self.connection.clone();
        let stored: Vec<String> = invocation.invoke_async(&mut connection).await?;
        if stored.len() != runs.len() {
            return Err(unreadable(format!(
                "{} reservations for {} runs",
                stored.len(),
                runs.len()
            )));
        }
        stored
            .into_iter()
            .map(|stored| {
                if stored.is_empty() {
                    return Ok(None);
                }
                stored
                    .split_once('|')
                    .and_then(|(start, weights)| {
                        Some(Reservation {
                            start: start.parse().ok()?,
                            weights: Weights::from_canonical(weights)?,
                        })
                    })
                    .map(Some)
                    .ok_or_else(|| unreadable(stored))
            })
            .collect()
    }
}

/// Where one request's own reservation is remembered.
fn request_reservation_key(request: &SendRequest) -> String {
    format!(
        "rns:route-request:{}:{}",
        request.request_id, request.channel
    )
}

/// Consecutive positions under one counter, remembered under `reservation`.
struct Run<'a> {
    counter: String,
    reservation: String,
    /// The reservation whose presence says the run's requests were reserved one by
    /// one before (see [`RESERVE_SCRIPT`]).
    earlier: Option<String>,
    length: usize,
    weights: &'a Weights,
}

impl<'a> Run<'a> {
    /// One request's own run.
    fn request(request: &SendRequest, weights: &'a Weights) -> Self {
        Self {
            counter: position_counter_key(&request.customer_id, request.channel, weights),
            reservation: request_reservation_key(request),
            earlier: None,
            length: request.recipients.len(),
            weights,
        }
    }
}

fn unreadable(detail: String) -> DispatchError {
    DispatchError::Redis(redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unreadable routing reservation",
        detail,
    )))
}
