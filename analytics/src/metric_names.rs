//! Every metric analytics records, named once: the names are the contract with the
//! dashboards (`deploy/grafana/`) and the README's table of metrics.

/// `rns_analytics_batch_size` (histogram).
pub const ANALYTICS_BATCH_SIZE: &str = "rns_analytics_batch_size";
/// `rns_analytics_insert_duration_seconds` (histogram).
pub const ANALYTICS_INSERT_DURATION_SECONDS: &str = "rns_analytics_insert_duration_seconds";
/// `rns_analytics_insert_failures_total` (counter).
pub const ANALYTICS_INSERT_FAILURES_TOTAL: &str = "rns_analytics_insert_failures_total";
/// `rns_analytics_redeliveries_skipped_total` (counter): redelivered RESULTS messages
/// whose rows were inserted already, not inserted again.
pub const ANALYTICS_REDELIVERIES_SKIPPED_TOTAL: &str = "rns_analytics_redeliveries_skipped_total";
/// `rns_analytics_rows_inserted_total` (counter).
pub const ANALYTICS_ROWS_INSERTED_TOTAL: &str = "rns_analytics_rows_inserted_total";
/// `rns_webhook_attempt_duration_seconds` (histogram).
pub const WEBHOOK_ATTEMPT_DURATION_SECONDS: &str = "rns_webhook_attempt_duration_seconds";
/// `rns_webhook_attempts_total` (counter).
pub const WEBHOOK_ATTEMPTS_TOTAL: &str = "rns_webhook_attempts_total";
