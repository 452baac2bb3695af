//! Sends accepted now, gathered into shared SEND messages, and their points
//! reservations, gathered into shared Redis calls.
//!
//! Under load many small sends wait for their publish at once. Those of one customer
//! are published together as one SEND message, a JSON array of [`SendRequest`]s under
//! `Nats-Msg-Id` [`message_ids::gathered_sends`] of the first, so the publish, its
//! storage, the dispatcher's delivery and acknowledgement, and the dispatcher's
//! publishes of their records and jobs (it batches the jobs of a message) are paid once
//! per round instead of once per request. Each caller still answers 202 only after
//! JetStream acknowledged the message holding its request. While sends keep coming,
//! SEND messages that are not full leave at most once per gather interval (5 ms unless
//! `[gateway] gather_interval_milliseconds` says otherwise), so a round holds what
//! arrived in it instead of what arrived while the last publish was in flight: fewer,
//! larger messages for every process behind the gateway, for at most the interval of
//! accept latency. A send after a quiet interval is published at once
//! ([`rns_service::gather`]).
//!
//! Only a send whose request id can never be published again is gathered. A send
//! under an `Idempotency-Key` may be retried under the same request id after an
//! ambiguous failure, and SEND's de-duplication of `send:<request>` is what keeps the
//! retry from being dispatched twice, so it is published alone; so is a send larger
//! than [`MAX_GATHERED_BYTES`] (a bulk send shares nothing worth gathering).
//!
//! Points are reserved the same way ([`PointsReserver`]): the reservations waiting
//! at once, of any customers, go to Redis as one script call that takes each in
//! turn, all or nothing, so each send still gets its own answer (a 402 for one does
//! not touch the others).
use std::time::Duration;

use async_nats::jetstream::Context;
use bytes::Bytes;
use rns_nats::{publish_all, Outbound, PublishFailed};
use rns_points::{PointsStore, Reservation, ReservationRequest};
use rns_service::gather::{GatherPolicy, Gatherer};
use rns_types::subjects::{message_ids, send_subject};
use rns_types::wire::JsonArray;
use rns_types::{CustomerId, RequestId};

/// The largest encoded send that is gathered; a round of [`ROUND_SIZE`] of them stays
/// well below the server's 1 MiB payload limit.
pub const MAX_GATHERED_BYTES: usize = 8 * 1024;
/// Most sends in one SEND message.
pub const ROUND_SIZE: usize = 64;
/// [`GatewaySettings::gather_interval_milliseconds`] unless set: 5 ms. Measured with
/// `rns-bench --only paced` at 10,000 requests/s on 2 cores, it took a request from
/// 16 to 54 sends per SEND message and from 160 to 122 µs of CPU over every process
/// (BENCHMARKS.md); the accept latency it adds is at most the interval.
///
/// [`GatewaySettings::gather_interval_milliseconds`]: crate::GatewaySettings::gather_interval_milliseconds
pub const DEFAULT_INTERVAL_MILLISECONDS: u64 = 5;

/// How sends and reservations gather: up to [`ROUND_SIZE`] per round, four rounds at
/// once (while they wait, the next ones gather), and at most 4,096 waiting (callers
/// beyond wait for room). Reservations go to Redis as soon as there is room; sends
/// wait out the gateway's interval between SEND messages.
const POLICY: GatherPolicy = GatherPolicy {
    capacity: 4_096,
    round_size: ROUND_SIZE,
    parallel_rounds: 4,
    round_interval: Duration::ZERO,
};

/// How confirmations of published reservations gather: no caller waits for them, so
/// they go to Redis at most every 50 ms, up to 1,000 in one call (at 10,000 sends a
/// second, 20 calls instead of one per send), at most 16,384 waiting.
const CONFIRMATIONS: GatherPolicy = GatherPolicy {
    capacity: 16_384,
    round_size: 1_000,
    parallel_rounds: 1,
    round_interval: Duration::from_millis(50),
};

/// A send to publish now: its customer, its id and its encoded [`SendRequest`].
///
/// [`SendRequest`]: rns_types::wire::SendRequest
#[derive(Debug, Clone)]
pub struct PendingSend {
    pub customer: CustomerId,
    pub request_id: RequestId,
    pub payload: Bytes,
    /// Whether it may share a SEND message (see the module's documentation).
    pub gatherable: bool,
}

impl PendingSend {
    /// Published on its own: `send:<request>` on `send.<customer>`.
    fn alone(self) -> Outbound {
        Outbound {
            subject: send_subject(&self.customer),
            message_id: message_ids::send(&self.request_id),
            payload: self.payload,
        }
    }
}

