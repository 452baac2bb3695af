//! `GET /v1/requests` and `GET /v1/requests/{id}`: each request with its messages
//! counted by current status and by carrier, and its points reserved, spent and
//! refunded.
//!
//! Requests are listed newest first by id (ULIDs, so by acceptance), with the last id
//! shown as the cursor, in growing windows (see [`crate::window`]). The totals of a
//! page's requests are then read in one query that the primary key narrows to them.
//! Duplicate rows count once: messages are grouped by id, and a message's status is
//! the one of its highest-ordinal event.
use std::collections::BTreeMap;

use clickhouse::Row;
use rns_types::{CustomerId, RequestId};
use serde::{Deserialize, Serialize};

use crate::error::ResultsError;
use crate::queries::rfc3339;
use crate::window::{windows, Window};

/// A request's points: reserved when it was accepted, spent on deliveries, returned
/// for final failures and blocked recipients. `reserved - spent - refunded` is still
/// held for messages not yet final.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RequestPoints {
    pub reserved: u64,
    pub spent: u64,
    pub refunded: u64,
}

/// One request and where its messages stand.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RequestView {
    pub id: String,
    pub accepted_at: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub schedule_id: String,
    pub total: u64,
    pub by_status: BTreeMap<String, u64>,
    pub by_carrier: BTreeMap<String, u64>,
    pub points: RequestPoints,
}

/// A page of requests.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RequestPage {
    pub items: Vec<RequestView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Row, Deserialize)]
struct RequestHead {
    request_id: String,
    accepted_at_ms: u64,
    schedule_id: String,
    total: u64,
    reserved: u64,
}

#[derive(Debug, Row, Deserialize)]
struct RequestCount {
    request_id: String,
    status: String,
    carrier: String,
    messages: u64,
    spent: u64,
    refunded: u64,
}

/// The customer's requests accepted in `[since_ms, until_ms)`, below `cursor`,
/// newest first.
pub async fn list_requests(
    client: &clickhouse::Client,
    customer: &CustomerId,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    cursor: Option<&RequestId>,
    limit: usize,
) -> Result<RequestPage, ResultsError> {
    let top_ms = cursor.map(RequestId::made_at_ms);
    let now_ms = rns_types::time::now_milliseconds();
    let mut heads = Vec::new();
    for window in windows(since_ms, until_ms, top_ms, now_ms) {
        heads = heads_in(client, customer, cursor, &window, None, limit + 1).await?;
        if heads.len() > limit || window.last {
            break;
        }
    }
    let next_cursor = (heads.len() > limit).then(|| {
        heads.truncate(limit);
        heads
            .last()
            .expect("a full page has a last row")
            .request_id
            .clone()
    });
    let items = with_counts(client, customer, heads).await?;
    Ok(RequestPage { items, next_cursor })
}

/// One request, or `None` if the customer has no such request.
pub async fn request(
    client: &clickhouse::Client,
    customer: &CustomerId,
    request: &RequestId,
) -> Result<Option<RequestView>, ResultsError> {
    let at = request.made_at_ms();
    let window = Window::between(at, at + 1);
    let heads = heads_in(client, customer, None, &window, Some(request), 1).await?;
    Ok(with_counts(client, customer, heads)
        .await?
        .into_iter()
        .next())
}

