//! Status webhooks: each customer's final states (or every event) POSTed to its URL,
//! signed, at least once, retried for more than a day, and never at the expense of
//! another customer.
//!
//! First attempts come from the `webhooks` consumer of RESULTS, read in rounds (an
//! event waits at most 100 ms to be read: [`rns_nats::polled`]). A delivery that fails
//! is not held: its retry is written to JetStream as a message schedule
//! (`webhook_retry.<delivery>.<attempt>` in `WEBHOOKS`), the source message is
//! acknowledged, and the server publishes the retry to `webhook.<customer>` when it
//! is due, where the `webhook-retries` consumer picks it up, even if this worker was
//! down meanwhile. A source message is acknowledged only after its attempt was
//! recorded and any retry stored, so a crash at any point repeats an attempt rather
//! than losing one: delivery is at least once, and receivers deduplicate by the
//! `X-RNS-Delivery` id, the same on every attempt.
//!
//! A customer has at most [`WebhookSettings::in_flight_per_customer`] deliveries in
//! progress; more are put back for a few seconds, so a slow or failing receiver
//! holds at most that many of the worker's slots. Every attempt is recorded in a
//! capped Redis stream per customer for `GET /v1/webhook/deliveries`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::{AckKind, Context, Message};
use bytes::Bytes;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use rns_nats::{publish_scheduled, Outbound, Topology};
use rns_types::subjects::{
    webhook_retry_subject, webhook_subject, RESULTS_STREAM, WEBHOOKS_BUCKET, WEBHOOKS_STREAM,
    WEBHOOK_CONSUMER, WEBHOOK_RETRY_CONSUMER,
};
use rns_types::webhook::{
    attempts_key, delivery_id, signature, AttemptOutcome, AttemptRecord, PendingDelivery,
    WebhookConfig, ATTEMPTS_KEPT,
};
use rns_types::wire::{MessageEvent, ResultEvents};
use rns_types::CustomerId;
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::AnalyticsError;
use crate::receivers::{check_literal_host, ReceiverResolver};

/// Most bytes of RESULTS messages pulled at once: a message carries up to a few
/// hundred outcomes, so a count alone does not bound memory.
const PULL_BYTES: usize = 4 << 20;

/// `[webhooks]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WebhookSettings {
    /// Delays before the 2nd, 3rd, … attempt; the last repeats until `give_up_hours`.
    pub retry_delays_seconds: Vec<u64>,
    /// Hours after the first attempt when a delivery is abandoned.
    pub give_up_hours: u64,
    /// How long a receiver has to answer.
    pub timeout_milliseconds: u64,
    /// Deliveries in progress at once, over all customers.
    pub concurrency: usize,
    /// Deliveries in progress at once for one customer.
    pub in_flight_per_customer: usize,
    /// How long a delivery waits when its customer's slots are all taken.
    pub busy_delay_seconds: u64,
    /// Deliver to loopback, private and link-local addresses too (development and
    /// tests only: see [`crate::receivers`]).
    pub allow_private: bool,
    /// Receiver names answered without DNS, e.g. `{ "hooks.example" = "203.0.113.9" }`
    /// (split-horizon setups, tests); their addresses are checked like any other.
    pub hosts: std::collections::BTreeMap<String, std::net::IpAddr>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            // 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, then every 6 h.
            retry_delays_seconds: vec![5, 30, 120, 600, 1_800, 3_600, 7_200, 14_400, 21_600],
            give_up_hours: 26,
            timeout_milliseconds: 10_000,
            concurrency: 64,
            in_flight_per_customer: 4,
            busy_delay_seconds: 2,
            allow_private: false,
            hosts: Default::default(),
        }
    }
}

