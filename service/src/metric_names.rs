//! Every metric service records, named once: the names are the contract with the
//! dashboards (`deploy/grafana/`) and the README's table of metrics.

/// `rns_consumer_ack_pending_messages` (gauge).
pub const CONSUMER_ACK_PENDING_MESSAGES: &str = "rns_consumer_ack_pending_messages";
/// `rns_consumer_pending_messages` (gauge).
pub const CONSUMER_PENDING_MESSAGES: &str = "rns_consumer_pending_messages";
/// `rns_consumer_redelivered_messages` (gauge).
pub const CONSUMER_REDELIVERED_MESSAGES: &str = "rns_consumer_redelivered_messages";
