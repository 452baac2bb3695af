//! `GET /v1/messages`: a customer's messages, newest first, with every filter
//! combinable and a cursor that never skips or repeats a message, however many new
//! results arrive between pages.
//!
//! Order is the message id, descending: request ids are ULIDs, so that is the order
//! of acceptance, and the cursor is the last id shown, so a page continues strictly
//! below it: newer messages never push older ones onto a page already read. Pages are
//! looked for in growing request id windows (see [`crate::window`]). Message fields
//! filter the `messages` table; the current status and carrier come from `events`
//! (the status of the event with the highest ordinal, the carrier of the latest event
//! that names one). Written for ClickHouse 18.16 (no CTEs, `ANY LEFT JOIN … USING`) and
//! current releases (which want every joined subquery named).
use std::collections::{BTreeSet, HashMap};

use clickhouse::Row;
use rns_types::wire::MessageStatus;
use rns_types::{CustomerId, MessageId, RequestId};
use serde::{Deserialize, Serialize};

use crate::error::ResultsError;
use crate::queries::rfc3339;
use crate::window::{day_floor, windows, Window};

/// Whether `status` names one a message keeps once it has it.
fn is_final_status(status: &str) -> bool {
    MessageStatus::ALL
        .iter()
        .any(|known| known.is_final() && known.as_str() == status)
}
/// The ordinal of a final event (see `MessageEvent::ordinal`).
const FINAL_ORDINAL: u32 = u32::MAX;

/// What to list; every field is optional and they combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    pub status: Option<String>,
    pub carrier: Option<String>,
    pub message_type: Option<String>,
    pub channel: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub request_id: Option<String>,
    pub schedule_id: Option<String>,
    /// A substring of the text.
    pub text: Option<String>,
    /// Numbers whose contact memo matched the text search: a message to one of them
    /// matches too.
    pub text_numbers: Vec<String>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
}

/// Where a page starts: below this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor(pub MessageId);

impl ListCursor {
    pub fn encode(&self) -> String {
        self.0.to_string()
    }

    pub fn decode(text: &str) -> Option<Self> {
        MessageId::parse(text).ok().map(Self)
    }
}

#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
struct ListedRow {
    message_id: String,
    request_id: String,
    to_number: String,
    from_number: String,
    message_type: String,
    channel: String,
    subject: String,
    text: String,
    schedule_id: String,
    accepted_at_ms: u64,
    status: String,
    carrier: String,
}

/// One message in a list.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ListedMessage {
    pub id: String,
    pub request_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub schedule_id: String,
    pub to: String,
    pub from: String,
    #[serde(rename = "type")]
    pub message_type: String,
    pub channel: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    pub text: String,
    pub status: String,
    pub carrier: Option<String>,
    pub accepted_at: String,
}

/// A page of messages.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MessagePage {
    pub items: Vec<ListedMessage>,
    pub next_cursor: Option<String>,
}

/// Lists the customer's messages matching `filter`, below `cursor`, newest first.
pub async fn list_messages(
    client: &clickhouse::Client,
    customer: &CustomerId,
    filter: &MessageFilter,
    cursor: Option<&ListCursor>,
    limit: usize,
) -> Result<MessagePage, ResultsError> {
    let top_ms = cursor.map(|cursor| cursor.0.request_id().made_at_ms());
    let now_ms = rns_types::time::now_milliseconds();
    // A request's messages were all made in its id's millisecond.
    let windows = match filter.request_id.as_deref().map(RequestId::parse) {
        Some(Ok(request)) => vec![Window::between(
            request.made_at_ms(),
            request.made_at_ms() + 1,
        )],
        _ => windows(filter.since_ms, filter.until_ms, top_ms, now_ms),
    };
    let mut rows = Vec::new();
    for window in windows {
        rows = page_in(client, customer, filter, cursor, &window, limit + 1).await?;
        if rows.len() > limit || window.last {
            break;
        }
    }
    let next_cursor = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        let last = rows.last().expect("a full page has a last row");
        last.message_id.clone()
    });
    let items = rows
        .into_iter()
        .map(|row| ListedMessage {
            id: row.message_id,
            request_id: row.request_id,
            schedule_id: row.schedule_id,
            to: row.to_number,
            from: row.from_number,
            message_type: row.message_type,
            channel: row.channel,
            subject: row.subject,
            text: row.text,
            status: row.status,
            carrier: (!row.carrier.is_empty()).then_some(row.carrier),
            accepted_at: rfc3339(row.accepted_at_ms),
        })
        .collect();
    Ok(MessagePage { items, next_cursor })
}

