//! What a submit to a carrier can come to, and what each outcome does.
//!
//! | outcome | example | recorded | message |
//! |---|---|---|---|
//! | delivered | 200 `delivered` | `submitted`, `delivered` | ack |
//! | accepted | 200 `accepted` (a carrier that reports delivery later) | `submitted`; the receipt is awaited ([`crate::receipts`]) | ack |
//! | rejected (permanent) | 400 invalid number | `failed` with the reason | `+TERM <reason>` |
//! | throttled | 429, `ESME_RTHROTTLED` | nothing | waited out and submitted again, same carrier, no delivery counted |
//! | transient | 5xx, 408, connection refused | `attempt_failed` | nak with backoff, same carrier |
//! | ambiguous | timeout after the request was sent | `attempt_failed` | nak with backoff, same carrier and message id |
//! | expired | its validity ran out before a submit | `expired` (refunded) | `+TERM` |
//!
//! An ambiguous outcome is retried on the same carrier with the same client reference,
//! never on another carrier: the first attempt may have reached the handset, and only
//! that carrier can recognise the repeat. A carrier that cannot recognise repeats
//! (SMPP) is not asked again either: the message ends `unknown`.
//!
//! A throttled outcome is no failure: the carrier works and asks us to slow down. The
//! worker waits (the carrier's `Retry-After`, else a growing delay) and submits again
//! while holding the job, so it never counts towards failover or the circuit.
use std::time::Duration;

/// The result of one submit attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// The carrier took the message and reported it delivered.
    Delivered { carrier_reference: String },
    /// The carrier took the message and will report its delivery later, in a
    /// receipt naming `carrier_reference`; a message it took in several parts (SMPP)
    /// is its last part's, and each of `earlier_parts` has a receipt of its own.
    Accepted {
        carrier_reference: String,
        earlier_parts: Vec<String>,
    },
    /// The carrier refused the message for good.
    Rejected { reason: String },
    /// The carrier asked us to slow down; it did not take the message.
    Throttled {
        reason: String,
        /// When the carrier said to come back, if it said.
        retry_after: Option<Duration>,
    },
    /// The carrier could not take the message now; it did not take it.
    Transient {
        reason: String,
        cause: TransientCause,
    },
    /// The request may or may not have reached the carrier.
    Ambiguous { reason: String },
    /// Not submitted: the message's validity ran out first.
    Expired { reason: String },
}

/// Why a submit failed for now: the circuit breaker counts a carrier it cannot reach
/// faster than one that answers with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransientCause {
    /// Nothing reached the carrier: the connection was refused, no session is bound.
    Unreachable,
    /// The carrier answered that it cannot take the message now (5xx, 408, an SMPP
    /// error status), or RNS could not prepare it (its images unavailable).
    Failed,
}

impl SubmitOutcome {
    /// A submit that never reached the carrier.
    pub fn unreachable(reason: impl Into<String>) -> Self {
        SubmitOutcome::Transient {
            reason: reason.into(),
            cause: TransientCause::Unreachable,
        }
    }

    /// A submit the carrier could not take now.
    pub fn failed_for_now(reason: impl Into<String>) -> Self {
        SubmitOutcome::Transient {
            reason: reason.into(),
            cause: TransientCause::Failed,
        }
    }

    /// The outcome's name, as a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            SubmitOutcome::Delivered { .. } => "delivered",
            SubmitOutcome::Accepted { .. } => "accepted",
            SubmitOutcome::Rejected { .. } => "rejected",
            SubmitOutcome::Throttled { .. } => "throttled",
            SubmitOutcome::Transient { .. } => "transient",
            SubmitOutcome::Ambiguous { .. } => "ambiguous",
            SubmitOutcome::Expired { .. } => "expired",
        }
    }

    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SubmitOutcome::Throttled { .. }
                | SubmitOutcome::Transient { .. }
                | SubmitOutcome::Ambiguous { .. }
        )
    }
}
