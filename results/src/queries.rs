//! Result queries over ClickHouse, always scoped to one customer.
//!
//! Every query takes the customer id and filters on it first (it leads every
//! table's sort key), so no query can read another customer's rows. Duplicate rows
//! (from a batch inserted twice) do not change answers: events are de-duplicated by
//! (ordinal, kind) and a message's status is the one of its highest-ordinal event.
use std::collections::BTreeSet;

use clickhouse::Row;
use rns_types::{CustomerId, MessageId, RequestId};
use serde::{Deserialize, Serialize};

use crate::error::ResultsError;
use crate::window::day_floor;

/// One event of a message's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub at: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    pub hop: u16,
    pub attempt: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A message with its current status and whole timeline. Its channel, type, subject
/// and text are what was finally sent: an AlimTalk message that fell back shows its
/// SMS/LMS, with the AlimTalk it was first in `fell_back_from`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: String,
    pub request_id: String,
    pub to: String,
    pub from: String,
    /// What was finally sent.
    #[serde(flatten)]
    pub sent: MessageContent,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fell_back_from: Option<MessageContent>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub schedule_id: String,
    pub accepted_at: String,
    pub status: String,
    pub carrier: Option<String>,
    pub attempts: u32,
    pub events: Vec<EventView>,
}

/// What one message said, in one channel.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MessageContent {
    pub channel: String,
    #[serde(rename = "type")]
    pub message_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    pub text: String,
}

#[derive(Debug, Row, Deserialize)]
struct MessageHead {
    to_number: String,
    from_number: String,
    channel: String,
    message_type: String,
    subject: String,
    text: String,
    schedule_id: String,
    accepted_at_ms: u64,
    fallback_type: String,
    fallback_subject: String,
    fallback_text: String,
}

#[derive(Debug, Row, Deserialize)]
struct EventLine {
    at_ms: u64,
    ordinal: u32,
    kind: String,
    status: String,
    carrier: String,
    hop: u16,
    attempt: u16,
    detail: String,
}

/// Per carrier, over a time range: messages routed to it as first choice, messages
/// it delivered, messages that left it for another carrier of its channel, and
/// AlimTalk messages it could not deliver that fell back to SMS/LMS.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct CarrierSplit {
    pub carrier: String,
    pub first_choice: u64,
    pub delivered: u64,
    pub failed_over: u64,
    pub fell_back: u64,
}

/// Formats epoch milliseconds as RFC 3339 in UTC with milliseconds.
pub use rns_types::time::rfc3339;

/// Read access to results, for the gateway's result endpoints.
#[derive(Clone)]
pub struct ResultQueries {
    client: clickhouse::Client,
}

impl std::fmt::Debug for ResultQueries {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ResultQueries")
            .finish_non_exhaustive()
    }
}

impl ResultQueries {
    pub fn new(client: clickhouse::Client) -> Self {
        Self { client }
    }

    /// The message with its timeline, or `None` if the customer has no such message.
    pub async fn message(
        &self,
        customer: &CustomerId,
        message: &MessageId,
    ) -> Result<Option<MessageView>, ResultsError> {
        let made_at_ms = message.request_id().made_at_ms();
        let request = message.request_id().to_string();
        let message_text = message.to_string();
        let head = self
            .client
            .query(
                &format!("SELECT to_number, from_number, toString(channel) AS channel, toString(message_type) AS message_type,
                        subject, text, schedule_id, accepted_at_ms, fallback_type, fallback_subject, fallback_text
                 FROM messages WHERE customer_id = ? AND request_id = ? AND message_id = ?{} LIMIT 1",
                 day_floor("accepted_at", made_at_ms)),
            )
            .bind(customer.as_str())
            .bind(&request)
            .bind(&message_text)
            .fetch_optional::<MessageHead>()
            .await?;
        let Some(head) = head else {
            return Ok(None);
        };
        let mut lines = self
            .client
            .query(
                &format!("SELECT at_ms, ordinal, toString(kind) AS kind, toString(status) AS status, carrier, hop, attempt, detail
                 FROM events WHERE customer_id = ? AND request_id = ? AND message_id = ?{}",
                 day_floor("at", made_at_ms)),
            )
            .bind(customer.as_str())
            .bind(&request)
            .bind(&message_text)
            .fetch_all::<EventLine>()
            .await?;
        lines.sort_by(|left, right| {
            (left.ordinal, left.at_ms, &left.kind).cmp(&(right.ordinal, right.at_ms, &right.kind))
        });
        lines.dedup_by(|later, earlier| {
            later.ordinal == earlier.ordinal && later.kind == earlier.kind
        });
        let current = lines.last();
        let status = current
            .map(|line| line.status.clone())
            .unwrap_or_else(|| "queued".to_owned());
        let carrier = lines
            .iter()
            .rev()
            .map(|line| &line.carrier)
            .find(|carrier| !carrier.is_empty())
            .cloned();
        let fell_back = lines.iter().any(|line| line.kind == "fell_back");
        let attempts = lines
            .iter()
            .filter(|line| line.attempt > 0)
            .map(|line| (line.hop, line.attempt))
            .collect::<BTreeSet<_>>()
            .len() as u32;
        let events = lines
            .into_iter()
            .map(|line| EventView {
                at: rfc3339(line.at_ms),
                kind: line.kind,
                carrier: (!line.carrier.is_empty()).then_some(line.carrier),
                hop: line.hop,
                attempt: line.attempt,
                detail: line.detail,
            })
            .collect();
        let MessageHead {
            to_number,
            from_number,
            channel,
            message_type,
            subject,
            text,
            schedule_id,
            accepted_at_ms,
            fallback_type,
            fallback_subject,
            fallback_text,
        } = head;
        let first = MessageContent {
            channel,
            message_type,
            subject,
            text,
        };
        // A message that fell back shows the SMS/LMS that reached the handset.
        let fallback = (fell_back && !fallback_type.is_empty()).then(|| MessageContent {
            channel: rns_types::Channel::Sms.to_string(),
            message_type: fallback_type,
            subject: fallback_subject,
            text: fallback_text,
        });
        let (sent, fell_back_from) = match fallback {
            Some(fallback) => (fallback, Some(first)),
            None => (first, None),
        };
        Ok(Some(MessageView {
            id: message_text,
            request_id: request,
            to: to_number,
            from: from_number,
            sent,
            fell_back_from,
            schedule_id,
            accepted_at: rfc3339(accepted_at_ms),
            status,
            carrier,
            attempts,
            events,
        }))
    }

