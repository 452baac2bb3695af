//! Reading what was sent, from ClickHouse through [`rns_results::ResultQueries`],
//! always scoped to the caller: another customer's ids are 404, exactly like ids that
//! never existed, and lists never show another customer's rows.
//!
//! - `GET /v1/messages`: messages newest first, every filter combinable; `text`
//!   matches the message text or the memo of the recipient's contact.
//! - `GET /v1/messages/{id}`: one message with its whole timeline.
//! - `GET /v1/requests` and `GET /v1/requests/{id}`: requests with their messages
//!   counted by status and carrier, and their points reserved, spent and refunded.
//! - `GET /v1/stats`: per carrier and channel, counts, success rate, latency
//!   percentiles and the split against the target weights, in total and by bucket.
use axum::extract::{Path, State};
use axum::Json;
use rns_results::stats::{Bucket, CarrierNumbers};
use rns_types::wire::MessageStatus;
use rns_types::{Channel, MessageId, PhoneNumber, RequestId};
use serde::{Deserialize, Serialize};

use crate::contacts::is_id;
use crate::error::ApiError;
use crate::extract::{ApiQuery, Customer};
use crate::pagination::PageQuery;
use crate::AppState;

/// Most contacts whose memo matched a text search that widen it to their numbers.
const MOST_MEMO_NUMBERS: usize = 500;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    carrier: Option<String>,
    #[serde(default, rename = "type")]
    message_type: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to_number: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    schedule_id: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: crate::pagination::PageQuery,
}

const MAX_TEXT_FILTER_CHARACTERS: usize = 200;

fn one_of(
    field: &str,
    value: Option<String>,
    allowed: &[&str],
) -> Result<Option<String>, ApiError> {
    match value {
        Some(value) if !allowed.contains(&value.as_str()) => Err(ApiError::invalid(
            "invalid_query",
            format!("{field} must be one of {}", allowed.join(", ")),
        )),
        other => Ok(other),
    }
}

