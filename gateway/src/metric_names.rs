//! Every metric gateway records, named once: the names are the contract with the
//! dashboards (`deploy/grafana/`) and the README's table of metrics.

/// `rns_gateway_messages_accepted_total` (counter).
pub const GATEWAY_MESSAGES_ACCEPTED_TOTAL: &str = "rns_gateway_messages_accepted_total";
/// `rns_gateway_publishes_unanswered_total` (counter): SEND publishes that got no
/// answer and were published again under their id.
pub const GATEWAY_PUBLISHES_UNANSWERED_TOTAL: &str = "rns_gateway_publishes_unanswered_total";
/// `rns_gateway_send_message_size` (histogram).
pub const GATEWAY_SEND_MESSAGE_SIZE: &str = "rns_gateway_send_message_size";
/// `rns_http_request_duration_seconds` (histogram).
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "rns_http_request_duration_seconds";
/// `rns_http_requests_total` (counter).
pub const HTTP_REQUESTS_TOTAL: &str = "rns_http_requests_total";
/// `rns_inbound_messages_total` (counter).
pub const INBOUND_MESSAGES_TOTAL: &str = "rns_inbound_messages_total";
