//! A circuit breaker per carrier.
//!
//! A carrier that is down should not make every message exhaust its retries there.
//! The breaker watches submit outcomes and opens when the carrier is failing:
//! `consecutive_failures` failures in a row, `consecutive_refusals` refused connections
//! in a row, or at least `window_failure_ratio` failures among at least
//! `window_minimum` outcomes of the current `window`. While open, nothing is
//! submitted: messages that were never tried on the carrier move on to the next
//! carrier at once, and the worker asks the carrier's health (the adapter's probe: an
//! HTTP health URL, a protocol's keep-alive) once per `probe_interval`, whatever the
//! traffic; the first good answer closes the circuit. The probe does not wait for a
//! message: the dispatcher routes around an open circuit, so none would come.
//!
//! What counts: a delivery or a permanent rejection shows the carrier working; a 5xx,
//! a refused connection or a timeout counts as a failure; a 429 counts as neither
//! (the carrier works, we are over our contracted rate). Time is passed in, so the
//! state machine is tested without sleeping.
use std::time::{Duration, Instant};

use rns_types::CircuitState;

use crate::outcome::{SubmitOutcome, TransientCause};

#[derive(Debug, Clone)]
pub struct BreakerPolicy {
    pub consecutive_failures: u32,
    pub consecutive_refusals: u32,
    pub window: Duration,
    pub window_minimum: u32,
    pub window_failure_ratio: f64,
    pub probe_interval: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            consecutive_refusals: 2,
            window: Duration::from_secs(10),
            window_minimum: 20,
            window_failure_ratio: 0.5,
            probe_interval: Duration::from_millis(500),
        }
    }
}

/// What the breaker makes of one outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    Success,
    Failure { refused: bool, reason: String },
    Neutral,
}

impl Observation {
    pub fn of(outcome: &SubmitOutcome) -> Self {
        match outcome {
            SubmitOutcome::Delivered { .. }
            | SubmitOutcome::Accepted { .. }
            | SubmitOutcome::Rejected { .. } => Observation::Success,
            SubmitOutcome::Throttled { .. } | SubmitOutcome::Expired { .. } => Observation::Neutral,
            SubmitOutcome::Transient { reason, cause } => Observation::Failure {
                refused: *cause == TransientCause::Unreachable,
                reason: reason.clone(),
            },
            SubmitOutcome::Ambiguous { reason } => Observation::Failure {
                refused: false,
                reason: reason.clone(),
            },
        }
    }
}

#[derive(Debug)]
pub struct CircuitBreaker {
    policy: BreakerPolicy,
    state: CircuitState,
    reason: String,
    consecutive_failures: u32,
    consecutive_refusals: u32,
    window_started: Instant,
    window_successes: u32,
    window_failures: u32,
}

impl CircuitBreaker {
    pub fn new(policy: BreakerPolicy, now: Instant) -> Self {
        Self {
            policy,
            state: CircuitState::Closed,
            reason: String::new(),
            consecutive_failures: 0,
            consecutive_refusals: 0,
            window_started: now,
            window_successes: 0,
            window_failures: 0,
        }
    }

