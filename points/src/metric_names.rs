//! Every metric points records, named once: the names are the contract with the
//! dashboards (`deploy/grafana/`) and the README's table of metrics.

/// `rns_points_settle_failures_total` (counter).
pub const POINTS_SETTLE_FAILURES_TOTAL: &str = "rns_points_settle_failures_total";
/// `rns_points_settled_messages_total` (counter).
pub const POINTS_SETTLED_MESSAGES_TOTAL: &str = "rns_points_settled_messages_total";
/// `rns_points_unpublished_released_total` (counter): reservations whose request
/// was never published, released.
pub const POINTS_UNPUBLISHED_RELEASED_TOTAL: &str = "rns_points_unpublished_released_total";
