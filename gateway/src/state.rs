//! What every handler shares: [`AppState`], the clients and stores of one gateway
//! process, opened once by [`AppState::connect`]. Every Redis-backed store (points,
//! contacts, opt-outs, idempotency, inbound messages, webhook deliveries, carrier
//! rates) shares one multiplexed connection.
use std::sync::Arc;

use redis::aio::ConnectionManager;
use rns_nats::{CustomerDirectory, HealthStore};
use rns_results::ResultQueries;
use rns_types::CarrierCatalog;

use crate::idempotency::IdempotencyStore;
use crate::{
    carrier_rates, contacts, extract, gathering, inbound, key_cache, opt_outs, webhooks, ApiError,
    Settings,
};

/// What every handler shares; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    sends: gathering::SendPublisher,
    changes: crate::changes::ChangeTasks,
    reservations: gathering::PointsReserver,
    directory: CustomerDirectory,
    keys: key_cache::KeyCache,
    health: HealthStore,
    carrier_rates: carrier_rates::CarrierRates,
    routing_positions: crate::routing_positions::RoutingPositions,
    /// Every stream of the topology, and whether its oldest message's age is a lag.
    streams: Vec<(String, bool)>,
    idempotency: IdempotencyStore,
    catalog: CarrierCatalog,
    results: ResultQueries,
    points: rns_points::PointsStore,
    contacts: contacts::ContactStore,
    opt_outs: opt_outs::OptOutStore,
    inbound: inbound::InboundStore,
    images: async_nats::jetstream::object_store::ObjectStore,
    templates: rns_nats::Documents<rns_types::template::TemplateBook>,
    schedules: rns_nats::Documents<rns_types::schedule::ScheduleBook>,
    prices: rns_types::points::Prices,
    webhooks: webhooks::WebhookStore,
    sender_numbers: crate::sender_numbers::SenderNumberStore,
    codes: crate::verification_codes::VerificationCodes,
    accounts: crate::accounts::Accounts,
    admin_key_hash: Option<String>,
    max_recipients: usize,
    allow_private_webhooks: bool,
    recurrence_limits: crate::scheduling::RecurrenceLimits,
    rate_limits: crate::rate_limit::RateLimiter,
    key_usage: crate::api_keys::KeyUsage,
    /// A customer's request rate unless the operator set its own.
    default_limits: rns_types::customer::CustomerLimits,
    /// Cancels the customers bucket's follower when the state is dropped.
    _following: tokio_util::sync::DropGuard,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// Connects the state's clients; the topology must already exist.
    pub async fn connect(
        settings: &Settings,
        client: async_nats::Client,
    ) -> Result<Self, ApiError> {
        let jetstream = async_nats::jetstream::new(client.clone());
        // Profiles are read per send: from a copy that follows the bucket, which
        // stops following once the state is dropped.
        let following = tokio_util::sync::CancellationToken::new();
        let directory = CustomerDirectory::replicated(&jetstream, following.clone()).await?;
        let health = HealthStore::open(&jetstream).await?;
        let admin_key = settings.gateway.admin_key.trim();
        // One multiplexed connection for every Redis-backed store.
        let redis =
            ConnectionManager::new(redis::Client::open(settings.redis.url.as_str())?).await?;
        let points = rns_points::PointsStore::with_connection(redis.clone());
        // A key whose stored entry changes (revoked, rotated) is forgotten at once.
        let keys = key_cache::KeyCache::new(std::time::Duration::from_secs(30), 100_000);
        let watched = keys.clone();
        rns_nats::follow_bucket(
            &jetstream,
            rns_types::subjects::API_KEYS_BUCKET,
            following.clone(),
            move |key_hash, _, _| watched.forget(key_hash),
        )
        .await
        .map_err(|error| ApiError::unavailable("the api_keys bucket", error))?;
        let state = Self(Arc::new(Inner {
            client,
            jetstream: jetstream.clone(),
            sends: gathering::SendPublisher::start(
                jetstream.clone(),
                std::time::Duration::from_millis(settings.gateway.gather_interval_milliseconds),
            ),
            changes: crate::changes::ChangeTasks::default(),
            directory,
            keys,
            health,
            carrier_rates: carrier_rates::CarrierRates::new(redis.clone()),
            routing_positions: crate::routing_positions::RoutingPositions::new(redis.clone()),
            streams: rns_nats::Topology::for_catalog(
                settings.nats.topology.clone(),
                &catalog(settings),
            )
            .stream_names(),
            idempotency: IdempotencyStore::new(redis.clone()),
            catalog: catalog(settings),
            results: ResultQueries::new(rns_results::clickhouse_client(&settings.clickhouse)),
            points: points.clone(),
            reservations: gathering::PointsReserver::start(points),
            contacts: contacts::ContactStore::new(redis.clone()),
            rate_limits: crate::rate_limit::RateLimiter::new(redis.clone()),
            key_usage: crate::api_keys::KeyUsage::new(redis.clone()),
            default_limits: rns_types::customer::CustomerLimits {
                requests_per_second: Some(settings.gateway.requests_per_second.max(1)),
                burst: (settings.gateway.request_burst > 0)
                    .then_some(settings.gateway.request_burst),
                daily_messages: None,
            },
            opt_outs: opt_outs::OptOutStore::open(&jetstream, redis.clone()).await?,
            inbound: inbound::InboundStore::new(redis.clone()),
            images: jetstream
                .get_object_store(rns_types::subjects::MMS_IMAGES_BUCKET)
                .await
                .map_err(|error| ApiError::unavailable("the image store", error))?,
            templates: rns_nats::Documents::open(&jetstream, rns_types::subjects::TEMPLATES_BUCKET)
                .await
                .map_err(|error| ApiError::unavailable("templates", error))?,
            schedules: rns_nats::Documents::open(&jetstream, rns_types::subjects::SCHEDULES_BUCKET)
                .await
                .map_err(|error| ApiError::unavailable("schedules", error))?,
            prices: settings.points.prices,
            sender_numbers: crate::sender_numbers::SenderNumberStore::open(&jetstream).await?,
            accounts: crate::accounts::Accounts::open(&jetstream, redis.clone()).await?,
            codes: crate::verification_codes::VerificationCodes::new(
                redis.clone(),
                settings.verification.clone(),
            )?,
            webhooks: webhooks::WebhookStore::open(&jetstream, redis).await?,
            allow_private_webhooks: settings.gateway.allow_private_webhooks,
            admin_key_hash: (!admin_key.is_empty()).then(|| extract::hash_api_key(admin_key)),
            max_recipients: settings.gateway.max_recipients,
            recurrence_limits: crate::scheduling::RecurrenceLimits {
                min_interval_seconds: settings.gateway.min_recurrence_seconds.max(1),
            },
            _following: following.drop_guard(),
        }));
        crate::sender_numbers::ensure_system_customer(&state).await?;
        Ok(state)
    }

    /// Whether the NATS connection is up (readiness).
    pub fn nats_connection_state(&self) -> async_nats::connection::State {
        self.0.client.connection_state()
    }

    pub fn reservations(&self) -> &gathering::PointsReserver {
        &self.0.reservations
    }

    pub fn sends(&self) -> &gathering::SendPublisher {
        &self.0.sends
    }

    /// The tasks of changes being handled ([`crate::changes`]).
    pub fn changes(&self) -> &crate::changes::ChangeTasks {
        &self.0.changes
    }

    pub fn jetstream(&self) -> &async_nats::jetstream::Context {
        &self.0.jetstream
    }

    pub fn directory(&self) -> &CustomerDirectory {
        &self.0.directory
    }

    /// The API key with this hash: remembered for 30 s once found, and forgotten the
    /// moment its stored entry changes (see [`key_cache`]); else looked up in the
    /// `api_keys` bucket.
    pub async fn key(
        &self,
        key_hash: &str,
    ) -> Result<Option<rns_types::api_key::ApiKeyRecord>, rns_nats::DirectoryError> {
        if let Some(key) = self.0.keys.get(key_hash) {
            return Ok(Some(key));
        }
        let key = self.0.directory.key(key_hash).await?;
        if let Some(key) = &key {
            self.0.keys.insert(key_hash.to_owned(), key.clone());
        }
        Ok(key)
    }

    /// Forgets a cached key at once (it was revoked through this replica).
    pub fn forget_key(&self, key_hash: &str) {
        self.0.keys.forget(key_hash);
    }

    pub fn key_usage(&self) -> &crate::api_keys::KeyUsage {
        &self.0.key_usage
    }

    /// The caller's profile; a customer deleted since its key was checked is 401.
    pub async fn profile(
        &self,
        customer: &rns_types::CustomerId,
    ) -> Result<rns_types::CustomerProfile, ApiError> {
        self.0
            .directory
            .profile(customer)
            .await?
            .ok_or(ApiError::Unauthorized("customer no longer exists"))
    }

    /// `part` of the caller's profile, read without copying the rest; a customer
    /// deleted since its key was checked is 401, as in [`AppState::profile`].
    pub async fn profile_part<T>(
        &self,
        customer: &rns_types::CustomerId,
        part: impl Fn(&rns_types::CustomerProfile) -> T,
    ) -> Result<T, ApiError> {
        self.0
            .directory
            .profile_part(customer, part)
            .await?
            .ok_or(ApiError::Unauthorized("customer no longer exists"))
    }

    pub fn idempotency(&self) -> &IdempotencyStore {
        &self.0.idempotency
    }

    pub fn health(&self) -> &HealthStore {
        &self.0.health
    }

    pub fn carrier_rates(&self) -> &carrier_rates::CarrierRates {
        &self.0.carrier_rates
    }

    /// Every stream of the topology, and whether its oldest message's age is a lag
    /// ([`rns_nats::Topology::stream_names`]).
    pub fn streams(&self) -> &[(String, bool)] {
        &self.0.streams
    }

    pub fn routing_positions(&self) -> &crate::routing_positions::RoutingPositions {
        &self.0.routing_positions
    }

    pub fn catalog(&self) -> &CarrierCatalog {
        &self.0.catalog
    }

    pub fn results(&self) -> &ResultQueries {
        &self.0.results
    }

    pub fn points(&self) -> &rns_points::PointsStore {
        &self.0.points
    }

    pub fn contacts(&self) -> &contacts::ContactStore {
        &self.0.contacts
    }

    pub fn images(&self) -> &async_nats::jetstream::object_store::ObjectStore {
        &self.0.images
    }

    pub fn opt_outs(&self) -> &opt_outs::OptOutStore {
        &self.0.opt_outs
    }

    pub fn inbound(&self) -> &inbound::InboundStore {
        &self.0.inbound
    }

    pub fn schedules(&self) -> &rns_nats::Documents<rns_types::schedule::ScheduleBook> {
        &self.0.schedules
    }

    pub fn templates(&self) -> &rns_nats::Documents<rns_types::template::TemplateBook> {
        &self.0.templates
    }

    /// The prices charged for sends accepted now.
    pub fn prices(&self) -> &rns_types::points::Prices {
        &self.0.prices
    }

    pub fn admin_key_hash(&self) -> Option<&str> {
        self.0.admin_key_hash.as_deref()
    }

    pub fn max_recipients(&self) -> usize {
        self.0.max_recipients
    }

    pub fn sender_numbers(&self) -> &crate::sender_numbers::SenderNumberStore {
        &self.0.sender_numbers
    }

    pub fn accounts(&self) -> &crate::accounts::Accounts {
        &self.0.accounts
    }

    pub fn codes(&self) -> &crate::verification_codes::VerificationCodes {
        &self.0.codes
    }

    pub fn webhooks(&self) -> &webhooks::WebhookStore {
        &self.0.webhooks
    }

    pub fn allow_private_webhooks(&self) -> bool {
        self.0.allow_private_webhooks
    }

    pub fn rate_limits(&self) -> &crate::rate_limit::RateLimiter {
        &self.0.rate_limits
    }

    /// The request rate of a customer with `limits`: its own, else the gateway's.
    pub fn request_rate(
        &self,
        limits: &rns_types::customer::CustomerLimits,
    ) -> crate::rate_limit::Rate {
        let per_second = limits
            .requests_per_second
            .or(self.0.default_limits.requests_per_second)
            .unwrap_or(1);
        let burst = limits
            .burst
            .or(self.0.default_limits.burst)
            .unwrap_or(per_second.saturating_mul(2));
        crate::rate_limit::Rate {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
        }
    }

    pub fn recurrence_limits(&self) -> crate::scheduling::RecurrenceLimits {
        self.0.recurrence_limits
    }
}

/// The carriers the configuration names, or Korea's three and the AlimTalk ones.
pub fn catalog(settings: &Settings) -> CarrierCatalog {
    settings
        .carriers
        .clone()
        .unwrap_or_else(CarrierCatalog::korean_default)
}
