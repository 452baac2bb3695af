//! Every metric dispatcher records, named once: the names are the contract with the
//! dashboards (`deploy/grafana/`) and the README's table of metrics.

/// `rns_dispatch_duration_seconds` (histogram).
pub const DISPATCH_DURATION_SECONDS: &str = "rns_dispatch_duration_seconds";
/// `rns_dispatcher_messages_routed_total` (counter).
pub const DISPATCHER_MESSAGES_ROUTED_TOTAL: &str = "rns_dispatcher_messages_routed_total";
/// `rns_dispatcher_requests_total` (counter).
pub const DISPATCHER_REQUESTS_TOTAL: &str = "rns_dispatcher_requests_total";
