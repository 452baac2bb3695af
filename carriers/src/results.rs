//! Outcomes to RESULTS, gathered: the events of many jobs travel as one message per
//! customer instead of one message per job.
//!
//! A worker hands its job's events to [`ResultSink::record`] and settles the job
//! (ack, term or nak) only after that returned `Ok`: the events are then durable in
//! RESULTS. Through a [`Gatherer`], whatever is waiting when the previous publish
//! finished (up to [`GATHERED_AT_MOST`] outcomes) is grouped by customer into
//! [`ResultBatch`]es, published together, and each caller learns how its own message
//! fared. Under load this turns one JetStream publish, three consumer deliveries and
//! three acks per message into one per batch; when idle a lone outcome goes out at
//! once, with no timer to wait for.
//!
//! A batch's `Nats-Msg-Id` names exactly the outcomes in it (a lone outcome keeps its
//! own id), so an identical republish is dropped. Gathering changes nothing for a job
//! redelivered after its events were stored but before it was acknowledged: as
//! before, the redelivery is a new attempt with an outcome id of its own (the carrier
//! recognises the client reference and does not deliver again), and readers of
//! RESULTS settle per message — analytics keeps the final state, points settle once
//! per message. A webhook receiver may see that message's final state a second time,
//! in another delivery; the event names its message, so it can tell.
use std::collections::BTreeMap;

use bytes::Bytes;
use rns_nats::{publish_all, Outbound, PublishFailed};
use rns_types::subjects::result_subject;
use rns_types::wire::{MessageEvent, ResultBatch};
use rns_types::CustomerId;
use sha2::{Digest, Sha256};

use rns_service::gather::{GatherPolicy, Gatherer};

/// Outcomes gathered into one round of publishes at most.
pub const GATHERED_AT_MOST: usize = 1_024;

/// Outcomes in one RESULTS message at most (keeps messages far below the server's
/// payload limit).
pub const OUTCOMES_PER_MESSAGE: usize = 256;

/// One job's outcome to publish.
struct Outcome {
    customer: CustomerId,
    outcome_id: String,
    events: Vec<MessageEvent>,
}

/// Where workers record outcomes; cheap to clone. The publishing task ends once every
/// clone is dropped, after publishing what is still queued.
#[derive(Clone)]
pub struct ResultSink {
    gatherer: Gatherer<Outcome, Result<(), PublishFailed>>,
}

impl ResultSink {
    /// Starts the publishing task. `capacity` bounds the outcomes waiting; a full
    /// queue makes workers wait, which holds back their pulls.
    pub fn start(
        jetstream: async_nats::jetstream::Context,
        capacity: usize,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let policy = GatherPolicy {
            capacity,
            round_size: GATHERED_AT_MOST,
            parallel_rounds: 1,
            round_interval: std::time::Duration::ZERO,
        };
        let (gatherer, drain) = Gatherer::start(policy, move |outcomes| {
            publish_round(jetstream.clone(), outcomes)
        });
        (Self { gatherer }, drain)
    }

    /// Publishes `events` (the outcome `outcome_id` of one job of `customer`) and
    /// returns once JetStream stored them.
    pub async fn record(
        &self,
        customer: &CustomerId,
        outcome_id: String,
        events: Vec<MessageEvent>,
    ) -> Result<(), PublishFailed> {
        let outcome = Outcome {
            customer: customer.clone(),
            outcome_id,
            events,
        };
        self.gatherer.call(outcome).await.unwrap_or_else(|| {
            Err(PublishFailed {
                subject: result_subject(customer),
                reason: "the result publisher stopped".to_owned(),
                unanswered: false,
            })
        })
    }
}

/// Publishes a round's outcomes and answers each with how its message fared.
async fn publish_round(
    jetstream: async_nats::jetstream::Context,
    outcomes: Vec<Outcome>,
) -> Vec<Result<(), PublishFailed>> {
    metrics::histogram!(crate::metric_names::CARRIER_RESULTS_GATHERED)
        .record(outcomes.len() as f64);
    let mut answers = vec![Ok(()); outcomes.len()];
    let publishes = group(outcomes).into_iter().map(|(outbound, positions)| {
        let jetstream = &jetstream;
        async move { (publish_all(jetstream, [outbound], 1).await, positions) }
    });
    for (published, positions) in futures::future::join_all(publishes).await {
        if published.is_err() {
            for position in positions {
                answers[position] = published.clone();
            }
        }
    }
    answers
}