/// The newest `rows` messages matching `filter` in `window`, below `cursor`.
async fn page_in(
    client: &clickhouse::Client,
    customer: &CustomerId,
    filter: &MessageFilter,
    cursor: Option<&ListCursor>,
    window: &Window,
    rows: usize,
) -> Result<Vec<ListedRow>, ResultsError> {
    // Conditions on both tables: the customer, the window, the cursor.
    let scope = |day_column: &str| {
        let (window_text, window_values) = window.conditions(day_column);
        let mut text = format!("customer_id = ?{window_text}");
        let mut values = vec![customer.to_string()];
        values.extend(window_values);
        if let Some(cursor) = cursor {
            text.push_str(" AND message_id < ?");
            values.push(cursor.encode());
        }
        (text, values)
    };
    let (event_scope, event_values) = scope("at");
    let (message_scope, mut message_values) = scope("accepted_at");
    let mut message_conditions = vec![message_scope];
    let mut add = |condition: &str, value: Option<&String>| {
        if let Some(value) = value {
            message_conditions.push(condition.to_owned());
            message_values.push(value.clone());
        }
    };
    add("toString(message_type) = ?", filter.message_type.as_ref());
    add("toString(channel) = ?", filter.channel.as_ref());
    add("from_number = ?", filter.from.as_ref());
    add("to_number = ?", filter.to.as_ref());
    add("request_id = ?", filter.request_id.as_ref());
    add("schedule_id = ?", filter.schedule_id.as_ref());
    if let Some(text) = &filter.text {
        message_values.push(text.clone());
        let mut condition = "positionUTF8(text, ?) > 0".to_owned();
        if !filter.text_numbers.is_empty() {
            let placeholders = vec!["?"; filter.text_numbers.len()].join(", ");
            condition = format!("({condition} OR to_number IN ({placeholders}))");
            message_values.extend(filter.text_numbers.iter().cloned());
        }
        message_conditions.push(condition);
    }
    // A final status is the kind of the message's one final event, so those filter
    // by a look at events alone. A status that may still change (queued, submitted)
    // or the current carrier needs every candidate's current state first.
    let final_status = filter
        .status
        .as_deref()
        .filter(|status| is_final_status(status));
    if let Some(status) = final_status {
        message_conditions.push(format!(
            "message_id IN (SELECT message_id FROM events WHERE {event_scope} AND toString(status) = ? AND ordinal = {FINAL_ORDINAL})"
        ));
        message_values.extend(event_values.iter().cloned());
        message_values.push(status.to_owned());
    }
    let mut outer_conditions: Vec<&str> = Vec::new();
    let mut outer_values: Vec<String> = Vec::new();
    if let Some(status) = filter.status.as_ref().filter(|_| final_status.is_none()) {
        outer_conditions.push("if(e_status = '', 'queued', e_status) = ?");
        outer_values.push(status.clone());
    }
    if let Some(carrier) = &filter.carrier {
        outer_conditions.push("e_carrier = ?");
        outer_values.push(carrier.clone());
    }
    let message_where = message_conditions.join(" AND ");
    let messages = format!(
        "SELECT message_id, any(request_id) AS m_request_id, any(to_number) AS m_to,
                any(from_number) AS m_from, toString(any(message_type)) AS m_type,
                toString(any(channel)) AS m_channel, any(subject) AS m_subject,
                any(text) AS m_text, any(schedule_id) AS m_schedule,
                any(accepted_at_ms) AS m_accepted_at_ms
         FROM messages WHERE {message_where}
         GROUP BY message_id"
    );
    let columns = "message_id, m_request_id AS request_id, m_to AS to_number, m_from AS from_number,
                   m_type AS message_type, m_channel AS channel, m_subject AS subject, m_text AS text,
                   m_schedule AS schedule_id, m_accepted_at_ms AS accepted_at_ms";
    if outer_conditions.is_empty() {
        // The page from messages alone, then the current state of its messages only.
        let statement = format!(
            "SELECT {columns}, '' AS status, '' AS carrier FROM ({messages})
             ORDER BY message_id DESC LIMIT ?"
        );
        let mut query = client.query(&statement);
        for value in &message_values {
            query = query.bind(value.as_str());
        }
        let mut rows = query.bind(rows as u64).fetch_all::<ListedRow>().await?;
        let states = current_states(client, customer, &rows).await?;
        for row in &mut rows {
            let (status, carrier) = states.get(&row.message_id).cloned().unwrap_or_default();
            row.status = if status.is_empty() {
                "queued".to_owned()
            } else {
                status
            };
            row.carrier = carrier;
        }
        return Ok(rows);
    }
    let statement = format!(
        "SELECT {columns}, if(e_status = '', 'queued', e_status) AS status, e_carrier AS carrier
         FROM ({messages}) AS listed ANY LEFT JOIN (
             SELECT message_id, toString(argMax(status, ordinal)) AS e_status,
                    argMaxIf(carrier, ordinal, carrier != '') AS e_carrier
             FROM events WHERE {event_scope}
             GROUP BY message_id
         ) AS states USING message_id
         WHERE {outer}
         ORDER BY message_id DESC
         LIMIT ?",
        outer = outer_conditions.join(" AND "),
    );
    // Bind in the order the placeholders appear.
    let mut query = client.query(&statement);
    for value in message_values
        .iter()
        .chain(&event_values)
        .chain(&outer_values)
    {
        query = query.bind(value.as_str());
    }
    Ok(query.bind(rows as u64).fetch_all::<ListedRow>().await?)
}