impl WebhookSettings {
    /// When attempt `attempt + 1` of a delivery first tried at `first_ms` is due,
    /// after a failure at `now_ms`; `None` once the delivery is too old to retry.
    pub fn next_attempt_at(&self, attempt: u32, first_ms: u64, now_ms: u64) -> Option<u64> {
        let index = (attempt as usize).saturating_sub(1);
        let delay = self
            .retry_delays_seconds
            .get(index)
            .or(self.retry_delays_seconds.last())
            .copied()?;
        let next = now_ms + delay * 1_000;
        (next <= first_ms + self.give_up_hours * 3_600_000).then_some(next)
    }
}

/// Every customer's webhook, kept current by a watch of the `webhooks` bucket.
#[derive(Debug, Clone, Default)]
struct Configs(Arc<RwLock<HashMap<String, WebhookConfig>>>);

impl Configs {
    /// Whether `customer` has a webhook (without copying it).
    fn has(&self, customer: &CustomerId) -> bool {
        self.0
            .read()
            .expect("the webhook lock is never poisoned")
            .contains_key(customer.as_str())
    }

    fn get(&self, customer: &CustomerId) -> Option<WebhookConfig> {
        self.0
            .read()
            .expect("the webhook lock is never poisoned")
            .get(customer.as_str())
            .cloned()
    }

    fn apply(&self, customer: &str, config: Option<WebhookConfig>) {
        let mut configs = self.0.write().expect("the webhook lock is never poisoned");
        match config {
            Some(config) => configs.insert(customer.to_owned(), config),
            None => configs.remove(customer),
        };
    }

    /// Loads the bucket, then follows it until `shutdown`.
    async fn watch(
        jetstream: &Context,
        shutdown: CancellationToken,
    ) -> Result<Self, AnalyticsError> {
        let configs = Self::default();
        let background = configs.clone();
        rns_nats::follow_bucket(
            jetstream,
            WEBHOOKS_BUCKET,
            shutdown,
            move |key, value, _revision| {
                background.apply(
                    key,
                    value.and_then(|value| serde_json::from_slice(value).ok()),
                )
            },
        )
        .await
        .map_err(AnalyticsError::Nats)?;
        Ok(configs)
    }
}

/// Deliveries in progress per customer.
#[derive(Debug, Default)]
struct InFlight(Mutex<HashMap<String, usize>>);

/// A customer's slot, given back on drop.
struct Slot<'a> {
    in_flight: &'a InFlight,
    customer: String,
}

impl InFlight {
    fn take(&self, customer: &CustomerId, most: usize) -> Option<Slot<'_>> {
        let mut counts = self.0.lock().expect("the slot lock is never poisoned");
        let count = counts.entry(customer.to_string()).or_insert(0);
        if *count >= most {
            return None;
        }
        *count += 1;
        Some(Slot {
            in_flight: self,
            customer: customer.to_string(),
        })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut counts = self
            .in_flight
            .0
            .lock()
            .expect("the slot lock is never poisoned");
        if let Some(count) = counts.get_mut(&self.customer) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.customer);
            }
        }
    }
}

struct Worker {
    jetstream: Context,
    configs: Configs,
    http: reqwest::Client,
    redis: ConnectionManager,
    settings: WebhookSettings,
    in_flight: InFlight,
}

