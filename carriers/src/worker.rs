//! A carrier worker: pulls `carrier.<name>`, submits, records the outcome, then
//! acknowledges.
//!
//! The order is what makes a crash harmless: the outcome is published to RESULTS
//! (under an id naming message, hop and attempt, gathered with other jobs' outcomes
//! by [`crate::results`]) and acknowledged by JetStream before the job is acked,
//! termed or nak'ed. A crash in between redelivers the job as a new attempt: the
//! carrier recognises the repeated client reference (it does not deliver again), and
//! the attempt's events are recorded beside the first ones; readers of RESULTS settle
//! per message, so points and the final state are unchanged.
//!
//! A record that JetStream or its stores do not take (a node restarting, a leader
//! moving) is tried again with the job in hand ([`Worker::until_answered`]): an
//! outage costs time, never one of the job's deliveries.
//!
//! Retryable outcomes are nak'ed with a growing delay and retried on the same carrier.
//! After the last allowed delivery (`max_deliver`) the server's MaxDeliver advisory
//! hands the message to [`crate::failover`], which moves it to the next carrier; the
//! worker remembers the last reason (and whether any attempt was ambiguous) for it.
//! While the carrier's circuit is open ([`crate::circuit`]) messages move on without
//! a submit, and the worker probes the carrier's health every interval until a good
//! answer closes it ([`Worker::recover`]).
//!
//! A batch message (the dispatcher's jobs of one request for this carrier, see
//! [`CarrierPayload`]) is submitted once, together, on its first delivery; its final
//! outcomes are recorded like single jobs' and every other job is queued on its own
//! to go on as above ([`Worker::handle_batch`]). Permits bound the jobs in flight,
//! batches counting each of their jobs.
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::MessagesError;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message};
use futures::future::join_all;
use futures::FutureExt;
use futures::StreamExt;
use rns_nats::{terminate_with_reason, HealthStore};
use rns_types::subjects::message_ids;
use rns_types::wire::{CarrierJob, CarrierPayload, EventKind, MessageEvent};
use rns_types::{CarrierId, CircuitRecord, CircuitState, Priority};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::circuit::{CircuitBreaker, Observation};
use crate::failover::{Failover, FailoverError, SubmitClaim};
use crate::http::{HttpCarrier, Submitter};
use crate::images::{ImageError, ImageStore};
use crate::outcome::SubmitOutcome;
use crate::pacing::Pacer;
use crate::receipts::{ReceiptError, Receipts};
use crate::results::ResultSink;

/// Most bytes of jobs pulled ahead of the workers (a batch message carries up to
/// 256 KiB of jobs, so the message count alone does not bound memory).
const PULL_BYTES: usize = 4 << 20;

/// Waits for the carrier at least this long reset the held job's ack wait first.
const HOLD_PROGRESS_AFTER: Duration = Duration::from_millis(500);
/// While a job waits for a rate slot, its ack wait is reset this often.
const HOLD_PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// The wait after the `throttled`-th throttle answer in a row without a
/// `Retry-After`: 100 ms doubling to 2 s, with up to a quarter more at random so
/// held jobs do not come back together.
fn throttle_backoff(throttled: u32) -> Duration {
    let base = Duration::from_millis(100)
        .saturating_mul(1 << throttled.saturating_sub(1).min(5))
        .min(Duration::from_secs(2));
    let jitter = rand::random_range(0..=base.as_millis() as u64 / 4);
    base + Duration::from_millis(jitter)
}

