//! A customer's suspension as the operator's API shows it (the routes are in
//! [`crate::routes::suspension`], which says what a suspension does).
use rns_types::customer::Suspension;
use serde::Serialize;

/// A customer's suspension.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SuspensionView {
    pub reason: String,
    pub since: String,
}

impl From<&Suspension> for SuspensionView {
    fn from(suspension: &Suspension) -> Self {
        Self {
            reason: suspension.reason.clone(),
            since: rns_types::time::rfc3339(suspension.since_ms),
        }
    }
}