/// Delivers webhooks until `shutdown`; deliveries in progress then finish first.
/// When Redis or NATS cannot be reached at start it keeps trying, so webhooks start
/// as soon as they can without holding up ingestion.
pub async fn run(
    jetstream: Context,
    redis_url: String,
    settings: WebhookSettings,
    shutdown: CancellationToken,
) {
    loop {
        match deliver(&jetstream, &redis_url, &settings, &shutdown).await {
            Ok(()) => return,
            Err(error) => tracing::warn!(%error, "the webhook worker cannot start; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn deliver(
    jetstream: &Context,
    redis_url: &str,
    settings: &WebhookSettings,
    shutdown: &CancellationToken,
) -> Result<(), AnalyticsError> {
    let redis =
        redis::Client::open(redis_url).map_err(|error| AnalyticsError::Redis(error.to_string()))?;
    let redis = ConnectionManager::new(redis)
        .await
        .map_err(|error| AnalyticsError::Redis(error.to_string()))?;
    let worker = Worker {
        configs: Configs::watch(jetstream, shutdown.clone()).await?,
        http: receiver_client(settings).map_err(|error| AnalyticsError::Http(error.to_string()))?,
        redis,
        in_flight: InFlight::default(),
        settings: settings.clone(),
        jetstream: jetstream.clone(),
    };
    let mut sources = Vec::with_capacity(2);
    for (stream, consumer) in [
        (RESULTS_STREAM, WEBHOOK_CONSUMER),
        (WEBHOOKS_STREAM, WEBHOOK_RETRY_CONSUMER),
    ] {
        let consumer = Topology::consumer(jetstream, stream, consumer).await?;
        sources.push(Box::pin(rns_nats::polled::in_rounds(
            consumer,
            rns_nats::polled::Rounds {
                max_messages: worker.settings.concurrency * 2,
                max_bytes: PULL_BYTES,
                pause: rns_nats::polled::RESULTS_READ_PAUSE,
            },
        )));
    }
    tracing::info!("webhook worker delivering");
    futures::stream::select_all(sources)
        .take_until(shutdown.cancelled())
        .for_each_concurrent(worker.settings.concurrency.max(1), |message| {
            let worker = &worker;
            async move {
                match message {
                    Ok(message) => worker.handle(message).await,
                    Err(error) => tracing::warn!(%error, "pull for webhooks failed"),
                }
            }
        })
        .await;
    Ok(())
}

/// The HTTP client deliveries go through: it resolves receivers' names through
/// [`ReceiverResolver`] (only public addresses, unless `allow_private`) and follows
/// no redirects (see [`crate::receivers`]).
pub fn receiver_client(settings: &WebhookSettings) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.timeout_milliseconds))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(ReceiverResolver {
            hosts: settings.hosts.clone(),
            allow_private: settings.allow_private,
        }))
        .user_agent(concat!("rns-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

impl Worker {
    async fn handle(&self, message: Message) {
        // The results of a customer without a webhook are not even read.
        if let Some(customer) = message
            .subject
            .strip_prefix("result.")
            .and_then(|customer| CustomerId::parse(customer).ok())
        {
            if !self.configs.has(&customer) {
                let _ = message.ack().await;
                return;
            }
        }
        let Some(delivery) = self.delivery_of(&message) else {
            tracing::error!(subject = %message.subject, "unreadable webhook source; dropping it");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        };
        let Some(config) = self.configs.get(&delivery.customer_id) else {
            let _ = message.ack().await;
            return;
        };
        let delivery = PendingDelivery {
            events: delivery
                .events
                .into_iter()
                .filter(|event| config.wants(event))
                .collect(),
            ..delivery
        };
        if delivery.events.is_empty() {
            let _ = message.ack().await;
            return;
        }
        let now_ms = rns_types::time::now_milliseconds();
        let Some(_slot) = self
            .in_flight
            .take(&delivery.customer_id, self.settings.in_flight_per_customer)
        else {
            // Not an attempt: the same attempt, a little later.
            let later = now_ms + self.settings.busy_delay_seconds * 1_000;
            self.settle(
                &message,
                self.retry(&delivery, delivery.attempt, later).await,
            )
            .await;
            return;
        };
        let started = Instant::now();
        let answer = self.post(&config, &delivery, now_ms).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let (outcome, status, error, next) = match answer {
            Ok(()) => (AttemptOutcome::Delivered, None, String::new(), None),
            Err((status, error)) => {
                let next = self.settings.next_attempt_at(
                    delivery.attempt,
                    delivery.first_attempt_at_ms,
                    rns_types::time::now_milliseconds(),
                );
                let outcome = match next {
                    Some(_) => AttemptOutcome::Failed,
                    None => AttemptOutcome::Abandoned,
                };
                (outcome, status, error, next)
            }
        };
        metrics::counter!(crate::metric_names::WEBHOOK_ATTEMPTS_TOTAL, "outcome" => outcome_name(outcome))
            .increment(1);
        metrics::histogram!(crate::metric_names::WEBHOOK_ATTEMPT_DURATION_SECONDS)
            .record(duration_ms as f64 / 1_000.0);
        let record = AttemptRecord {
            delivery_id: delivery.id.clone(),
            attempt: delivery.attempt,
            at_ms: now_ms,
            url: config.url.clone(),
            outcome,
            status,
            error,
            duration_ms,
            events: delivery.events.len(),
            next_attempt_at_ms: next,
        };
        if let Err(error) = self.record(&delivery.customer_id, &record).await {
            // The attempt happened; without its record the source is tried again, which
            // at-least-once allows and losing the record would not.
            tracing::warn!(%error, "recording a webhook attempt failed; it will be repeated");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                .await;
            return;
        }
        let stored = match next {
            Some(at) => self.retry(&delivery, delivery.attempt + 1, at).await,
            None => Ok(()),
        };
        self.settle(&message, stored).await;
    }

    /// The delivery a RESULTS message (a first attempt) or a due retry carries.
    fn delivery_of(&self, message: &Message) -> Option<PendingDelivery> {
        if message.subject.starts_with("result.") {
            let batch = ResultEvents::decode(&message.payload).ok()?;
            let source = message
                .headers
                .as_ref()
                .and_then(|headers| headers.get("Nats-Msg-Id"))
                .map(|id| id.to_string())
                .or_else(|| {
                    message
                        .info()
                        .ok()
                        .map(|info| format!("r{}", info.stream_sequence))
                })?;
            Some(PendingDelivery {
                id: delivery_id(&source),
                customer_id: batch.customer_id,
                attempt: 1,
                first_attempt_at_ms: rns_types::time::now_milliseconds(),
                events: batch.events,
            })
        } else {
            serde_json::from_slice(&message.payload).ok()
        }
    }

    /// POSTs the delivery; the receiver's status and what went wrong otherwise.
    async fn post(
        &self,
        config: &WebhookConfig,
        delivery: &PendingDelivery,
        now_ms: u64,
    ) -> Result<(), (Option<u16>, String)> {
        let body = serde_json::to_vec(&json!({
            "delivery_id": delivery.id,
            "attempt": delivery.attempt,
            "customer_id": delivery.customer_id,
            "events": delivery.events.iter().map(event_json).collect::<Vec<_>>(),
        }))
        .expect("a webhook body serialises");
        check_literal_host(&config.url, self.settings.allow_private)
            .map_err(|refused| (None, format!("not delivered: {refused}")))?;
        let signed = signature(&config.secret, now_ms / 1_000, &body);
        let response = self
            .http
            .post(&config.url)
            .header("content-type", "application/json")
            .header("x-rns-delivery", &delivery.id)
            .header("x-rns-attempt", delivery.attempt.to_string())
            .header("x-rns-signature", signed)
            .body(body)
            .send()
            .await
            .map_err(|error| (None, without_url(&error)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            Err((
                Some(status.as_u16()),
                format!("the receiver answered {status}; redirects are not followed"),
            ))
        } else {
            Err((
                Some(status.as_u16()),
                format!("the receiver answered {status}"),
            ))
        }
    }

    /// Stores attempt `attempt` of `delivery` as a message schedule due at `at_ms`.
    async fn retry(
        &self,
        delivery: &PendingDelivery,
        attempt: u32,
        at_ms: u64,
    ) -> Result<(), AnalyticsError> {
        // Whole seconds, rounded up, and never in the past.
        let at_ms = at_ms
            .max(rns_types::time::now_milliseconds() + 1_000)
            .div_ceil(1_000)
            * 1_000;
        let retry = PendingDelivery {
            attempt,
            ..delivery.clone()
        };
        let outbound = Outbound {
            subject: webhook_subject(&delivery.customer_id),
            message_id: format!("webhook:{}:{attempt}:{at_ms}", delivery.id),
            payload: Bytes::from(serde_json::to_vec(&retry).expect("a delivery serialises")),
        };
        publish_scheduled(
            &self.jetstream,
            webhook_retry_subject(&delivery.id, attempt),
            outbound,
            &rns_types::time::rfc3339_seconds(at_ms),
        )
        .await
        .map_err(|error| AnalyticsError::Nats(error.to_string()))
    }

    /// Acknowledges the source once its follow-up is stored, or has it redelivered.
    async fn settle(&self, message: &Message, stored: Result<(), AnalyticsError>) {
        match stored {
            Ok(()) => {
                if let Err(error) = message.ack().await {
                    tracing::warn!(%error, "acknowledging a webhook source failed; it will be repeated");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "storing a webhook retry failed; the source will be redelivered");
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                    .await;
            }
        }
    }

    async fn record(
        &self,
        customer: &CustomerId,
        record: &AttemptRecord,
    ) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let entry = serde_json::to_string(record).expect("an attempt record serialises");
        redis::cmd("XADD")
            .arg(attempts_key(customer))
            .arg("MAXLEN")
            .arg("~")
            .arg(ATTEMPTS_KEPT)
            .arg("*")
            .arg("attempt")
            .arg(entry)
            .query_async::<String>(&mut redis)
            .await
            .map(|_| ())
    }
}

fn outcome_name(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Delivered => "delivered",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::Abandoned => "abandoned",
    }
}

/// An event as receivers see it.
fn event_json(event: &MessageEvent) -> serde_json::Value {
    let mut value = json!({
        "message_id": event.message_id,
        "request_id": event.message_id.request_id(),
        "type": event.kind,
        "status": event.kind.status(),
        "at": rns_types::time::rfc3339(event.at_ms),
        "hop": event.hop,
        "attempt": event.attempt,
    });
    if let Some(carrier) = &event.carrier {
        value["carrier"] = json!(carrier);
    }
    if !event.detail.is_empty() {
        value["detail"] = json!(event.detail);
    }
    if !event.points.is_none() {
        value["points"] = json!({"reserved": event.points.reserved, "spent": event.points.spent});
    }
    value
}

/// A client error without the URL, which may carry credentials in its query.
pub fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    // The innermost cause says most (a refused address, a reset connection).
    let mut cause = std::error::Error::source(error);
    let mut innermost = None;
    while let Some(source) = cause {
        innermost = Some(source);
        cause = source.source();
    }
    match innermost {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_then_repeat_the_last_delay_until_they_give_up() {
        let settings = WebhookSettings::default();
        let first = 1_000_000;
        assert_eq!(
            settings.next_attempt_at(1, first, first),
            Some(first + 5_000)
        );
        assert_eq!(
            settings.next_attempt_at(2, first, first + 5_000),
            Some(first + 35_000)
        );
        let late = first + 20 * 3_600_000;
        assert_eq!(
            settings.next_attempt_at(30, first, late),
            Some(late + 21_600_000),
            "the last delay repeats"
        );
        assert_eq!(
            settings.next_attempt_at(31, first, first + 25 * 3_600_000),
            None
        );
        // Retries cover more than a day.
        let mut now = first;
        let mut attempt = 1;
        while let Some(next) = settings.next_attempt_at(attempt, first, now) {
            now = next;
            attempt += 1;
        }
        assert!(
            now - first >= 24 * 3_600_000,
            "last retry {} h after the first",
            (now - first) / 3_600_000
        );
    }

    #[test]
    fn a_customer_has_at_most_its_slots() {
        let in_flight = InFlight::default();
        let acme = CustomerId::parse("acme").unwrap();
        let other = CustomerId::parse("other").unwrap();
        let first = in_flight.take(&acme, 2).unwrap();
        let _second = in_flight.take(&acme, 2).unwrap();
        assert!(in_flight.take(&acme, 2).is_none());
        assert!(
            in_flight.take(&other, 2).is_some(),
            "others are not blocked"
        );
        drop(first);
        assert!(in_flight.take(&acme, 2).is_some());
    }
}