/// Publishes sends accepted now, gathering concurrent ones; cheap to clone.
#[derive(Clone)]
pub struct SendPublisher {
    jetstream: Context,
    gatherer: Gatherer<PendingSend, Result<(), PublishFailed>>,
}

impl std::fmt::Debug for SendPublisher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SendPublisher")
            .finish_non_exhaustive()
    }
}

impl SendPublisher {
    /// Starts the gathering task, a SEND message of gathered sends at most every
    /// `interval` unless full; it ends once every clone is dropped.
    pub fn start(jetstream: Context, interval: Duration) -> Self {
        let publisher = jetstream.clone();
        let policy = GatherPolicy {
            round_interval: interval,
            ..POLICY
        };
        let (gatherer, _drain) = Gatherer::start(policy, move |sends: Vec<PendingSend>| {
            let jetstream = publisher.clone();
            async move { publish_round(&jetstream, sends).await }
        });
        Self {
            jetstream,
            gatherer,
        }
    }

    /// Returns once JetStream acknowledged the message holding `send`.
    pub async fn publish(&self, send: PendingSend) -> Result<(), PublishFailed> {
        if !send.gatherable || send.payload.len() > MAX_GATHERED_BYTES {
            record_held(1);
            return publish_until_answered(&self.jetstream, send.alone()).await;
        }
        let subject = send_subject(&send.customer);
        match self.gatherer.call(send).await {
            Some(published) => published,
            None => Err(PublishFailed {
                subject,
                reason: "the gateway is shutting down".to_owned(),
                unanswered: false,
            }),
        }
    }
}

/// Reserves points, gathering concurrent reservations into one Redis call, and
/// confirms their publishes the same way; cheap to clone.
#[derive(Clone)]
pub struct PointsReserver {
    gatherer: Gatherer<ReservationRequest, Result<Reservation, String>>,
    confirmations: Gatherer<(CustomerId, RequestId), ()>,
}

impl std::fmt::Debug for PointsReserver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PointsReserver")
            .finish_non_exhaustive()
    }
}

impl PointsReserver {
    /// Starts the gathering task; it ends once every clone is dropped.
    pub fn start(store: PointsStore) -> Self {
        let confirmer = store.clone();
        let (confirmations, _drain) = Gatherer::start(CONFIRMATIONS, move |published: Vec<_>| {
            let store = confirmer.clone();
            async move {
                let count = published.len();
                if let Err(error) = store.confirm_published(&published).await {
                    // Their points are released after a while, their messages unpaid.
                    tracing::error!(%error, requests = count, "confirming published requests failed");
                }
                vec![(); count]
            }
        });
        let (gatherer, _drain) = Gatherer::start(POLICY, move |asked: Vec<ReservationRequest>| {
            let store = store.clone();
            async move {
                let count = asked.len();
                match store.reserve_all(&asked).await {
                    Ok(answers) => answers.into_iter().map(Ok).collect(),
                    Err(error) => vec![Err(error.to_string()); count],
                }
            }
        });
        Self {
            gatherer,
            confirmations,
        }
    }

    /// [`PointsStore::reserve`], in a shared call.
    pub async fn reserve(&self, asked: ReservationRequest) -> Result<Reservation, String> {
        self.gatherer
            .call(asked)
            .await
            .unwrap_or_else(|| Err("the gateway is shutting down".to_owned()))
    }

    /// Confirms that `request`, reserved with `awaits_publish`, is published
    /// ([`PointsStore::confirm_published`], in a shared call): returns once it is
    /// queued, as the answer to the caller does not depend on it.
    pub async fn confirm_published(&self, customer: &CustomerId, request: &RequestId) {
        if !self
            .confirmations
            .hand_in((customer.clone(), *request))
            .await
        {
            tracing::error!(customer = %customer, request = %request, "the gateway is shutting down: a publish goes unconfirmed");
        }
    }
}

/// The SEND messages of a round: one per customer, in the order of each customer's
/// first send, with the index of every send it holds.
pub fn messages(sends: Vec<PendingSend>) -> Vec<(Outbound, Vec<usize>)> {
    let mut by_customer: Vec<(CustomerId, Vec<(usize, PendingSend)>)> = Vec::new();
    for (index, send) in sends.into_iter().enumerate() {
        match by_customer
            .iter_mut()
            .find(|(customer, _)| *customer == send.customer)
        {
            Some((_, held)) => held.push((index, send)),
            None => by_customer.push((send.customer.clone(), vec![(index, send)])),
        }
    }
    by_customer
        .into_iter()
        .map(|(customer, mut held)| {
            if held.len() == 1 {
                let (index, send) = held.pop().expect("one send");
                return (send.alone(), vec![index]);
            }
            let length: usize = held.iter().map(|(_, send)| send.payload.len() + 1).sum();
            let mut payload = JsonArray::with_capacity(length);
            for (_, send) in &held {
                payload.push(&send.payload);
            }
            let outbound = Outbound {
                subject: send_subject(&customer),
                message_id: message_ids::gathered_sends(&held[0].1.request_id),
                payload: Bytes::from(payload.take()),
            };
            (outbound, held.into_iter().map(|(index, _)| index).collect())
        })
        .collect()
}

