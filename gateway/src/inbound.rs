//! Messages from handsets (see [`rns_types::inbound`]): the gateway reads `INBOUND`,
//! where the carriers service stored what carriers passed on, and
//!
//! - records an opt-out when a handset texted a sender's opt-out (080) number — that
//!   number exists for nothing else, so any text to it is the recipient asking that
//!   sender to stop (the same as the 080 line's `POST /v1/opt-outs`);
//! - keeps every message for the customer whose number it reached, newest first, in
//!   a Redis stream of at most [`KEPT_PER_CUSTOMER`] (`GET /v1/inbound-messages`);
//! - logs and counts one sent to a number no customer holds (a customer's own sender
//!   number is not enough to tell whose it is: customers may share one).
//!
//! A message is acknowledged once recorded; one that could not be (Redis away) is
//! read again a second later.
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::AckKind;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use rns_types::inbound::{Inbound, InboundMessage};
use rns_types::subjects::{INBOUND_CONSUMER, INBOUND_STREAM};
use rns_types::{CustomerId, PhoneNumber};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::AppState;

/// Messages kept per customer; older ones make room.
pub const KEPT_PER_CUSTOMER: usize = 10_000;
/// Messages recorded at once.
const CONCURRENCY: usize = 16;

/// One message from a handset as a customer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct InboundView {
    pub carrier: String,
    pub from: String,
    pub to: String,
    pub text: String,
    pub received_at_ms: u64,
    /// The sender number whose opt-out number it reached, when it did: the handset
    /// was opted out of that sender's messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opted_out_of: Option<PhoneNumber>,
}

/// A page of a customer's messages from handsets, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboundPage {
    pub items: Vec<InboundView>,
    pub next_cursor: Option<String>,
}

/// Customers' messages from handsets in Redis.
#[derive(Clone)]
pub struct InboundStore {
    connection: ConnectionManager,
}

impl std::fmt::Debug for InboundStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("InboundStore")
            .finish_non_exhaustive()
    }
}

fn stream_key(customer: &CustomerId) -> String {
    format!("rns:c:{customer}:inbound")
}

/// Whether `cursor` is a Redis stream id (`<ms>-<sequence>`), as pages return.
pub fn is_cursor(cursor: &str) -> bool {
    cursor.split_once('-').is_some_and(|(ms, sequence)| {
        [ms, sequence].iter().all(|part| {
            !part.is_empty() && part.len() <= 20 && part.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

impl InboundStore {
    /// On the gateway's shared Redis connection.
    pub fn new(connection: ConnectionManager) -> Self {
        Self { connection }
    }

    async fn keep(&self, customer: &CustomerId, view: &InboundView) -> Result<(), ApiError> {
        let json = serde_json::to_string(view).expect("an inbound view serialises");
        let _: String = redis::cmd("XADD")
            .arg(stream_key(customer))
            .arg("MAXLEN")
            .arg("~")
            .arg(KEPT_PER_CUSTOMER)
            .arg("*")
            .arg("message")
            .arg(json)
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    /// Up to `limit` of `customer`'s messages older than `cursor`, newest first.
    pub async fn page(
        &self,
        customer: &CustomerId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<InboundPage, ApiError> {
        let start = cursor.map_or_else(|| "+".to_owned(), |cursor| format!("({cursor}"));
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(stream_key(customer))
            .arg(start)
            .arg("-")
            .arg("COUNT")
            .arg(limit + 1)
            .query_async(&mut self.connection.clone())
            .await?;
        let more = entries.len() > limit;
        let mut items = Vec::with_capacity(limit);
        let mut last = None;
        for (id, fields) in entries.into_iter().take(limit) {
            let view = fields
                .iter()
                .find(|(field, _)| field == "message")
                .and_then(|(_, json)| serde_json::from_str::<InboundView>(json).ok());
            if let Some(view) = view {
                items.push(view);
            }
            last = Some(id);
        }
        Ok(InboundPage {
            items,
            next_cursor: last.filter(|_| more),
        })
    }
}

/// Reads `INBOUND` until `shutdown`, starting again a second after a failure to
/// start reading; the messages in hand are recorded first.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match read(&state, &shutdown).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, "reading messages from handsets failed; starting again");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

async fn read(state: &AppState, shutdown: &CancellationToken) -> Result<(), ApiError> {
    let unavailable =
        |error: &dyn std::fmt::Display| ApiError::unavailable("inbound", error.to_string());
    let consumer: PullConsumer = state
        .jetstream()
        .get_consumer_from_stream(INBOUND_CONSUMER, INBOUND_STREAM)
        .await
        .map_err(|error| unavailable(&error))?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(CONCURRENCY * 4)
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|error| unavailable(&error))?;
    messages
        .take_until(shutdown.cancelled())
        .for_each_concurrent(CONCURRENCY, |message| {
            let state = state.clone();
            async move {
                let message = match message {
                    Ok(message) => message,
                    Err(error) => {
                        tracing::warn!(%error, "pulling messages from handsets failed");
                        return;
                    }
                };
                let inbound = match serde_json::from_slice::<Inbound>(&message.payload) {
                    Ok(inbound) => inbound,
                    Err(error) => {
                        tracing::error!(subject = %message.subject, %error, "undecodable message from a handset; dropping it");
                        metrics::counter!(crate::metric_names::INBOUND_MESSAGES_TOTAL, "outcome" => "undecodable").increment(1);
                        let _ = message.ack_with(AckKind::Term).await;
                        return;
                    }
                };
                match record(&state, inbound).await {
                    Ok(outcome) => {
                        metrics::counter!(crate::metric_names::INBOUND_MESSAGES_TOTAL, "outcome" => outcome).increment(1);
                        if let Err(error) = message.ack().await {
                            tracing::warn!(%error, "acknowledging a message from a handset failed; it will be recorded again");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "recording a message from a handset failed; reading it again");
                        let _ = message
                            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                            .await;
                    }
                }
            }
        })
        .await;
    Ok(())
}

/// Records one message from a handset; what became of it, as a metric label.
async fn record(state: &AppState, inbound: Inbound) -> Result<&'static str, ApiError> {
    let Inbound::MobileOriginated(message) = inbound;
    let line = match PhoneNumber::parse(&message.to) {
        Ok(to) => state.opt_outs().line(&to).await?,
        Err(_) => None,
    };
    let Some((customer, sender)) = line else {
        tracing::warn!(carrier = %message.carrier, from = %message.from, to = %message.to, text = %message.text, "a message from a handset to a number no customer holds");
        return Ok("unmatched");
    };
    let handset = PhoneNumber::parse_mobile(&message.from);
    if let Ok(handset) = &handset {
        state.opt_outs().record(&customer, &sender, handset).await?;
        tracing::info!(%customer, %sender, "opt-out recorded from a handset's message");
    }
    let InboundMessage {
        carrier,
        from,
        to,
        text,
        received_at_ms,
    } = message;
    let view = InboundView {
        carrier: carrier.to_string(),
        from,
        to,
        text,
        received_at_ms,
        opted_out_of: handset.is_ok().then_some(sender),
    };
    state.inbound().keep(&customer, &view).await?;
    Ok(if view.opted_out_of.is_some() {
        "opted_out"
    } else {
        "kept"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_stream_ids() {
        assert!(is_cursor("1764000000000-0"));
        assert!(!is_cursor("1764000000000"));
        assert!(!is_cursor("-0"));
        assert!(!is_cursor("1-x"));
        assert!(!is_cursor(&format!("{}-0", "9".repeat(21))));
    }
}
