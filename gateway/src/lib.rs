//! The RNS gateway: the customer HTTP API (axum).
//!
//! [`app`] builds the router over an [`AppState`]; [`run`] connects to NATS, ensures
//! the topology and serves until shutdown, draining in-flight requests. Every
//! customer route authenticates with `Authorization: Bearer <api key>` and reads or
//! writes only that customer's data; admin routes take the operator's key.
#![forbid(unsafe_code)]

pub mod carrier_rates;
pub mod compose;
pub mod contacts;
pub mod error;
pub mod extract;
pub mod gathering;
pub mod idempotency;
pub mod inbound;
pub mod key_cache;
pub mod opt_outs;
pub mod pagination;
pub mod routes;
pub mod scheduling;
pub mod sending;
pub mod state;
pub mod webhooks;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::Router;
use rns_service::{ClickHouseSettings, LogSettings, NatsSettings, RedisSettings};
use rns_types::CarrierCatalog;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

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
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            admin_key: String::new(),
            max_recipients: 10_000,
            allow_private_webhooks: false,
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
    pub log: LogSettings,
}

/// The whole HTTP API.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(rns_service::health::LIVE_PATH, get(|| async { "ok" }))
        .route(rns_service::health::READY_PATH, get(ready))
        .route(
            "/v1/admin/customers",
            post(routes::customers::create).get(routes::customers::list),
        )
        .route(
            "/v1/admin/customers/{id}/points",
            post(routes::points::top_up),
        )
        .route("/v1/carriers", get(routes::customers::carriers))
        .route(
            "/v1/admin/carriers/{id}/rate",
            put(routes::customers::set_rate),
        )
        .route("/v1/points", get(routes::points::account))
        .route("/v1/points/ledger", get(routes::points::ledger))
        .route("/v1/routing", get(routes::routing::get))
        .route("/v1/routing/report", get(routes::routing::report))
        .route("/v1/routing/{channel}", put(routes::routing::put))
        .route(
            "/v1/sender-numbers",
            post(routes::sender_numbers::register).get(routes::sender_numbers::list),
        )
        .route(
            "/v1/sender-numbers/{number}",
            delete(routes::sender_numbers::delete),
        )
        .route(
            "/v1/contacts",
            post(routes::contacts::create).get(routes::contacts::list),
        )
        .route(
            "/v1/contacts/import",
            post(routes::contacts::import)
                .layer(DefaultBodyLimit::max(routes::contacts::MAX_IMPORT_BYTES)),
        )
        .route(
            "/v1/contacts/{id}",
            get(routes::contacts::get)
                .patch(routes::contacts::update)
                .delete(routes::contacts::delete),
        )
        .route(
            "/v1/groups",
            post(routes::groups::create).get(routes::groups::list),
        )
        .route(
            "/v1/groups/{id}",
            get(routes::groups::get)
                .patch(routes::groups::rename)
                .delete(routes::groups::delete),
        )
        .route(
            "/v1/groups/{id}/members",
            post(routes::groups::add_members).get(routes::groups::list_members),
        )
        .route(
            "/v1/groups/{id}/members/{contact_id}",
            delete(routes::groups::remove_member),
        )
        .route(
            "/v1/opt-outs",
            post(routes::opt_outs::record).get(routes::opt_outs::list),
        )
        .route(
            "/v1/opt-outs/{sender_number}/{recipient}",
            delete(routes::opt_outs::remove),
        )
        .route("/v1/inbound-messages", get(routes::inbound::list))
        .route(
            "/v1/templates",
            post(routes::templates::create).get(routes::templates::list),
        )
        .route(
            "/v1/templates/{id}",
            get(routes::templates::get)
                .put(routes::templates::replace)
                .delete(routes::templates::delete),
        )
        .route("/v1/schedules", get(routes::schedules::list))
        .route(
            "/v1/schedules/{id}",
            get(routes::schedules::get).delete(routes::schedules::cancel),
        )
        .route(
            "/v1/messages",
            post(routes::messages::send).get(routes::results::list),
        )
        .route("/v1/messages/{id}", get(routes::results::get_message))
        .route("/v1/requests", get(routes::results::list_requests))
        .route("/v1/requests/{id}", get(routes::results::get_request))
        .route("/v1/stats", get(routes::results::stats))
        .route(
            "/v1/webhook",
            put(routes::webhook::put)
                .get(routes::webhook::get)
                .delete(routes::webhook::delete),
        )
        .route("/v1/webhook/deliveries", get(routes::webhook::deliveries))
        // After every route: it is set on each route registered before it.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .route_layer(axum::middleware::from_fn(track))
        .route("/metrics", get(|| async { rns_service::metrics::render() }))
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
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
    metrics::histogram!("rns_http_request_duration_seconds", "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        "rns_http_requests_total",
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
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move { serving.cancelled().await })
        .await?;
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