#[derive(Debug, Row, Deserialize)]
struct StateRow {
    message_id: String,
    status: String,
    carrier: String,
}

/// The current status and carrier of each of `rows`' messages that has an event,
/// read from their requests' rows only.
async fn current_states(
    client: &clickhouse::Client,
    customer: &CustomerId,
    rows: &[ListedRow],
) -> Result<HashMap<String, (String, String)>, ResultsError> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let requests: BTreeSet<&str> = rows.iter().map(|row| row.request_id.as_str()).collect();
    let oldest_ms = requests
        .iter()
        .filter_map(|request| RequestId::parse(request).ok())
        .map(|request| request.made_at_ms())
        .min()
        .unwrap_or(0);
    let statement = format!(
        "SELECT message_id, toString(argMax(status, ordinal)) AS status,
                argMaxIf(carrier, ordinal, carrier != '') AS carrier
         FROM events
         WHERE customer_id = ?{day_floor} AND request_id IN ({requests}) AND message_id IN ({messages})
         GROUP BY message_id",
        day_floor = day_floor("at", oldest_ms),
        requests = vec!["?"; requests.len()].join(", "),
        messages = vec!["?"; rows.len()].join(", "),
    );
    let mut query = client.query(&statement).bind(customer.as_str());
    for request in &requests {
        query = query.bind(*request);
    }
    for row in rows {
        query = query.bind(row.message_id.as_str());
    }
    Ok(query
        .fetch_all::<StateRow>()
        .await?
        .into_iter()
        .map(|state| (state.message_id, (state.status, state.carrier)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_anything_else() {
        let cursor = ListCursor::decode("01JDXYZ0000000000000000000-12").unwrap();
        assert_eq!(ListCursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(ListCursor::decode("12:nope"), None);
        assert_eq!(ListCursor::decode("' OR 1=1"), None);
    }
}