/// Recording an outcome failed; the job is redelivered.
#[derive(Debug, thiserror::Error)]
enum SettleError {
    #[error("{0}")]
    Failover(#[from] FailoverError),
    #[error("{0}")]
    Results(#[from] rns_nats::PublishFailed),
    #[error("receipts: {0}")]
    Receipts(#[from] ReceiptError),
}

/// How one carrier's worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerPolicy {
    /// Jobs in flight at once (a batch message counts each of its jobs).
    pub concurrency: usize,
    /// Deliveries before a retryable failure becomes final (the consumer's MaxDeliver).
    pub max_deliver: u16,
    /// Nak delays by attempt; the last one repeats.
    pub retry_backoff: Vec<Duration>,
    /// The lanes' ack wait: a job still in hand after a third of it is kept from
    /// redelivery by progress acknowledgements, so a slow carrier never gets a
    /// job handed to a second worker while the first still submits it.
    pub ack_wait: Duration,
}

impl WorkerPolicy {
    /// Jobs in flight at once in `priority`'s lane: the carrier's concurrency for
    /// normal and bulk, which share it, and a quarter of it more (at least 4) of its
    /// own for high, which carries little.
    pub fn lane_concurrency(&self, priority: Priority) -> usize {
        let concurrency = self.concurrency.max(1);
        match priority {
            Priority::High => (concurrency / 4).max(4),
            Priority::Normal | Priority::Bulk => concurrency,
        }
    }

    fn backoff(&self, attempt: u16) -> Duration {
        let index =
            usize::from(attempt.saturating_sub(1)).min(self.retry_backoff.len().saturating_sub(1));
        self.retry_backoff
            .get(index)
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

/// One delivery of a single job, as its handling passes it on.
#[derive(Clone, Copy)]
struct Delivery<'a> {
    message: &'a Message,
    job: &'a CarrierJob,
    /// The attempt on this hop it is.
    attempt: u16,
    /// The server's count of deliveries of its message.
    delivered: u16,
}

/// A pulled message with the permits of its jobs, held until it is handled.
struct Taken {
    message: Message,
    payload: CarrierPayload,
    /// Its stream sequence, in [`Worker::in_hand`] until it is handled.
    sequence: Option<u64>,
    _permits: OwnedSemaphorePermit,
}

pub struct Worker {
    pub carrier: CarrierId,
    pub submitter: Submitter,
    pub client: async_nats::Client,
    pub policy: WorkerPolicy,
    pub breaker: Mutex<CircuitBreaker>,
    pub health: HealthStore,
    pub failover: Failover,
    pub images: ImageStore,
    pub results: ResultSink,
    /// The carrier's shared rate budget.
    pub pacer: Pacer,
    /// Where messages the carrier accepted await their receipts.
    pub receipts: Receipts,
    /// Taken while the circuit's state is published, so publishes of quick
    /// transitions cannot land out of order and leave a state that is over.
    pub circuit_publishing: tokio::sync::Mutex<()>,
    /// Stream sequences of the jobs this worker holds, waiting for permits or in
    /// hand.
    pub in_hand: Mutex<HashSet<u64>>,
}

impl Worker {
    /// Works the carrier's lanes (a consumer per [`Priority`]) until `shutdown`;
    /// submits in flight finish first.
    pub async fn run(
        self,
        lanes: Vec<(Priority, PullConsumer)>,
        shutdown: CancellationToken,
    ) -> Result<(), async_nats::Error> {
        let worker = &self;
        let mut pulls = Vec::with_capacity(lanes.len());
        for (priority, consumer) in lanes {
            let concurrency = self.policy.lane_concurrency(priority);
            let messages = consumer
                .stream()
                .max_messages_per_batch(concurrency)
                .max_bytes_per_batch(PULL_BYTES)
                .heartbeat(Duration::from_secs(5))
                .messages()
                .await?;
            pulls.push((priority, messages, concurrency));
        }
        // Normal and bulk share the carrier's permits; high has its own, so a
        // campaign never holds the permits a one-time password needs.
        let shared = Arc::new(Semaphore::new(self.policy.concurrency.max(1)));
        tracing::info!(carrier = %self.carrier, concurrency = self.policy.concurrency, "carrier worker started");
        self.publish_circuit().await;
        let work = pulls.into_iter().map(|(priority, messages, concurrency)| {
            let in_flight = match priority {
                Priority::High => Arc::new(Semaphore::new(concurrency)),
                Priority::Normal | Priority::Bulk => shared.clone(),
            };
            worker.work_lane(messages, in_flight, concurrency, &shutdown)
        });
        // The probe stops at shutdown; the work finishes what it holds.
        tokio::join!(join_all(work), worker.recover(&shutdown));
        tracing::info!(carrier = %self.carrier, "carrier worker stopped");
        Ok(())
    }

    /// Works one lane until `shutdown`. Its messages are taken one after another, each
    /// once its jobs have permits of `in_flight` (at most `concurrency` for one
    /// message), and then handled concurrently: the permits bound what is in flight,
    /// and what waits stays in the pull's bounded buffer as bytes.
    async fn work_lane(
        &self,
        messages: async_nats::jetstream::consumer::pull::Stream,
        in_flight: Arc<Semaphore>,
        concurrency: usize,
        shutdown: &CancellationToken,
    ) {
        messages
            .take_until(shutdown.cancelled())
            .then(|message| self.take(message, in_flight.clone(), concurrency))
            .for_each_concurrent(None, |taken| async move {
                if let Some(taken) = taken {
                    self.handle(taken, shutdown).await;
                }
            })
            .await;
    }

    /// Decodes a pulled message and waits for a permit per job (a batch larger than
    /// the concurrency takes them all). An undecodable message is terminated.
    async fn take(
        &self,
        message: Result<Message, MessagesError>,
        in_flight: Arc<Semaphore>,
        lane_concurrency: usize,
    ) -> Option<Taken> {
        let message = message
            .map_err(|error| tracing::warn!(carrier = %self.carrier, %error, "pull failed"))
            .ok()?;
        let payload = match CarrierPayload::decode(&message.payload) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(carrier = %self.carrier, %error, "undecodable job; terminating it");
                let _ = terminate_with_reason(
                    &self.client,
                    &message,
                    &format!("undecodable job: {error}"),
                )
                .await;
                return None;
            }
        };
        // A copy the server handed out again while this process still holds the
        // first (waiting for permits, or in hand) is left to that first copy.
        let sequence = message.info().map(|info| info.stream_sequence).ok();
        if let Some(sequence) = sequence {
            if !self.lock_in_hand().insert(sequence) {
                tracing::debug!(carrier = %self.carrier, sequence, "a job handed out again while still in hand; left to the first copy");
                return None;
            }
        }
        let permits = u32::try_from(payload.job_count().clamp(1, lane_concurrency)).unwrap_or(1);
        let permits = self
            .keep_in_hand(&message, in_flight.acquire_many_owned(permits))
            .await;
        let Ok(permits) = permits else {
            if let Some(sequence) = sequence {
                self.lock_in_hand().remove(&sequence);
            }
            return None;
        };
        Some(Taken {
            message,
            payload,
            sequence,
            _permits: permits,
        })
    }

    fn lock_in_hand(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.in_hand
            .lock()
            .expect("the in-hand set's lock is never poisoned")
    }

    async fn handle(&self, taken: Taken, shutdown: &CancellationToken) {
        let Taken {
            message,
            payload,
            sequence,
            ..
        } = taken;
        let delivered = message
            .info()
            .map(|info| u16::try_from(info.delivered).unwrap_or(u16::MAX))
            .unwrap_or(1);
        let held = message.clone();
        let work = async move {
            match payload {
                CarrierPayload::One(job) => {
                    self.handle_job(message, *job, delivered, shutdown).await
                }
                CarrierPayload::Batch(jobs) => {
                    self.handle_batch(message, jobs, delivered, shutdown).await
                }
            }
        };
        self.keep_in_hand(&held, work).await;
        if let Some(sequence) = sequence {
            self.lock_in_hand().remove(&sequence);
        }
    }

    /// Runs `work` on `held`, telling the server every third of the ack wait that it
    /// is in progress: a job is redelivered only when its worker is gone, never while
    /// a slow carrier (a full SMPP window, a rebind) keeps it busy — a second worker
    /// would take that submit for one that may have reached the carrier.
    async fn keep_in_hand<T>(
        &self,
        held: &Message,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let every = (self.policy.ack_wait / 3).max(Duration::from_millis(100));
        tokio::pin!(work);
        loop {
            match tokio::time::timeout(every, &mut work).await {
                Ok(done) => return done,
                Err(_) => {
                    if let Err(error) = held.ack_with(AckKind::Progress).await {
                        tracing::debug!(carrier = %self.carrier, %error, "telling the server a job is in progress failed");
                    }
                }
            }
        }
    }

    /// A batch from the dispatcher, on its first delivery: submitted once, together.
    /// Final outcomes (delivered, rejected) are recorded as attempt 1 of their jobs;
    /// a job whose outcome is not final has its attempt recorded as a single job's
    /// would be and is queued on its own (`attempts_before: 1`), to be retried, moved
    /// on or fall back like any single job; then the batch is acked. Recording is
    /// tried until JetStream answers, the batch in hand; a batch redelivered (its
    /// worker was gone, or gave it back while stopping) is split without a submit:
    /// an earlier delivery may have submitted any of its jobs, so each goes on alone
    /// with attempt 1's outcome unknown (which keeps it on this carrier); at a carrier
    /// that cannot recognise a repeated submit (SMPP), where such a job then ends
    /// `unknown`, a job already accepted and awaiting its receipt is left to it.
    async fn handle_batch(
        &self,
        message: Message,
        jobs: Vec<CarrierJob>,
        delivered: u16,
        shutdown: &CancellationToken,
    ) {
        let handled = if delivered > 1 {
            self.until_answered("splitting a redelivered batch", shutdown, || {
                self.split_redelivered(&jobs)
            })
            .await
        } else if !self.lock_breaker().admits() {
            // Not submitted: each job goes on alone as a fresh one (and moves on).
            self.until_answered("splitting a batch", shutdown, || {
                self.failover.split(&jobs, 0)
            })
            .await
        } else {
            let delivery = delivery_of(&message);
            let claimed = self
                .until_answered("claiming the submits", shutdown, || {
                    self.claim_submits(&jobs, &delivery)
                })
                .await;
            match claimed {
                Some(jobs) => {
                    let submits = jobs.iter().map(|job| self.submit(job, &message, shutdown));
                    let outcomes = join_all(submits).await;
                    self.until_answered("settling a batch", shutdown, || {
                        self.settle_batch(&jobs, &outcomes)
                    })
                    .await
                }
                None => None,
            }
        };
        match handled {
            Some(()) => {
                tracing::debug!(carrier = %self.carrier, delivery = %delivery_of(&message), jobs = jobs.len(), "batch handled; acknowledging it");
                if let Err(error) = message.ack().await {
                    tracing::warn!(carrier = %self.carrier, %error, "acknowledging a batch failed; it will be redelivered and split");
                }
            }
            None => self.give_back(&message, delivered).await,
        }
    }

    /// The jobs of a batch this `delivery` may submit: all of them at a carrier that
    /// recognises a repeat; elsewhere those whose submit it claimed first
    /// ([`Failover::claim_submit`]; a job a later delivery or another copy claimed is
    /// its to submit).
    async fn claim_submits(
        &self,
        jobs: &[CarrierJob],
        delivery: &str,
    ) -> Result<Vec<CarrierJob>, FailoverError> {
        if self.submitter.recognises_repeats() {
            return Ok(jobs.to_vec());
        }
        let claims = jobs.iter().map(|job| {
            self.failover
                .claim_submit(&job.message_id, job.hop, 1, delivery)
        });
        let claimed = futures::future::try_join_all(claims).await?;
        Ok(jobs
            .iter()
            .zip(claimed)
            .filter(|(job, claimed)| {
                if *claimed == SubmitClaim::Copy {
                    tracing::warn!(carrier = %self.carrier, message = %job.message_id, "a second copy of a job in a batch; left to the copy that claimed it");
                }
                *claimed == SubmitClaim::Mine
            })
            .map(|(job, _)| job.clone())
            .collect())
    }

    async fn settle_batch(
        &self,
        jobs: &[CarrierJob],
        outcomes: &[SubmitOutcome],
    ) -> Result<(), SettleError> {
        const ATTEMPT: u16 = 1;
        let mut again = Vec::new();
        let mut records = Vec::with_capacity(jobs.len());
        for (job, outcome) in jobs.iter().zip(outcomes) {
            match outcome {
                SubmitOutcome::Ambiguous { reason } if !self.submitter.recognises_repeats() => {
                    self.failover
                        .give_up_unknown(job, self.unrepeatable(reason), ATTEMPT)
                        .await?;
                    continue;
                }
                SubmitOutcome::Ambiguous { reason }
                | SubmitOutcome::Transient { reason, .. }
                | SubmitOutcome::Throttled { reason, .. } => {
                    let ambiguous = matches!(outcome, SubmitOutcome::Ambiguous { .. });
                    self.failover
                        .record_attempt(&job.message_id, job.hop, ATTEMPT, reason, ambiguous)
                        .await?;
                    again.push(job.clone());
                }
                SubmitOutcome::Rejected { reason } if job.fallback.is_some() => {
                    let reason = format!("{}: {reason}", self.carrier);
                    self.failover.fall_back(job, &reason, ATTEMPT).await?;
                    continue;
                }
                SubmitOutcome::Delivered { .. }
                | SubmitOutcome::Accepted { .. }
                | SubmitOutcome::Rejected { .. }
                | SubmitOutcome::Expired { .. } => {}
            }
            records.push(self.results.record(
                &job.customer_id,
                message_ids::outcome(&job.message_id, job.hop, ATTEMPT),
                self.events(job, ATTEMPT, outcome),
            ));
        }
        futures::future::try_join_all(records).await?;
        for (job, outcome) in jobs.iter().zip(outcomes) {
            self.log_recorded(job, ATTEMPT, outcome);
        }
        let awaited = jobs
            .iter()
            .zip(outcomes)
            .filter_map(|(job, outcome)| match outcome {
                SubmitOutcome::Accepted {
                    carrier_reference,
                    earlier_parts,
                } => Some(self.receipts.await_receipt(
                    job,
                    ATTEMPT,
                    carrier_reference,
                    earlier_parts,
                )),
                _ => None,
            });
        futures::future::try_join_all(awaited).await?;
        if !again.is_empty() {
            self.failover.split(&again, ATTEMPT).await?;
        }
        Ok(())
    }

    /// The line that follows a message through this carrier (by its trace id).
    fn log_recorded(&self, job: &CarrierJob, attempt: u16, outcome: &SubmitOutcome) {
        tracing::debug!(
            trace_id = job.trace.map(|trace| trace.trace_id()).unwrap_or_default(),
            carrier = %self.carrier,
            message = %job.message_id,
            attempt,
            outcome = outcome.label(),
            "outcome recorded"
        );
    }

    /// Submits one job (its images loaded first) in a slot of the carrier's rate
    /// budget, and lets the circuit breaker see the outcome. A throttled submit is
    /// waited out and made again, `held` (the job's message) kept from redelivery
    /// meanwhile, until the carrier takes or refuses it or `shutdown` comes (then the
    /// throttled outcome is returned and the job retried later like a transient one).
    async fn submit(
        &self,
        job: &CarrierJob,
        held: &Message,
        shutdown: &CancellationToken,
    ) -> SubmitOutcome {
        let request = match self.images.load(&job.images).await {
            Ok(images) => HttpCarrier::request(job, images),
            Err(ImageError::Missing(reason)) => return SubmitOutcome::Rejected { reason },
            // Never reached the carrier: a definite, retryable failure.
            Err(ImageError::Unavailable(reason)) => return SubmitOutcome::failed_for_now(reason),
        };
        let mut throttled: u32 = 0;
        loop {
            if !self.pace(job.priority, held, shutdown).await {
                return SubmitOutcome::Throttled {
                    reason: "stopping while waiting for the carrier's rate".to_owned(),
                    retry_after: None,
                };
            }
            if job.has_expired(rns_types::time::now_milliseconds()) {
                return SubmitOutcome::Expired {
                    reason: expired_reason(job),
                };
            }
            let started = Instant::now();
            let outcome = self.submitter.submit(request.clone()).await;
            let carrier = self.carrier.to_string();
            metrics::histogram!(crate::metric_names::CARRIER_SUBMIT_DURATION_SECONDS, "carrier" => carrier.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!(crate::metric_names::CARRIER_SUBMITS_TOTAL, "carrier" => carrier, "outcome" => outcome.label())
                .increment(1);
            self.observe(&outcome).await;
            let SubmitOutcome::Throttled { retry_after, .. } = &outcome else {
                return outcome;
            };
            throttled += 1;
            let delay = retry_after.unwrap_or_else(|| throttle_backoff(throttled));
            if !self.hold(held, delay, shutdown).await {
                return outcome;
            }
        }
    }

    /// Waits for the carrier's next rate slot of `priority`'s lane (none to wait for
    /// without a rate), keeping `held` from redelivery meanwhile. False when
    /// `shutdown` came first.
    async fn pace(&self, priority: Priority, held: &Message, shutdown: &CancellationToken) -> bool {
        let acquired = self.pacer.acquire(priority);
        tokio::pin!(acquired);
        // An unpaced carrier's turn is ready at once: no timer on the hot path.
        if let Some(turn) = acquired.as_mut().now_or_never() {
            self.note_pacing(turn);
            return true;
        }
        let mut progress = tokio::time::interval_at(
            tokio::time::Instant::now() + HOLD_PROGRESS_EVERY,
            HOLD_PROGRESS_EVERY,
        );
        loop {
            tokio::select! {
                turn = &mut acquired => {
                    self.note_pacing(turn);
                    return true;
                }
                () = shutdown.cancelled() => return false,
                _ = progress.tick() => {
                    if let Err(error) = held.ack_with(AckKind::Progress).await {
                        tracing::debug!(carrier = %self.carrier, %error, "extending a held job's ack wait failed");
                    }
                }
            }
        }
    }

    /// For a carrier that cannot recognise a repeated submit (SMPP): whether delivery
    /// `attempt` may submit the job, because no earlier one may have reached the
    /// carrier — each failed for sure or never claimed the submit, and none on an
    /// earlier hop went unanswered ([`crate::failover::AttemptRecord::may_submit_again`]).
    async fn may_submit_again(
        &self,
        job: &CarrierJob,
        attempt: u16,
    ) -> Result<bool, FailoverError> {
        if job.ambiguous_since_ms.is_some() {
            return Ok(false);
        }
        if attempt <= 1 {
            return Ok(true);
        }
        let earlier = self
            .failover
            .attempts(&job.message_id, job.hop, attempt - 1)
            .await?;
        Ok(earlier.may_submit_again(job))
    }

    /// Why a message ends `unknown` at a carrier that cannot recognise a repeat.
    fn unrepeatable(&self, reason: &str) -> String {
        format!(
            "{}: {reason}; the protocol cannot recognise a repeated submit, so it is not sent again (the handset may or may not have it)",
            self.carrier
        )
    }

    /// Counts and logs a turn given without the shared budget (Redis was away).
    fn note_pacing(&self, turn: Result<(), crate::pacing::PacingFailed>) {
        if let Err(error) = turn {
            metrics::counter!(crate::metric_names::CARRIER_PACING_FAILURES_TOTAL, "carrier" => self.carrier.to_string())
                .increment(1);
            tracing::warn!(carrier = %self.carrier, %error, "submitting unpaced");
        }
    }

    /// Keeps `held` from redelivery for `delay`; false when `shutdown` came first.
    async fn hold(&self, held: &Message, delay: Duration, shutdown: &CancellationToken) -> bool {
        if delay >= HOLD_PROGRESS_AFTER {
            // Resets the ack wait, so a long wait for the carrier never redelivers it.
            if let Err(error) = held.ack_with(AckKind::Progress).await {
                tracing::debug!(carrier = %self.carrier, %error, "extending a held job's ack wait failed");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }

    /// Jobs of a redelivered batch whose receipts are asked about at once.
    const RESUMES_AT_ONCE: usize = 16;

    /// Splits a redelivered batch: each job goes on alone with attempt 1's outcome
    /// unknown — but at a carrier that cannot recognise a repeat, a job that was
    /// accepted is left to its receipt, what the earlier delivery left undone of
    /// awaiting it done now ([`Receipts::resume`]; asked now, not once the split
    /// job's turn comes, which may be after its deadline).
    async fn split_redelivered(&self, jobs: &[CarrierJob]) -> Result<(), SettleError> {
        let unrepeatable = !self.submitter.recognises_repeats();
        let mut unsettled = Vec::with_capacity(jobs.len());
        if unrepeatable {
            // The jobs' receipts are independent: asked about together (a few
            // reads each), in order, so a long batch does not outlast its ack wait.
            for chunk in jobs.chunks(Self::RESUMES_AT_ONCE) {
                let resumed = join_all(chunk.iter().map(|job| self.receipts.resume(job))).await;
                for (job, resumed) in chunk.iter().zip(resumed) {
                    if !resumed? {
                        unsettled.push(job.clone());
                    }
                }
            }
        } else {
            unsettled.extend(jobs.iter().cloned());
        }
        tracing::info!(
            carrier = %self.carrier,
            jobs = jobs.len(),
            queued_alone = ?unsettled.iter().map(|job| job.message_id.to_string()).collect::<Vec<_>>(),
            "a redelivered batch is split"
        );
        Ok(self.failover.split(&unsettled, 1).await?)
    }

    /// One job: delivery `delivered` of its message, attempt `attempts_before +
    /// delivered` on this hop.
    async fn handle_job(
        &self,
        message: Message,
        job: CarrierJob,
        delivered: u16,
        shutdown: &CancellationToken,
    ) {
        let attempt = delivered.saturating_add(job.attempts_before);
        let last_attempt = delivered >= self.policy.max_deliver;
        if delivered > 1 {
            let left = self
                .until_answered("telling whether the job moved on", shutdown, || {
                    self.failover.has_left(&job)
                })
                .await;
            match left {
                Some(false) => {}
                Some(true) => {
                    // Moving on was decided; finish it (every publish repeats under
                    // the same ids), then take the job off this carrier.
                    let reason = "moving on was decided before a restart";
                    let moved = self
                        .until_answered("finishing a move", shutdown, || {
                            self.failover.move_on(&job, reason, attempt)
                        })
                        .await;
                    match moved {
                        Some(()) => self.terminate(&message, reason).await,
                        None => self.give_back(&message, delivered).await,
                    }
                    return;
                }
                None => return self.give_back(&message, delivered).await,
            }
        }
        let delivery = Delivery {
            message: &message,
            job: &job,
            attempt,
            delivered,
        };
        if !self.submitter.recognises_repeats() {
            let may_submit = self
                .until_answered(
                    "telling whether an earlier submit reached the carrier",
                    shutdown,
                    || self.may_submit_again(&job, attempt),
                )
                .await;
            match may_submit {
                Some(true) => {}
                Some(false) => return self.leave_unrepeated(delivery, shutdown).await,
                None => return self.give_back(&message, delivered).await,
            }
        }
        if job.has_expired(rns_types::time::now_milliseconds()) {
            self.expire(delivery, shutdown).await;
            return;
        }
        if !self.lock_breaker().admits() {
            self.move_on_while_open(delivery, shutdown).await;
            return;
        }
        if !self.submitter.recognises_repeats() {
            let delivery = delivery_of(&message);
            let claimed = self
                .until_answered("claiming the submit", shutdown, || {
                    self.failover
                        .claim_submit(&job.message_id, job.hop, attempt, &delivery)
                })
                .await;
            match claimed {
                Some(SubmitClaim::Mine) => {}
                Some(SubmitClaim::Later) => {
                    // A later delivery (of a worker that took it over) submits it.
                    tracing::debug!(carrier = %self.carrier, message = %job.message_id, attempt, "a later delivery claimed the submit; leaving it");
                    return;
                }
                Some(SubmitClaim::Copy) => {
                    let reason = "a second copy of a job whose first copy submits it";
                    tracing::warn!(carrier = %self.carrier, message = %job.message_id, attempt, reason);
                    return self.terminate(&message, reason).await;
                }
                None => return self.give_back(&message, delivered).await,
            }
        }
        let outcome = self.submit(&job, &message, shutdown).await;
        let settled = self
            .until_answered("recording the outcome", shutdown, || {
                self.settle(&message, &job, attempt, last_attempt, &outcome)
            })
            .await;
        if settled.is_none() {
            self.give_back(&message, delivered).await;
        }
    }

    /// A job that may not be submitted again (SMPP, an earlier delivery may have
    /// reached the carrier): acked if that delivery was accepted and awaits its
    /// receipt, which settles it; otherwise ended `unknown`.
    async fn leave_unrepeated(&self, delivery: Delivery<'_>, shutdown: &CancellationToken) {
        let awaits = self
            .until_answered(
                "telling whether an earlier submit was accepted",
                shutdown,
                || self.receipts.resume(delivery.job),
            )
            .await;
        match awaits {
            Some(true) => {
                if let Err(error) = delivery.message.ack().await {
                    tracing::warn!(carrier = %self.carrier, %error, "acknowledgement failed");
                }
            }
            Some(false) => {
                let detail = self.unrepeatable("an earlier submit may have reached it");
                let ended = self
                    .until_answered("ending an unrepeatable job", shutdown, || {
                        self.failover.give_up_unknown(
                            delivery.job,
                            detail.clone(),
                            delivery.attempt,
                        )
                    })
                    .await;
                match ended {
                    Some(()) => self.terminate(delivery.message, &detail).await,
                    None => self.give_back(delivery.message, delivery.delivered).await,
                }
            }
            None => self.give_back(delivery.message, delivery.delivered).await,
        }
    }

    /// Makes `step` — reads and records in JetStream and its stores, each safe to
    /// repeat — until it is answered, keeping the job in hand meanwhile
    /// ([`Self::keep_in_hand`]): a node restarting or a leader moving costs the job
    /// time, not deliveries. Spending them would reach MaxDeliver within seconds of
    /// such an outage, and its advisory is published into a stream the same outage
    /// can make unavailable. None when `shutdown` came first: the caller gives the job
    /// back ([`Self::give_back`]).
    async fn until_answered<T, E, F>(
        &self,
        what: &str,
        shutdown: &CancellationToken,
        mut step: impl FnMut() -> F,
    ) -> Option<T>
    where
        E: std::fmt::Display,
        F: std::future::Future<Output = Result<T, E>>,
    {
        let mut failures: u32 = 0;
        loop {
            let error = match step().await {
                Ok(answered) => return Some(answered),
                Err(error) => error,
            };
            failures += 1;
            metrics::counter!(crate::metric_names::CARRIER_STORE_RETRIES_TOTAL, "carrier" => self.carrier.to_string())
                .increment(1);
            tracing::warn!(carrier = %self.carrier, %error, failures, "{what} failed; trying again with the job in hand");
            if shutdown.is_cancelled() {
                return None;
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(retry_in_hand(failures)) => {}
            }
        }
    }

    /// Gives the job back for redelivery after [`retry_when_unavailable`]: this
    /// process is stopping while JetStream or its stores do not answer.
    async fn give_back(&self, message: &Message, delivered: u16) {
        if let Err(error) = message
            .ack_with(AckKind::Nak(Some(retry_when_unavailable(delivered))))
            .await
        {
            tracing::warn!(carrier = %self.carrier, %error, "giving a job back failed; it is redelivered after its ack wait");
        }
    }

    /// Takes a job off the queue for good, with `reason`.
    async fn terminate(&self, message: &Message, reason: &str) {
        if let Err(error) = terminate_with_reason(&self.client, message, reason).await {
            tracing::warn!(carrier = %self.carrier, %error, "terminating a job failed; its redelivery finishes it");
        }
    }

    /// Records the outcome, then acks, terminates or naks the job.
    async fn settle(
        &self,
        message: &Message,
        job: &CarrierJob,
        attempt: u16,
        last_attempt: bool,
        outcome: &SubmitOutcome,
    ) -> Result<(), SettleError> {
        match outcome {
            SubmitOutcome::Ambiguous { reason } if !self.submitter.recognises_repeats() => {
                let detail = self.unrepeatable(reason);
                self.failover
                    .give_up_unknown(job, detail.clone(), attempt)
                    .await?;
                self.terminate(message, &detail).await;
                return Ok(());
            }
            SubmitOutcome::Ambiguous { reason } => {
                self.failover
                    .record_attempt(&job.message_id, job.hop, attempt, reason, true)
                    .await?
            }
            SubmitOutcome::Transient { reason, .. } | SubmitOutcome::Throttled { reason, .. } => {
                self.failover
                    .record_attempt(&job.message_id, job.hop, attempt, reason, false)
                    .await?
            }
            SubmitOutcome::Rejected { reason } if job.fallback.is_some() => {
                let reason = format!("{}: {reason}", self.carrier);
                self.failover.fall_back(job, &reason, attempt).await?;
                self.terminate(message, &reason).await;
                return Ok(());
            }
            SubmitOutcome::Delivered { .. }
            | SubmitOutcome::Accepted { .. }
            | SubmitOutcome::Rejected { .. }
            | SubmitOutcome::Expired { .. } => {}
        }
        self.results
            .record(
                &job.customer_id,
                message_ids::outcome(&job.message_id, job.hop, attempt),
                self.events(job, attempt, outcome),
            )
            .await?;
        self.log_recorded(job, attempt, outcome);
        if let SubmitOutcome::Accepted {
            carrier_reference,
            earlier_parts,
        } = outcome
        {
            self.receipts
                .await_receipt(job, attempt, carrier_reference, earlier_parts)
                .await?;
        }
        let acknowledged = match outcome {
            SubmitOutcome::Delivered { .. } | SubmitOutcome::Accepted { .. } => message.ack().await,
            SubmitOutcome::Rejected { reason } | SubmitOutcome::Expired { reason } => {
                terminate_with_reason(&self.client, message, reason)
                    .await
                    .map_err(Into::into)
            }
            // The last nak is immediate: the server then emits the MaxDeliver advisory
            // that fails the message over.
            _ if last_attempt => message.ack_with(AckKind::Nak(None)).await,
            _ => {
                message
                    .ack_with(AckKind::Nak(Some(self.policy.backoff(attempt))))
                    .await
            }
        };
        if let Err(error) = acknowledged {
            tracing::warn!(carrier = %self.carrier, message = %job.message_id, %error, "acknowledgement failed; job will be redelivered");
        }
        Ok(())
    }

    /// The circuit is open. The message moves to the next carrier now if every
    /// earlier delivery here failed for sure (for a first delivery there is none) and
    /// none on an earlier hop here went unanswered; if any may have reached the
    /// carrier, it waits for the carrier instead, since another carrier could deliver
    /// it twice.
    async fn move_on_while_open(&self, delivery: Delivery<'_>, shutdown: &CancellationToken) {
        let reason = format!("circuit open: {}", self.lock_breaker().reason());
        let earlier = self
            .until_answered("reading the earlier attempts", shutdown, || {
                self.failover.attempts(
                    &delivery.job.message_id,
                    delivery.job.hop,
                    delivery.attempt.saturating_sub(1),
                )
            })
            .await;
        let Some(earlier) = earlier else {
            return self.give_back(delivery.message, delivery.delivered).await;
        };
        if !earlier.may_leave(delivery.job) {
            // Not submitted this time: a definite failure of this delivery.
            let recorded = self
                .failover
                .record_attempt(
                    &delivery.job.message_id,
                    delivery.job.hop,
                    delivery.attempt,
                    &reason,
                    false,
                )
                .await;
            let delay = self.policy.backoff(delivery.attempt);
            let _ = delivery.message.ack_with(AckKind::Nak(Some(delay))).await;
            if let Err(error) = recorded {
                tracing::warn!(carrier = %self.carrier, %error, "recording a refused delivery failed");
            }
            return;
        }
        let moved = self
            .until_answered("moving on", shutdown, || {
                self.failover
                    .move_on(delivery.job, &reason, delivery.attempt)
            })
            .await;
        match moved {
            Some(()) => self.terminate(delivery.message, &reason).await,
            None => self.give_back(delivery.message, delivery.delivered).await,
        }
    }

    /// Ends a job whose validity ran out before it was submitted: `expired`,
    /// refunded, then taken off the queue.
    async fn expire(&self, delivery: Delivery<'_>, shutdown: &CancellationToken) {
        let expired = self
            .until_answered("recording an expiry", shutdown, || {
                self.failover.expire(delivery.job, delivery.attempt)
            })
            .await;
        match expired {
            Some(()) => {
                self.terminate(delivery.message, &expired_reason(delivery.job))
                    .await
            }
            None => self.give_back(delivery.message, delivery.delivered).await,
        }
    }

    /// The recovery probe: while the circuit is open, asks the carrier's health once
    /// per probe interval, whatever the traffic, and lets the breaker see each answer;
    /// a good one closes the circuit, which the dispatcher sees at once through the
    /// `carrier_health` bucket. Runs until `shutdown`.
    async fn recover(&self, shutdown: &CancellationToken) {
        let mut ticks = tokio::time::interval(self.lock_breaker().probe_interval());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if self.lock_breaker().admits() {
                continue;
            }
            let observation = match self.submitter.probe().await {
                Ok(()) => Observation::Success,
                Err(reason) => Observation::Failure {
                    refused: false,
                    reason,
                },
            };
            let outcome = if observation == Observation::Success {
                "healthy"
            } else {
                "unhealthy"
            };
            metrics::counter!(crate::metric_names::CARRIER_PROBES_TOTAL, "carrier" => self.carrier.to_string(), "outcome" => outcome)
                .increment(1);
            self.record(&observation).await;
        }
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        self.breaker.lock().expect("breaker lock is never poisoned")
    }

    async fn observe(&self, outcome: &SubmitOutcome) {
        self.record(&Observation::of(outcome)).await;
    }

    /// Lets the breaker see an observation; publishes the circuit when it changed.
    async fn record(&self, observation: &Observation) {
        let transition = self.lock_breaker().record(observation, Instant::now());
        if let Some(state) = transition {
            match state {
                CircuitState::Open => {
                    tracing::warn!(carrier = %self.carrier, reason = %self.lock_breaker().reason(), "circuit opened")
                }
                CircuitState::Closed => tracing::info!(carrier = %self.carrier, "circuit closed"),
            }
            self.publish_circuit().await;
        }
    }

    async fn publish_circuit(&self) {
        // The state is read with the lock held: the last publish carries the
        // breaker's last state.
        let _publishing = self.circuit_publishing.lock().await;
        let record = {
            let breaker = self.lock_breaker();
            CircuitRecord {
                carrier: self.carrier.clone(),
                state: breaker.state(),
                since_ms: rns_types::time::now_milliseconds(),
                reason: breaker.reason().to_owned(),
            }
        };
        metrics::gauge!(crate::metric_names::CARRIER_CIRCUIT_STATE, "carrier" => self.carrier.to_string()).set(
            match record.state {
                CircuitState::Closed => 0.0,
                CircuitState::Open => 1.0,
            },
        );
        if let Err(error) = self.health.publish(&record).await {
            tracing::warn!(carrier = %self.carrier, %error, "publishing the circuit state failed");
        }
    }

    fn events(&self, job: &CarrierJob, attempt: u16, outcome: &SubmitOutcome) -> Vec<MessageEvent> {
        let now_ms = rns_types::time::now_milliseconds();
        let event = |kind, detail: String| MessageEvent {
            message_id: job.message_id,
            at_ms: now_ms,
            accepted_at_ms: job.accepted_at_ms,
            kind,
            carrier: Some(self.carrier.clone()),
            hop: job.hop,
            attempt,
            detail,
            points: Default::default(),
            trace: job.trace,
        };
        match outcome {
            SubmitOutcome::Accepted {
                carrier_reference, ..
            } => {
                vec![event(EventKind::Submitted, carrier_reference.clone())]
            }
            SubmitOutcome::Delivered { carrier_reference } => vec![
                event(EventKind::Submitted, carrier_reference.clone()),
                MessageEvent {
                    points: job.settlement(true),
                    ..event(EventKind::Delivered, String::new())
                },
            ],
            SubmitOutcome::Rejected { reason } => {
                vec![MessageEvent {
                    points: job.settlement(false),
                    ..event(EventKind::Failed, format!("{}: {reason}", self.carrier))
                }]
            }
            SubmitOutcome::Expired { reason } => vec![MessageEvent {
                points: job.settlement(false),
                ..event(EventKind::Expired, reason.clone())
            }],
            retryable => vec![event(
                EventKind::AttemptFailed,
                reason_of(retryable).to_owned(),
            )],
        }
    }
}

/// Why a job expired: when its validity ran out.
pub fn expired_reason(job: &CarrierJob) -> String {
    format!(
        "not submitted within its validity, which ran out at {}",
        rns_types::time::rfc3339(job.expires_at_ms.unwrap_or_default())
    )
}

fn reason_of(outcome: &SubmitOutcome) -> &str {
    match outcome {
        SubmitOutcome::Delivered { .. } => "delivered",
        SubmitOutcome::Accepted { .. } => "accepted",
        SubmitOutcome::Rejected { reason }
        | SubmitOutcome::Expired { reason }
        | SubmitOutcome::Throttled { reason, .. }
        | SubmitOutcome::Transient { reason, .. }
        | SubmitOutcome::Ambiguous { reason } => reason,
    }
}

/// How long a job given back by a stopping worker while JetStream or its stores did
/// not answer waits before its next delivery `delivered + 1`: doubling from 2 s to
/// 32 s, so its deliveries span a minute of outage.
/// Which delivery of which stream message `message` is: what a submit claim names
/// ([`Failover::claim_submit`]).
fn delivery_of(message: &Message) -> String {
    message
        .info()
        .map(|info| format!("{}.{}", info.stream_sequence, info.delivered))
        .unwrap_or_default()
}

fn retry_when_unavailable(delivered: u16) -> Duration {
    Duration::from_secs(1 << delivered.clamp(1, 5))
}

/// The wait after the `failures`-th unanswered try of a step made with the job in
/// hand: 250 ms doubling to 4 s.
fn retry_in_hand(failures: u32) -> Duration {
    Duration::from_millis(250).saturating_mul(1 << failures.saturating_sub(1).min(4))
}