fn checked(
    field: &str,
    value: Option<String>,
    valid: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, ApiError> {
    value
        .map(|value| {
            valid(&value).ok_or_else(|| {
                ApiError::invalid("invalid_query", format!("{field} {value:?} is not valid"))
            })
        })
        .transpose()
}

fn time(field: &str, value: Option<String>) -> Result<Option<u64>, ApiError> {
    value
        .map(|value| {
            rns_types::time::parse_rfc3339(&value).ok_or_else(|| {
                ApiError::invalid("invalid_query", format!("{field} must be an RFC 3339 time"))
            })
        })
        .transpose()
}

/// `GET /v1/messages`: the caller's messages, newest first, every filter combinable,
/// cursor pagination (see [`rns_results::listing`]).
#[utoipa::path(
    get,
    path = "/v1/messages",
    tag = "messages",
    params(ListQuery, crate::pagination::PageQuery),
    responses((status = 200, description = "OK", body = rns_results::listing::MessagePage), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn list(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<rns_results::listing::MessagePage>, ApiError> {
    use rns_results::listing::{ListCursor, MessageFilter};
    let limit = query.page.limit()?;
    let cursor = query
        .page
        .cursor(|cursor| ListCursor::decode(cursor).is_some())?
        .and_then(ListCursor::decode);
    if query
        .text
        .as_ref()
        .is_some_and(|text| text.chars().count() > MAX_TEXT_FILTER_CHARACTERS)
    {
        return Err(ApiError::invalid(
            "invalid_query",
            format!("text must be at most {MAX_TEXT_FILTER_CHARACTERS} characters"),
        ));
    }
    let phone = |value: &str| PhoneNumber::parse(value).ok().map(String::from);
    let filter = MessageFilter {
        status: one_of(
            "status",
            query.status,
            &MessageStatus::ALL.map(|status| status.as_str()),
        )?,
        carrier: checked("carrier", query.carrier, |value| {
            rns_types::CarrierId::parse(value)
                .ok()
                .map(|id| id.to_string())
        })?,
        message_type: one_of(
            "type",
            query.message_type,
            &["sms", "lms", "mms", "alimtalk"],
        )?,
        channel: one_of("channel", query.channel, &["sms", "alimtalk"])?,
        from: checked("from", query.from, phone)?,
        to: checked("to_number", query.to_number, phone)?,
        request_id: checked("request_id", query.request_id, |value| {
            RequestId::parse(value).ok().map(|id| id.to_string())
        })?,
        schedule_id: checked("schedule_id", query.schedule_id, |value| {
            is_id(value).then(|| value.to_owned())
        })?,
        text_numbers: match query.text.as_deref().filter(|text| !text.is_empty()) {
            Some(text) => {
                state
                    .contacts()
                    .numbers_with_memo(&customer, text, MOST_MEMO_NUMBERS)
                    .await?
            }
            None => Vec::new(),
        },
        text: query.text.filter(|text| !text.is_empty()),
        since_ms: time("since", query.since)?,
        until_ms: time("until", query.until)?,
    };
    let page = state
        .results()
        .list_messages(&customer, &filter, cursor.as_ref(), limit)
        .await?;
    Ok(Json(page))
}

#[utoipa::path(
    get,
    path = "/v1/messages/{id}",
    tag = "messages",
    params(("id" = String, Path, description = "the message")),
    responses((status = 200, description = "OK", body = rns_results::queries::MessageView), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn get_message(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<rns_results::queries::MessageView>, ApiError> {
    let message_id = MessageId::parse(&id).map_err(|_| ApiError::NotFound("message"))?;
    let message = state
        .results()
        .message(&customer, &message_id)
        .await?
        .ok_or(ApiError::NotFound("message"))?;
    Ok(Json(message))
}

#[utoipa::path(
    get,
    path = "/v1/requests/{id}",
    tag = "messages",
    params(("id" = String, Path, description = "the request")),
    responses((status = 200, description = "OK", body = rns_results::requests::RequestView), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn get_request(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<rns_results::requests::RequestView>, ApiError> {
    let request_id = RequestId::parse(&id).map_err(|_| ApiError::NotFound("request"))?;
    let summary = state
        .results()
        .request_summary(&customer, &request_id)
        .await?
        .ok_or(ApiError::NotFound("request"))?;
    Ok(Json(summary))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// `GET /v1/requests?since=&until=&cursor=&limit=`: the caller's requests, newest
/// first, each with its totals and points.
#[utoipa::path(
    get,
    path = "/v1/requests",
    tag = "messages",
    params(RequestsQuery, PageQuery),
    responses((status = 200, description = "OK", body = rns_results::requests::RequestPage), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn list_requests(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<RequestsQuery>,
) -> Result<Json<rns_results::requests::RequestPage>, ApiError> {
    let limit = query.page.limit()?;
    let cursor = query
        .page
        .cursor(|cursor| RequestId::parse(cursor).is_ok())?
        .map(|cursor| RequestId::parse(cursor).expect("checked above"));
    let page = state
        .results()
        .list_requests(
            &customer,
            time("since", query.since)?,
            time("until", query.until)?,
            cursor.as_ref(),
            limit,
        )
        .await?;
    Ok(Json(page))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    bucket: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
}

/// The range statistics cover when `since` is not given.
const DEFAULT_STATS_MS: u64 = 24 * 60 * 60 * 1_000;
/// Most buckets one answer holds.
const MOST_BUCKETS: u64 = 1_500;
const DEFAULT_TIMEZONE: &str = "Asia/Seoul";

/// `GET /v1/stats?since=&until=&bucket=minute|hour|day&timezone=`: per carrier (with
/// its channel), what was routed to it first, submitted, delivered, failed and moved
/// on, points spent, success rate and latency p50/p95/p99 from acceptance to final
/// state; over the whole range with the actual split of first choices against the
/// target weights, and per bucket. The last 24 hours in hours by default; buckets
/// start in `timezone` (Asia/Seoul by default).
#[utoipa::path(
    get,
    path = "/v1/stats",
    tag = "statistics",
    params(StatsQuery),
    responses((status = 200, description = "OK", body = StatisticsView), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn stats(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<StatisticsView>, ApiError> {
    let until_ms =
        time("until", query.until)?.unwrap_or_else(|| rns_types::time::now_milliseconds() + 1);
    let since_ms =
        time("since", query.since)?.unwrap_or_else(|| until_ms.saturating_sub(DEFAULT_STATS_MS));
    if since_ms >= until_ms {
        return Err(ApiError::invalid(
            "invalid_query",
            "since must be before until",
        ));
    }
    let bucket = match query.bucket.as_deref() {
        None => Bucket::Hour,
        Some(text) => Bucket::parse(text).ok_or_else(|| {
            ApiError::invalid("invalid_query", "bucket must be minute, hour or day")
        })?,
    };
    let buckets = (until_ms - since_ms).div_ceil(bucket.seconds() * 1_000);
    if buckets > MOST_BUCKETS {
        return Err(ApiError::invalid(
            "invalid_query",
            format!(
                "the range holds {buckets} buckets of a {}; at most {MOST_BUCKETS} fit in one answer, so choose a wider bucket or a shorter range",
                bucket.as_str()
            ),
        ));
    }
    let timezone = query.timezone.as_deref().unwrap_or(DEFAULT_TIMEZONE);
    let timezone: chrono_tz::Tz = timezone.parse().map_err(|_| {
        ApiError::invalid(
            "invalid_query",
            format!("timezone {timezone:?} is not an IANA time zone such as Asia/Seoul"),
        )
    })?;
    let seconds = |milliseconds: u64| u32::try_from(milliseconds / 1_000).unwrap_or(u32::MAX);
    let statistics = state
        .results()
        .statistics(
            &customer,
            seconds(since_ms),
            seconds(until_ms.div_ceil(1_000) * 1_000),
            bucket,
            timezone.name(),
        )
        .await?;
    let profile = state.profile(&customer).await?;
    let catalog = state.catalog();
    let channel_of = |carrier: &str| {
        rns_types::CarrierId::parse(carrier)
            .ok()
            .and_then(|carrier| catalog.channel_of(&carrier))
    };
    let view = |numbers: &CarrierNumbers| CarrierStatistics {
        channel: channel_of(&numbers.carrier),
        share: None,
        numbers: numbers.clone(),
    };
    let carriers = statistics
        .totals
        .iter()
        .map(|total| CarrierStatistics {
            share: channel_of(&total.carrier)
                .map(|channel| share(&statistics.totals, total, channel, &profile, &state)),
            ..view(total)
        })
        .collect();
    let buckets = statistics
        .buckets
        .iter()
        .map(|bucket| BucketStatistics {
            start: rns_types::time::rfc3339_seconds(bucket.start_seconds * 1_000),
            carriers: bucket.carriers.iter().map(view).collect(),
        })
        .collect();
    Ok(Json(StatisticsView {
        since: rns_types::time::rfc3339(since_ms),
        until: rns_types::time::rfc3339(until_ms),
        bucket,
        timezone: timezone.name().to_owned(),
        carriers,
        buckets,
    }))
}

/// `GET /v1/stats`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatisticsView {
    since: String,
    until: String,
    bucket: Bucket,
    timezone: String,
    /// Totals per carrier over the range.
    carriers: Vec<CarrierStatistics>,
    buckets: Vec<BucketStatistics>,
}

/// One carrier's numbers, with its channel and (in the totals) its share.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CarrierStatistics {
    #[serde(flatten)]
    numbers: CarrierNumbers,
    channel: Option<Channel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    share: Option<Share>,
}

/// The numbers of one bucket.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BucketStatistics {
    start: String,
    carriers: Vec<CarrierStatistics>,
}

/// A carrier's share of its channel's first choices against its target weight's
/// share; none before anything was routed (or without weights).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Share {
    actual: Option<f64>,
    target: Option<f64>,
}

/// A carrier's share of its channel's first choices, against its share of the
/// channel's target weights.
fn share(
    totals: &[CarrierNumbers],
    carrier: &CarrierNumbers,
    channel: Channel,
    profile: &rns_types::CustomerProfile,
    state: &AppState,
) -> Share {
    let catalog = state.catalog();
    let routed: u64 = totals
        .iter()
        .filter(|other| {
            rns_types::CarrierId::parse(&other.carrier)
                .ok()
                .and_then(|id| catalog.channel_of(&id))
                == Some(channel)
        })
        .map(|other| other.first_choice)
        .sum();
    let weights = profile.weights(channel, catalog);
    let weight_sum: u32 = weights
        .iter()
        .flat_map(|weights| weights.iter().map(|(_, weight)| weight))
        .sum();
    let target = match (&weights, rns_types::CarrierId::parse(&carrier.carrier)) {
        (Some(weights), Ok(id)) => weights.get(&id),
        _ => 0,
    };
    let ratio = |part: f64, whole: f64| (whole > 0.0).then(|| part / whole);
    Share {
        actual: ratio(carrier.first_choice as f64, routed as f64),
        target: ratio(f64::from(target), f64::from(weight_sum)),
    }
}
