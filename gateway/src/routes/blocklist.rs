//! The customer-wide blocklist: numbers this customer never sends to, from any
//! sender. `POST /v1/blocklist` adds one, `POST /v1/blocklist/import` many from CSV
//! (a `number` column), `GET /v1/blocklist` lists them by number, `DELETE
//! /v1/blocklist/{number}` takes one off. A send reports blocklisted recipients as
//! `blocked` and never sends to or charges them, as with opt-outs.
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use rns_types::PhoneNumber;
use serde::{Deserialize, Serialize};

use crate::csv_rows::{require_csv, CsvTable, RowError};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Customer};
use crate::pagination::PageQuery;
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockNumber {
    number: String,
}

/// A blocklisted number.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Blocked {
    number: String,
    added_at: String,
}

/// A page of the blocklist, by number.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlockedPage {
    items: Vec<Blocked>,
    next_cursor: Option<String>,
}

/// What an import did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlocklistImport {
    /// Rows read, the header not counted.
    rows: usize,
    /// Numbers newly blocklisted.
    added: usize,
    /// Numbers that were on the list already.
    already: usize,
    failed: usize,
    errors: Vec<RowError>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BlocklistQuery {
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

fn number(raw: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::parse_mobile(raw)
        .map_err(|error| ApiError::invalid("invalid_number", error.to_string()))
}

#[utoipa::path(
    post,
    path = "/v1/blocklist",
    tag = "blocklist",
    request_body = BlockNumber,
    responses((status = 201, description = "Blocklisted", body = Blocked), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn add(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BlockNumber>,
) -> Result<(StatusCode, Json<Blocked>), ApiError> {
    let number = number(&body.number)?;
    state
        .opt_outs()
        .block(&customer, std::slice::from_ref(&number))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Blocked {
            number: number.as_str().to_owned(),
            added_at: rns_types::time::rfc3339(rns_types::time::now_milliseconds()),
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/blocklist/import",
    tag = "blocklist",
    request_body(content = String, content_type = "text/csv", description = "rows with a `number` column, under a header row"),
    responses((status = 200, description = "OK", body = BlocklistImport), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn import(
    Customer(customer): Customer,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BlocklistImport>, ApiError> {
    require_csv(&headers)?;
    let table = CsvTable::read(&body)?;
    let column = table.column("number")?;
    let rows = table.row_count();
    let mut errors = table.errors;
    let mut numbers = Vec::with_capacity(table.rows.len());
    for (row, record) in &table.rows {
        match PhoneNumber::parse_mobile(&record[column]) {
            Ok(number) => numbers.push(number),
            Err(error) => errors.push(RowError {
                row: *row,
                error: error.to_string(),
            }),
        }
    }
    errors.sort_by_key(|error| error.row);
    numbers.sort();
    numbers.dedup();
    let added = state.opt_outs().block(&customer, &numbers).await?;
    tracing::info!(customer = %customer, added, rows, "blocklist imported");
    Ok(Json(BlocklistImport {
        rows,
        added,
        already: numbers.len() - added,
        failed: errors.len(),
        errors,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/blocklist",
    tag = "blocklist",
    params(BlocklistQuery, PageQuery),
    responses((status = 200, description = "OK", body = BlockedPage), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn list(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<BlocklistQuery>,
) -> Result<Json<BlockedPage>, ApiError> {
    let limit = query.page.limit()?;
    let cursor = query
        .page
        .cursor(|cursor| cursor.len() <= 11 && cursor.bytes().all(|byte| byte.is_ascii_digit()))?;
    let page = state.opt_outs().blocklist(&customer, cursor, limit).await?;
    Ok(Json(BlockedPage {
        items: page
            .items
            .into_iter()
            .map(|(number, added_at_ms)| Blocked {
                number,
                added_at: rns_types::time::rfc3339(added_at_ms),
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/blocklist/{number}",
    tag = "blocklist",
    params(("number" = String, Path, description = "the blocklisted number")),
    responses((status = 204, description = "Taken off; no body"), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn remove(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let number =
        PhoneNumber::parse_mobile(&raw).map_err(|_| ApiError::NotFound("blocklisted number"))?;
    if !state.opt_outs().unblock(&customer, &number).await? {
        return Err(ApiError::NotFound("blocklisted number"));
    }
    Ok(StatusCode::NO_CONTENT)
}
