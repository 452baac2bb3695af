//! Every metric carriers records, named once: the names are the contract with the
//! dashboards (`deploy/grafana/`) and the README's table of metrics.

/// `rns_carrier_circuit_state` (gauge).
pub const CARRIER_CIRCUIT_STATE: &str = "rns_carrier_circuit_state";
/// `rns_carrier_pacing_failures_total` (counter).
pub const CARRIER_PACING_FAILURES_TOTAL: &str = "rns_carrier_pacing_failures_total";
/// `rns_carrier_probes_total` (counter).
pub const CARRIER_PROBES_TOTAL: &str = "rns_carrier_probes_total";
/// `rns_carrier_results_gathered` (histogram).
pub const CARRIER_RESULTS_GATHERED: &str = "rns_carrier_results_gathered";
/// `rns_carrier_store_retries_total` (counter).
pub const CARRIER_STORE_RETRIES_TOTAL: &str = "rns_carrier_store_retries_total";
/// `rns_carrier_submit_duration_seconds` (histogram).
pub const CARRIER_SUBMIT_DURATION_SECONDS: &str = "rns_carrier_submit_duration_seconds";
/// `rns_carrier_submits_total` (counter).
pub const CARRIER_SUBMITS_TOTAL: &str = "rns_carrier_submits_total";
/// `rns_failover_swept_total` (counter).
pub const FAILOVER_SWEPT_TOTAL: &str = "rns_failover_swept_total";
/// `rns_failovers_total` (counter).
pub const FAILOVERS_TOTAL: &str = "rns_failovers_total";
/// `rns_receipts_received_total` (counter).
pub const RECEIPTS_RECEIVED_TOTAL: &str = "rns_receipts_received_total";
/// `rns_receipts_total` (counter).
pub const RECEIPTS_TOTAL: &str = "rns_receipts_total";
/// `rns_smpp_binds_total` (counter).
pub const SMPP_BINDS_TOTAL: &str = "rns_smpp_binds_total";
/// `rns_smpp_mobile_originated_total` (counter).
pub const SMPP_MOBILE_ORIGINATED_TOTAL: &str = "rns_smpp_mobile_originated_total";
