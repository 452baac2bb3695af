//! `GET /v1/inbound-messages`: the messages handsets sent to the customer's numbers
//! (replies to its opt-out numbers), newest first; see [`crate::inbound`].
use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{ApiQuery, Customer};
use crate::inbound::{is_cursor, InboundPage};
use crate::pagination::PageQuery;
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InboundQuery {
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

#[utoipa::path(
    get,
    path = "/v1/inbound-messages",
    tag = "inbound messages",
    params(InboundQuery, PageQuery),
    responses((status = 200, description = "OK", body = InboundPage), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn list(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<InboundQuery>,
) -> Result<Json<InboundPage>, ApiError> {
    let limit = query.page.limit()?;
    let cursor = query.page.cursor(is_cursor)?;
    Ok(Json(state.inbound().page(&customer, cursor, limit).await?))
}