    pub fn state(&self) -> CircuitState {
        self.state
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Whether messages may be submitted: the circuit is closed.
    pub fn admits(&self) -> bool {
        self.state == CircuitState::Closed
    }

    /// How often the recovery probe asks the carrier's health while open.
    pub fn probe_interval(&self) -> Duration {
        self.policy.probe_interval
    }

    /// Records an outcome; returns the new state when it changed.
    pub fn record(&mut self, observation: &Observation, now: Instant) -> Option<CircuitState> {
        if now.duration_since(self.window_started) >= self.policy.window {
            self.window_started = now;
            self.window_successes = 0;
            self.window_failures = 0;
        }
        match observation {
            Observation::Neutral => None,
            Observation::Success => {
                self.consecutive_failures = 0;
                self.consecutive_refusals = 0;
                self.window_successes += 1;
                self.transition(CircuitState::Closed, String::new())
            }
            Observation::Failure { refused, reason } => {
                self.consecutive_failures += 1;
                self.window_failures += 1;
                if *refused {
                    self.consecutive_refusals += 1;
                } else {
                    self.consecutive_refusals = 0;
                }
                if self.state == CircuitState::Open {
                    return None;
                }
                let outcomes = self.window_successes + self.window_failures;
                let failing = self.consecutive_failures >= self.policy.consecutive_failures
                    || self.consecutive_refusals >= self.policy.consecutive_refusals
                    || (outcomes >= self.policy.window_minimum
                        && f64::from(self.window_failures)
                            >= self.policy.window_failure_ratio * f64::from(outcomes));
                if failing {
                    self.transition(CircuitState::Open, reason.clone())
                } else {
                    None
                }
            }
        }
    }

    fn transition(&mut self, state: CircuitState, reason: String) -> Option<CircuitState> {
        if self.state == state {
            return None;
        }
        self.state = state;
        self.reason = reason;
        Some(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> Observation {
        Observation::Failure {
            refused: false,
            reason: "500 temporary_failure".into(),
        }
    }

    #[test]
    fn consecutive_failures_open_the_circuit_and_a_success_in_between_resets_them() {
        let start = Instant::now();
        let mut breaker = CircuitBreaker::new(BreakerPolicy::default(), start);
        for _ in 0..4 {
            assert_eq!(breaker.record(&failure(), start), None);
        }
        assert_eq!(breaker.record(&Observation::Success, start), None);
        for _ in 0..4 {
            assert_eq!(breaker.record(&failure(), start), None);
        }
        assert_eq!(breaker.record(&failure(), start), Some(CircuitState::Open));
        assert_eq!(breaker.reason(), "500 temporary_failure");
    }

    #[test]
    fn a_carrier_out_of_reach_counts_as_refused_by_its_cause_not_its_words() {
        let unreachable = SubmitOutcome::unreachable("no session is bound");
        let answered = SubmitOutcome::failed_for_now("connection failed: says the carrier's 503");
        assert!(matches!(
            Observation::of(&unreachable),
            Observation::Failure { refused: true, .. }
        ));
        assert!(matches!(
            Observation::of(&answered),
            Observation::Failure { refused: false, .. }
        ));
    }

    #[test]
    fn two_refused_connections_open_it_at_once() {
        let start = Instant::now();
        let mut breaker = CircuitBreaker::new(BreakerPolicy::default(), start);
        let refused = Observation::Failure {
            refused: true,
            reason: "connection failed: refused".into(),
        };
        assert_eq!(breaker.record(&refused, start), None);
        assert_eq!(breaker.record(&refused, start), Some(CircuitState::Open));
    }

    #[test]
    fn a_high_error_rate_opens_it_even_without_a_run_of_failures() {
        let start = Instant::now();
        let mut breaker = CircuitBreaker::new(BreakerPolicy::default(), start);
        let mut opened = None;
        for _ in 0..20 {
            breaker.record(&Observation::Success, start);
            opened = opened.or(breaker.record(&failure(), start));
        }
        assert_eq!(opened, Some(CircuitState::Open));
    }

    #[test]
    fn rate_limiting_is_not_a_carrier_failure() {
        let start = Instant::now();
        let mut breaker = CircuitBreaker::new(BreakerPolicy::default(), start);
        let limited = Observation::of(&SubmitOutcome::Throttled {
            reason: "429 rate_limited".into(),
            retry_after: None,
        });
        for _ in 0..100 {
            assert_eq!(breaker.record(&limited, start), None);
        }
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[test]
    fn an_open_circuit_admits_nothing_until_a_good_probe_closes_it() {
        let start = Instant::now();
        let mut breaker = CircuitBreaker::new(BreakerPolicy::default(), start);
        assert!(breaker.admits());
        for _ in 0..5 {
            breaker.record(&failure(), start);
        }
        assert!(!breaker.admits());
        assert_eq!(
            breaker.record(&failure(), start),
            None,
            "a failed probe keeps it open"
        );
        assert!(!breaker.admits());
        assert_eq!(
            breaker.record(&Observation::Success, start),
            Some(CircuitState::Closed)
        );
        assert!(breaker.admits());
    }
}