    /// How the customer's traffic split between carriers in `[since, until)`, as
    /// first choices and as deliveries; duplicate rows count once. Only the four kinds
    /// counted are read, and duplicates are found by a hash of the message id (64
    /// bits: a collision among a day's million events has odds of one in 10^7) rather
    /// than the id itself: a day of a large customer's events is counted 1.7 times as
    /// fast (see BENCHMARKS.md, "The console's pages").
    pub async fn carrier_split(
        &self,
        customer: &CustomerId,
        since_seconds: u32,
        until_seconds: u32,
    ) -> Result<Vec<CarrierSplit>, ResultsError> {
        let splits = self
            .client
            .query(
                "SELECT carrier,
                        countIf(kind = 'routed' AND hop = 1) AS first_choice,
                        countIf(kind = 'delivered') AS delivered,
                        countIf(kind = 'failed_over') AS failed_over,
                        countIf(kind = 'fell_back') AS fell_back
                 FROM (
                     SELECT kind, any(carrier) AS carrier, any(hop) AS hop
                     FROM events
                     WHERE customer_id = ? AND at >= toDateTime(?) AND at < toDateTime(?)
                       AND kind IN ('routed', 'delivered', 'failed_over', 'fell_back')
                     GROUP BY cityHash64(message_id), ordinal, kind
                 )
                 WHERE carrier != ''
                 GROUP BY carrier
                 ORDER BY carrier",
            )
            .bind(customer.as_str())
            .bind(since_seconds)
            .bind(until_seconds)
            .fetch_all::<CarrierSplit>()
            .await?;
        Ok(splits)
    }

    /// The customer's messages matching `filter`, newest first (see [`crate::listing`]).
    pub async fn list_messages(
        &self,
        customer: &CustomerId,
        filter: &crate::listing::MessageFilter,
        cursor: Option<&crate::listing::ListCursor>,
        limit: usize,
    ) -> Result<crate::listing::MessagePage, ResultsError> {
        crate::listing::list_messages(&self.client, customer, filter, cursor, limit).await
    }

    /// The request with its totals, or `None` if the customer has no such request.
    pub async fn request_summary(
        &self,
        customer: &CustomerId,
        request: &RequestId,
    ) -> Result<Option<crate::requests::RequestView>, ResultsError> {
        crate::requests::request(&self.client, customer, request).await
    }

    /// The customer's requests, newest first (see [`crate::requests`]).
    pub async fn list_requests(
        &self,
        customer: &CustomerId,
        since_ms: Option<u64>,
        until_ms: Option<u64>,
        cursor: Option<&RequestId>,
        limit: usize,
    ) -> Result<crate::requests::RequestPage, ResultsError> {
        crate::requests::list_requests(&self.client, customer, since_ms, until_ms, cursor, limit)
            .await
    }

    /// The customer's statistics (see [`crate::stats`]).
    pub async fn statistics(
        &self,
        customer: &CustomerId,
        since_seconds: u32,
        until_seconds: u32,
        bucket: crate::stats::Bucket,
        timezone: &str,
    ) -> Result<crate::stats::Statistics, ResultsError> {
        crate::stats::statistics(
            &self.client,
            customer,
            since_seconds,
            until_seconds,
            bucket,
            timezone,
        )
        .await
    }
}
