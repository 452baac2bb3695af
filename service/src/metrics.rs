//! Prometheus metrics: one recorder per process, rendered at `GET /metrics`.
//!
//! Services record with the `metrics` macros (`counter!`, `histogram!`, `gauge!`);
//! [`handle`] installs the recorder on first use, so tests that build several
//! services in one process share it. Durations are histograms in seconds with
//! buckets from 1 ms to 30 s. [`watch_consumers`] publishes each JetStream consumer's
//! lag as gauges, the number an operator watches first.
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Latency buckets, in seconds.
const SECONDS_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Batch size buckets, in rows or messages.
const SIZE_BUCKETS: [f64; 10] = [
    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &SECONDS_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(Matcher::Suffix("_size".to_owned()), &SIZE_BUCKETS)
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (a test harness); then this
        // process renders an empty page rather than failing.
        let _ = metrics::set_global_recorder(recorder);
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".to_owned())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            })
            .expect("a thread can be spawned");
        handle
    })
}

/// The Prometheus text of every metric of this process.
pub fn render() -> String {
    handle().render()
}

/// Polls the consumers every 5 s and sets `rns_consumer_pending_messages` (waiting to
/// be delivered: the lag), `rns_consumer_ack_pending_messages` (delivered, not yet
/// acknowledged) and `rns_consumer_redelivered_messages`, labelled by stream and
/// consumer, until `shutdown`.
pub async fn watch_consumers(
    jetstream: async_nats::jetstream::Context,
    consumers: Vec<(String, String)>,
    shutdown: CancellationToken,
) {
    handle();
    loop {
        for (stream, consumer) in &consumers {
            let info = async {
                let mut consumer = jetstream
                    .get_stream(stream)
                    .await
                    .ok()?
                    .get_consumer::<async_nats::jetstream::consumer::pull::Config>(consumer)
                    .await
                    .ok()?;
                consumer.info().await.ok().cloned()
            };
            if let Some(info) = info.await {
                let labels = [("stream", stream.clone()), ("consumer", consumer.clone())];
                metrics::gauge!(crate::metric_names::CONSUMER_PENDING_MESSAGES, &labels)
                    .set(info.num_pending as f64);
                metrics::gauge!(crate::metric_names::CONSUMER_ACK_PENDING_MESSAGES, &labels)
                    .set(info.num_ack_pending as f64);
                metrics::gauge!(crate::metric_names::CONSUMER_REDELIVERED_MESSAGES, &labels)
                    .set(info.num_redelivered as f64);
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