/// One RESULTS message per customer and [`OUTCOMES_PER_MESSAGE`] outcomes, each with
/// the positions (in the round) of the outcomes it carries.
fn group(round: Vec<Outcome>) -> Vec<(Outbound, Vec<usize>)> {
    let mut by_customer: BTreeMap<CustomerId, Vec<(usize, Outcome)>> = BTreeMap::new();
    for (position, outcome) in round.into_iter().enumerate() {
        by_customer
            .entry(outcome.customer.clone())
            .or_default()
            .push((position, outcome));
    }
    let mut messages = Vec::new();
    for (customer, mut outcomes) in by_customer {
        while !outcomes.is_empty() {
            let rest = outcomes.split_off(outcomes.len().min(OUTCOMES_PER_MESSAGE));
            let chunk = std::mem::replace(&mut outcomes, rest);
            messages.push(message(&customer, chunk));
        }
    }
    messages
}

fn message(customer: &CustomerId, outcomes: Vec<(usize, Outcome)>) -> (Outbound, Vec<usize>) {
    let message_id = match outcomes.as_slice() {
        [(_, lone)] => lone.outcome_id.clone(),
        many => {
            let mut digest = Sha256::new();
            for (_, outcome) in many {
                digest.update(outcome.outcome_id.as_bytes());
                digest.update(b"\n");
            }
            format!("outcomes:{}:{:x}", many.len(), digest.finalize())
        }
    };
    let mut events = Vec::with_capacity(
        outcomes
            .iter()
            .map(|(_, outcome)| outcome.events.len())
            .sum(),
    );
    let mut positions = Vec::with_capacity(outcomes.len());
    for (position, outcome) in outcomes {
        events.extend(outcome.events);
        positions.push(position);
    }
    let mut batch = ResultBatch {
        customer_id: customer.clone(),
        messages: Vec::new(),
        events,
    };
    batch.share_traces();
    let outbound = Outbound {
        subject: result_subject(customer),
        message_id,
        payload: Bytes::from(batch.encode()),
    };
    (outbound, positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(customer: &str, outcome_id: &str) -> Outcome {
        Outcome {
            customer: CustomerId::parse(customer).unwrap(),
            outcome_id: outcome_id.to_owned(),
            events: Vec::new(),
        }
    }

    fn ids(round: Vec<Outcome>) -> Vec<(String, String, Vec<usize>)> {
        group(round)
            .into_iter()
            .map(|(outbound, positions)| (outbound.subject, outbound.message_id, positions))
            .collect()
    }

    #[test]
    fn a_lone_outcome_keeps_its_own_id() {
        assert_eq!(
            ids(vec![outcome("acme", "outcome:a:0:1")]),
            vec![(
                "result.acme".to_owned(),
                "outcome:a:0:1".to_owned(),
                vec![0]
            )]
        );
    }

    #[test]
    fn outcomes_are_grouped_per_customer_and_split_at_the_message_limit() {
        let mut round = vec![outcome("bolt", "outcome:b:0:1")];
        for index in 0..(OUTCOMES_PER_MESSAGE + 1) {
            round.push(outcome("acme", &format!("outcome:{index}:0:1")));
        }
        let messages = ids(round);
        let sizes: Vec<(&str, usize)> = messages
            .iter()
            .map(|(subject, _, positions)| (subject.as_str(), positions.len()))
            .collect();
        assert_eq!(
            sizes,
            vec![
                ("result.acme", OUTCOMES_PER_MESSAGE),
                ("result.acme", 1),
                ("result.bolt", 1)
            ]
        );
        assert!(messages[0]
            .1
            .starts_with(&format!("outcomes:{OUTCOMES_PER_MESSAGE}:")));
        assert_eq!(messages[0].2[0], 1, "positions point back into the round");
        assert_eq!(messages[2].2, vec![0]);
    }

    #[test]
    fn the_same_outcomes_get_the_same_id_and_different_ones_another() {
        let id = |outcomes: &[&str]| {
            let round = outcomes.iter().map(|id| outcome("acme", id)).collect();
            ids(round)[0].1.clone()
        };
        assert_eq!(id(&["x", "y"]), id(&["x", "y"]));
        assert_ne!(id(&["x", "y"]), id(&["x", "z"]));
        assert_ne!(id(&["xy"]), id(&["x", "y"]));
    }
}