/// The newest `rows` requests in `window` below `cursor` (or just `only`).
async fn heads_in(
    client: &clickhouse::Client,
    customer: &CustomerId,
    cursor: Option<&RequestId>,
    window: &Window,
    only: Option<&RequestId>,
    rows: usize,
) -> Result<Vec<RequestHead>, ResultsError> {
    let (window_text, window_values) = window.conditions("accepted_at");
    let mut conditions = format!("customer_id = ?{window_text}");
    let mut values = vec![customer.to_string()];
    values.extend(window_values);
    if let Some(cursor) = cursor {
        conditions.push_str(" AND request_id < ?");
        values.push(cursor.to_string());
    }
    if let Some(only) = only {
        conditions.push_str(" AND request_id = ?");
        values.push(only.to_string());
    }
    let statement = format!(
        "SELECT request_id, min(accepted_at_ms) AS accepted_at_ms, any(schedule_id) AS schedule_id,
                count() AS total, sum(reserved) AS reserved
         FROM (
             SELECT request_id, message_id, any(accepted_at_ms) AS accepted_at_ms,
                    any(schedule_id) AS schedule_id, toUInt64(any(points_reserved)) AS reserved
             FROM messages WHERE {conditions}
             GROUP BY request_id, message_id
         )
         GROUP BY request_id
         ORDER BY request_id DESC
         LIMIT ?"
    );
    let mut query = client.query(&statement);
    for value in &values {
        query = query.bind(value.as_str());
    }
    Ok(query.bind(rows as u64).fetch_all::<RequestHead>().await?)
}

/// Adds to each request its counts by status and carrier and its settled points.
async fn with_counts(
    client: &clickhouse::Client,
    customer: &CustomerId,
    heads: Vec<RequestHead>,
) -> Result<Vec<RequestView>, ResultsError> {
    if heads.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; heads.len()].join(", ");
    let oldest_ms = heads
        .iter()
        .filter_map(|head| RequestId::parse(&head.request_id).ok())
        .map(|request| request.made_at_ms())
        .min()
        .unwrap_or(0);
    let day_floor = crate::window::day_floor("at", oldest_ms);
    let statement = format!(
        "SELECT request_id, toString(status) AS status, carrier, count() AS messages,
                sum(spent) AS spent, sum(refunded) AS refunded
         FROM (
             SELECT request_id, message_id, argMax(status, ordinal) AS status,
                    argMaxIf(carrier, ordinal, carrier != '') AS carrier,
                    toUInt64(maxIf(points_spent, ordinal = 4294967295)) AS spent,
                    toUInt64(maxIf(points_reserved, ordinal = 4294967295)) - spent AS refunded
             FROM events WHERE customer_id = ? AND request_id IN ({placeholders}){day_floor}
             GROUP BY request_id, message_id
         )
         GROUP BY request_id, status, carrier"
    );
    let mut query = client.query(&statement).bind(customer.as_str());
    for head in &heads {
        query = query.bind(head.request_id.as_str());
    }
    let counts = query.fetch_all::<RequestCount>().await?;
    let mut views: Vec<RequestView> = heads
        .into_iter()
        .map(|head| RequestView {
            id: head.request_id,
            accepted_at: rfc3339(head.accepted_at_ms),
            schedule_id: head.schedule_id,
            total: head.total,
            by_status: BTreeMap::new(),
            by_carrier: BTreeMap::new(),
            points: RequestPoints {
                reserved: head.reserved,
                ..RequestPoints::default()
            },
        })
        .collect();
    let position: BTreeMap<String, usize> = views
        .iter()
        .enumerate()
        .map(|(index, view)| (view.id.clone(), index))
        .collect();
    let mut counted = vec![0_u64; views.len()];
    for count in counts {
        let Some(&index) = position.get(&count.request_id) else {
            continue;
        };
        let view = &mut views[index];
        counted[index] += count.messages;
        *view.by_status.entry(count.status).or_insert(0) += count.messages;
        if !count.carrier.is_empty() {
            *view.by_carrier.entry(count.carrier).or_insert(0) += count.messages;
        }
        view.points.spent += count.spent;
        view.points.refunded += count.refunded;
    }
    // Messages recorded before their first event reached ClickHouse are queued.
    for (view, counted) in views.iter_mut().zip(counted) {
        if let Some(waiting) = view
            .total
            .checked_sub(counted)
            .filter(|waiting| *waiting > 0)
        {
            *view.by_status.entry("queued".to_owned()).or_insert(0) += waiting;
        }
    }
    Ok(views)
}