/// How long a SEND publish left unanswered is published again under its
/// `Nats-Msg-Id` (well inside SEND's two-minute duplicate window) before its sends fail.
pub const UNANSWERED_RETRY_FOR: Duration = Duration::from_secs(20);
/// The pause before publishing an unanswered message again.
const UNANSWERED_PAUSE: Duration = Duration::from_millis(200);

/// Publishes `message`, and again under the same id while no answer comes (an
/// acknowledgement that timed out, a connection that broke), for up to
/// [`UNANSWERED_RETRY_FOR`]: the server may have stored it, and only its answer to
/// the same id says so. Otherwise a send stored without an answer would get a 503
/// and its points back while its messages go out. It is published again only while
/// the client is connected: a publish made while it is not would wait in the
/// client and go out at its reconnection, after this had given up.
async fn publish_until_answered(
    jetstream: &Context,
    message: Outbound,
) -> Result<(), PublishFailed> {
    let deadline = tokio::time::Instant::now() + UNANSWERED_RETRY_FOR;
    let client = jetstream.client();
    loop {
        match publish_all(jetstream, [message.clone()], 1).await {
            Err(failed) if failed.unanswered => {
                metrics::counter!(crate::metric_names::GATEWAY_PUBLISHES_UNANSWERED_TOTAL)
                    .increment(1);
                tracing::warn!(subject = %failed.subject, reason = %failed.reason, "a SEND publish went unanswered; publishing it again under its id");
                loop {
                    tokio::time::sleep(UNANSWERED_PAUSE).await;
                    if tokio::time::Instant::now() >= deadline {
                        return Err(failed);
                    }
                    if client.connection_state() == async_nats::connection::State::Connected {
                        break;
                    }
                }
            }
            result => return result,
        }
    }
}

/// Counts a SEND message published now by the requests it holds.
fn record_held(requests: usize) {
    metrics::histogram!(crate::metric_names::GATEWAY_SEND_MESSAGE_SIZE).record(requests as f64);
}

async fn publish_round(
    jetstream: &Context,
    sends: Vec<PendingSend>,
) -> Vec<Result<(), PublishFailed>> {
    let count = sends.len();
    let (outbound, held): (Vec<Outbound>, Vec<Vec<usize>>) = messages(sends).into_iter().unzip();
    for indices in &held {
        record_held(indices.len());
    }
    let published = futures::future::join_all(
        outbound
            .into_iter()
            .map(|message| publish_until_answered(jetstream, message)),
    )
    .await;
    let mut answers: Vec<Option<Result<(), PublishFailed>>> = vec![None; count];
    for (indices, result) in held.iter().zip(published) {
        for index in indices {
            answers[*index] = Some(result.clone());
        }
    }
    answers
        .into_iter()
        .map(|answer| answer.expect("every send is in one message"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(customer: &str, text: &str) -> PendingSend {
        PendingSend {
            customer: CustomerId::parse(customer).unwrap(),
            request_id: RequestId::generate(),
            payload: Bytes::from(format!("{{\"text\":\"{text}\"}}")),
            gatherable: true,
        }
    }

    #[test]
    fn a_round_becomes_one_message_per_customer_in_first_seen_order() {
        let sends = vec![
            pending("acme", "a1"),
            pending("beta", "b1"),
            pending("acme", "a2"),
            pending("acme", "a3"),
        ];
        let first = sends[0].request_id;
        let beta = sends[1].request_id;
        let messages = messages(sends);
        assert_eq!(messages.len(), 2);
        let (acme, held) = &messages[0];
        assert_eq!(acme.subject, "send.acme");
        assert_eq!(acme.message_id, message_ids::gathered_sends(&first));
        assert_eq!(held, &vec![0, 2, 3]);
        let texts: Vec<serde_json::Value> = serde_json::from_slice(&acme.payload).unwrap();
        let texts: Vec<&str> = texts
            .iter()
            .map(|send| send["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["a1", "a2", "a3"]);
        // A customer with one send in the round publishes it as it always was.
        let (alone, held) = &messages[1];
        assert_eq!(alone.subject, "send.beta");
        assert_eq!(alone.message_id, message_ids::send(&beta));
        assert_eq!(alone.payload, Bytes::from_static(b"{\"text\":\"b1\"}"));
        assert_eq!(held, &vec![1]);
    }
}
