//! The RNS gateway: the customer HTTP API (axum).
//!
//! [`app`] builds the router over an [`AppState`]; [`run`] connects to NATS, ensures
//! the topology and serves until shutdown, draining in-flight requests. Every
//! customer route authenticates with `Authorization: Bearer <api key>` and reads or
//! writes only that customer's data; admin routes take the operator's key.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod carrier_rates;
pub mod changes;
pub mod compose;
pub mod console;
pub mod contacts;
pub mod csv_rows;
pub mod error;
pub mod extract;
pub mod gathering;
pub mod idempotency;
pub mod inbound;
pub mod key_cache;
pub mod metric_names;
pub mod openapi;
pub mod opt_outs;
pub mod pagination;
pub mod rate_limit;
pub mod routes;
pub mod routing_positions;
pub mod scheduling;
pub mod sender_numbers;
pub mod sending;
pub mod state;
pub mod suspension;
pub mod verification_codes;
pub mod webhooks;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use rns_service::{ClickHouseSettings, LogSettings, NatsSettings, RedisSettings};
use rns_types::CarrierCatalog;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;
pub use state::AppState;

/// The largest request body: 10,000 recipients with separators and a 2,000-byte text
/// fit with room to spare.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// `[gateway]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GatewaySettings {
    pub listen: String,
    /// The operator's key for `/v1/admin/*`; empty disables those routes.
    pub admin_key: String,
    /// Most recipients in one send request.
    pub max_recipients: usize,
    /// Whether webhook URLs may name loopback and private addresses (development).
    pub allow_private_webhooks: bool,
    /// The shortest interval between a recurring send's firings (60 s; tests that
    /// watch firings lower it).
    pub min_recurrence_seconds: u64,
    /// API requests per second a customer may make over every replica, unless the
    /// operator set its own (`PUT /v1/admin/customers/{id}/limits`).
    pub requests_per_second: u32,
    /// Requests at once above that rate; 0 is twice the rate.
    pub request_burst: u32,
    /// The least time between two SEND messages of gathered sends that are not full
    /// ([`gathering`]): while sends keep coming, those arriving sooner wait for the
    /// interval's end, so a SEND message holds more of them and every process behind
    /// the gateway handles fewer, larger messages. A send after a quiet interval is
    /// published at once; 0 never waits.
    pub gather_interval_milliseconds: u64,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            admin_key: String::new(),
            max_recipients: 10_000,
            allow_private_webhooks: false,
            min_recurrence_seconds: crate::scheduling::RecurrenceLimits::default()
                .min_interval_seconds,
            requests_per_second: 200,
            request_burst: 0,
            gather_interval_milliseconds: gathering::DEFAULT_INTERVAL_MILLISECONDS,
        }
    }
}

/// Everything the gateway process reads from the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub nats: NatsSettings,
    pub redis: RedisSettings,
    pub clickhouse: ClickHouseSettings,
    pub carriers: Option<CarrierCatalog>,
    pub gateway: GatewaySettings,
    pub points: rns_points::PointsSettings,
    pub verification: verification_codes::VerificationSettings,
    pub log: LogSettings,
    pub runtime: rns_service::RuntimeSettings,
}

/// The whole HTTP API, and its OpenAPI document at [`openapi::DOCUMENT_PATH`]
/// (every API route is registered through `routes!`, with its document entry).
pub fn app(state: AppState) -> Router {
    let (api, mut document) = api_routes().split_for_parts();
    openapi::name_operations(&mut document);
    let document = std::sync::Arc::new(document);
    api
        // After every route: it is set on each route registered before it.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record,
        ))
        .route_layer(axum::middleware::from_fn(track))
        .route(rns_service::health::LIVE_PATH, get(|| async { "ok" }))
        .route(rns_service::health::READY_PATH, get(ready))
        .route("/metrics", get(|| async { rns_service::metrics::render() }))
        .merge(
            utoipa_swagger_ui::SwaggerUi::new(openapi::DOCS_PATH)
                .url(openapi::DOCUMENT_PATH, (*document).clone()),
        )
        .merge(console::routes())
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            changes::run_to_end,
        ))
        .with_state(state)
}

/// The OpenAPI document of [`app`]'s API.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut document = api_routes().split_for_parts().1;
    openapi::name_operations(&mut document);
    document
}

/// Every `/v1` route with its OpenAPI entry.
fn api_routes() -> OpenApiRouter<AppState> {
    use routes::*;
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(utoipa_axum::routes!(customers::create, customers::list))
        .routes(utoipa_axum::routes!(points::top_up))
        .routes(utoipa_axum::routes!(customers::carriers))
        .routes(utoipa_axum::routes!(customers::set_rate))
        .routes(utoipa_axum::routes!(customers::set_limits))
        .routes(utoipa_axum::routes!(
            suspension::suspend,
            suspension::resume
        ))
        .routes(utoipa_axum::routes!(audit::list))
        .routes(utoipa_axum::routes!(auth::signup))
        .routes(utoipa_axum::routes!(auth::signin))
        .routes(utoipa_axum::routes!(auth::signout))
        .routes(utoipa_axum::routes!(auth::session))
        .routes(utoipa_axum::routes!(auth::verify_phone))
        .routes(utoipa_axum::routes!(auth::send_phone_code))
        .routes(utoipa_axum::routes!(members::list))
        .routes(utoipa_axum::routes!(members::invite))
        .routes(utoipa_axum::routes!(members::remove))
        .routes(utoipa_axum::routes!(api_keys::create, api_keys::list))
        .routes(utoipa_axum::routes!(api_keys::rotate))
        .routes(utoipa_axum::routes!(api_keys::delete))
        .routes(utoipa_axum::routes!(points::account))
        .routes(utoipa_axum::routes!(points::ledger))
        .routes(utoipa_axum::routes!(routing::get))
        .routes(utoipa_axum::routes!(routing::report))
        .routes(utoipa_axum::routes!(routing::put))
        .routes(utoipa_axum::routes!(routing::preview))
        .routes(utoipa_axum::routes!(queues::list))
        .routes(utoipa_axum::routes!(
            sender_numbers::register,
            sender_numbers::list
        ))
        .routes(utoipa_axum::routes!(sender_numbers::delete))
        .routes(utoipa_axum::routes!(sender_numbers::send_new_code))
        .routes(utoipa_axum::routes!(sender_numbers::verify))
        .routes(utoipa_axum::routes!(sender_number_reviews::list))
        .routes(utoipa_axum::routes!(sender_number_reviews::decide))
        .routes(utoipa_axum::routes!(contacts::create, contacts::list))
        .merge(
            OpenApiRouter::new()
                .routes(utoipa_axum::routes!(contacts::import))
                .layer(DefaultBodyLimit::max(contacts::MAX_IMPORT_BYTES)),
        )
        .routes(utoipa_axum::routes!(
            contacts::get,
            contacts::update,
            contacts::delete
        ))
        .routes(utoipa_axum::routes!(groups::create, groups::list))
        .routes(utoipa_axum::routes!(
            groups::get,
            groups::rename,
            groups::delete
        ))
        .routes(utoipa_axum::routes!(
            groups::add_members,
            groups::list_members
        ))
        .routes(utoipa_axum::routes!(groups::remove_member))
        .routes(utoipa_axum::routes!(opt_outs::record, opt_outs::list))
        .routes(utoipa_axum::routes!(opt_outs::remove))
        .routes(utoipa_axum::routes!(blocklist::add, blocklist::list))
        .routes(utoipa_axum::routes!(blocklist::import))
        .routes(utoipa_axum::routes!(blocklist::remove))
        .routes(utoipa_axum::routes!(opt_out_lines::record))
        .routes(utoipa_axum::routes!(opt_out_lines::issue_key))
        .routes(utoipa_axum::routes!(inbound::list))
        .routes(utoipa_axum::routes!(templates::create, templates::list))
        .routes(utoipa_axum::routes!(
            templates::get,
            templates::replace,
            templates::delete
        ))
        .routes(utoipa_axum::routes!(schedules::list))
        .routes(utoipa_axum::routes!(schedules::get, schedules::cancel))
        .routes(utoipa_axum::routes!(messages::send, results::list))
        .routes(utoipa_axum::routes!(messages::preview_send))
        .routes(utoipa_axum::routes!(results::get_message))
        .routes(utoipa_axum::routes!(results::list_requests))
        .routes(utoipa_axum::routes!(results::get_request))
        .routes(utoipa_axum::routes!(results::stats))
        .routes(utoipa_axum::routes!(
            webhook::put,
            webhook::get,
            webhook::delete
        ))
        .routes(utoipa_axum::routes!(webhook::deliveries))
}

/// Counts every request by route, method and status, and times it.
async fn track(
    route: axum::extract::MatchedPath,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = route.as_str().to_owned();
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(crate::metric_names::HTTP_REQUEST_DURATION_SECONDS, "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(crate::metric_names::HTTP_REQUESTS_TOTAL,
        "route" => route,
        "method" => method,
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    response
}

async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.nats_connection_state() {
        async_nats::connection::State::Connected => (StatusCode::OK, "ready"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "nats disconnected"),
    }
}

/// Connects, ensures the topology, and serves the API until `shutdown`; in-flight
/// requests finish before this returns.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), ApiError> {
    let (client, _jetstream) = rns_nats::connect_with_topology(
        &settings.nats.url,
        "rns-gateway",
        &settings.nats.topology,
        &state::catalog(&settings),
    )
    .await?;
    let state = AppState::connect(&settings, client.clone()).await?;
    rns_service::metrics::handle();
    let listener = tokio::net::TcpListener::bind(&settings.gateway.listen).await?;
    tracing::info!(address = %listener.local_addr()?, "gateway listening");
    let inbound = tokio::spawn(inbound::run(state.clone(), shutdown.clone()));
    let serving = shutdown.clone();
    let changes = state.changes().clone();
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { serving.cancelled().await })
    .await?;
    // Changes whose callers hung up finish too.
    changes.finish().await;
    // The messages from handsets in hand are recorded before the connection goes.
    shutdown.cancel();
    if let Err(error) = inbound.await {
        tracing::error!(%error, "the reader of messages from handsets panicked");
    }
    client
        .flush()
        .await
        .map_err(|error| ApiError::unavailable("nats", error))?;
    Ok(())
}
