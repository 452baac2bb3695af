//! Delivery receipts: correlating what carriers report later with what they accepted.
//!
//! A carrier that works asynchronously answers a submit with `accepted` and its own id
//! for the message. The worker then records `submitted` and calls
//! [`Receipts::await_receipt`], which stores the message's [`Correlation`] and a
//! message schedule for its receipt deadline, before it acknowledges the job. Receipts
//! arrive through [`intake`] (stored in `RECEIPTS` before the carrier is answered);
//! [`Receipts::run`] reads them, and the deadlines when they come, and settles each
//! message once (see [`rns_types::receipt`] for the states):
//!
//! | receipt | final event | points |
//! |---|---|---|
//! | `delivered` | `delivered` | spent |
//! | `undeliverable` | `undeliverable` (an AlimTalk message with a fallback falls back instead) | refunded |
//! | `expired` | `expired` | refunded |
//! | none before the deadline | `unknown` | spent (the carrier may have delivered and billed it) |
//!
//! Every step is a compare-and-set on the correlation, so a receipt that comes before
//! the carrier's answer was recorded (kept as `early` until it is), a duplicate (the
//! carrier's or JetStream's redelivery), the deadline racing a late receipt, or two
//! carriers processes reading at once, settle a message exactly once. The settlement
//! is stored before it is applied and applied again, under the same ids, by whoever
//! meets it after a crash in between.
//!
//! A correlation lives `receipt deadline + 1 day` (a settled one a day more, to
//! recognise late duplicates) through per-key TTLs; the bucket is bounded in bytes.
//! Correlations are read from the bucket stream's leader, never a replica: a replica
//! that is catching up (after a node restart) would show an old state, and a decision
//! taken on it could leave a receipt unread until its deadline.
pub mod intake;

use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::context::{Context, PublishErrorKind};
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{AckKind, Message};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use rns_nats::{publish_scheduled, terminate_with_reason, Outbound, PublishFailed};
use rns_types::receipt::{
    correlation_key, Awaited, CarrierReceipt, Correlation, ReceiptNotice, ReceiptState, Settlement,
};
use rns_types::subjects::{
    message_ids, receipt_deadline_due_subject, receipt_deadline_subject, receipt_subject,
    RECEIPTS_STREAM, RECEIPT_CORRELATIONS_BUCKET,
};
use rns_types::wire::{CarrierJob, EventKind, MessageEvent};
use rns_types::{CarrierId, MessageId};

use tokio_util::sync::CancellationToken;

use crate::failover::{Failover, FailoverError};
use crate::results::ResultSink;

/// Receipts read from `RECEIPTS` at once.
const CONCURRENCY: usize = 64;
/// How long a settled correlation is kept to recognise duplicates of its receipt.
const SETTLED_KEPT: Duration = Duration::from_secs(24 * 60 * 60);
/// What [`Receipts::keep_accepted`] leaves where a deadline was scheduled.
const ACCEPTED_ENTRY: &[u8] = b"accepted";
/// Compare-and-set rounds before a step is given up and retried later (each lost
/// round means another process moved the correlation on meanwhile).
const ROUNDS: usize = 8;

/// A receipt step that must be retried.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("correlation store: {0}")]
    Store(String),
    #[error("{0}")]
    Publish(#[from] PublishFailed),
    #[error("failover: {0}")]
    Failover(#[from] FailoverError),
    #[error("correlation {key} kept changing")]
    Contended { key: String },
}

fn store_error(error: impl std::fmt::Display) -> ReceiptError {
    ReceiptError::Store(error.to_string())
}

/// What became of one notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The message was settled now.
    Settled,
    /// Kept until the carrier's answer to the submit is recorded.
    Parked,
    /// A repeat of a receipt already taken.
    Duplicate,
    /// Nothing to do: a deadline of a message already settled, or of one unknown here.
    Stale,
    /// The receipt of one part of a message in several parts; others are awaited.
    Part,
}

impl Handled {
    fn label(self) -> &'static str {
        match self {
            Handled::Settled => "settled",
            Handled::Parked => "early",
            Handled::Duplicate => "duplicate",
            Handled::Stale => "stale",
            Handled::Part => "part",
        }
    }
}

/// Correlates receipts with accepted messages; cheap to clone.
#[derive(Clone)]
pub struct Receipts {
    jetstream: Context,
    correlations: kv::Store,
    /// The `RECEIPTS` stream, where a deadline looks for a receipt not yet read.
    stream: async_nats::jetstream::stream::Stream<()>,
    results: ResultSink,
    failover: Failover,
    deadline: Duration,
}

impl std::fmt::Debug for Receipts {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Receipts")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// A correlation as read, with the revision a compare-and-set names.
struct Read {
    revision: u64,
    correlation: Correlation,
}

/// How a compare-and-set went.
enum Written {
    Done,
    /// Someone else wrote first; read again.
    Lost,
}

impl Receipts {
    /// Receipts awaited up to `deadline` after a carrier accepted a message.
    pub async fn open(
        jetstream: Context,
        results: ResultSink,
        failover: Failover,
        deadline: Duration,
    ) -> Result<Self, ReceiptError> {
        let correlations = jetstream
            .get_key_value(RECEIPT_CORRELATIONS_BUCKET)
            .await
            .map_err(store_error)?;
        let stream = jetstream
            .get_stream_no_info(RECEIPTS_STREAM)
            .await
            .map_err(store_error)?;
        Ok(Self {
            jetstream,
            correlations,
            stream,
            results,
            failover,
            deadline,
        })
    }

    /// How long a correlation waiting for its settlement is kept.
    fn kept(&self) -> Duration {
        self.deadline + SETTLED_KEPT
    }

    /// The carrier accepted `job` on delivery `attempt` under `carrier_reference`
    /// (a message in several parts: its last part's, `earlier_parts` the others'):
    /// stores its deadline, then its correlation, and links its parts — or settles it
    /// at once when its receipt came first. Returns once that is durable; the job may
    /// then be acked. The deadline goes first because it is found by the message
    /// ([`Self::resume`]): a process stopped before the correlation leaves it to the
    /// job's next delivery, or to the deadline itself.
    pub async fn await_receipt(
        &self,
        job: &CarrierJob,
        attempt: u16,
        carrier_reference: &str,
        earlier_parts: &[String],
    ) -> Result<(), ReceiptError> {
        let now_ms = rns_types::time::now_milliseconds();
        let parts_awaited = if earlier_parts.is_empty() {
            Vec::new()
        } else {
            earlier_parts
                .iter()
                .cloned()
                .chain([carrier_reference.to_owned()])
                .collect()
        };
        let awaited = Awaited {
            job: Box::new(job.clone()),
            attempt,
            submitted_at_ms: now_ms,
            deadline_at_ms: now_ms.saturating_add(milliseconds(self.deadline)),
            parts_awaited,
        };
        self.schedule_deadline(carrier_reference, &awaited).await?;
        self.correlate(carrier_reference, awaited, Others::TakeOver)
            .await
    }

    /// Whether `job`'s message was accepted on its hop: its deadline is stored (still
    /// to come, due and not yet read, or come and left as [`Self::keep_accepted`]'s
    /// entry). A redelivered job whose earlier delivery got that far needs nothing
    /// more, but what that delivery may have left undone after storing the deadline —
    /// the correlation, the links of its parts — is done now.
    ///
    /// A deadline moves from its schedule to its due notice when it fires (the server
    /// stores the notice, then purges the schedule, under one lock), and its handler
    /// leaves the accepted entry on the schedule's subject before it takes the notice
    /// off the queue. Read in that order — the schedule's subject, the notice's, the
    /// schedule's again — one of them is found whenever the message was accepted,
    /// however the reads interleave with the firing and the handling.
    pub async fn resume(&self, job: &CarrierJob) -> Result<bool, ReceiptError> {
        let scheduled = receipt_deadline_subject(&job.carrier, &job.message_id, job.hop);
        if let Some(stored) = self.last_in_stream(&scheduled).await? {
            self.resume_from(&stored, job).await?;
            return Ok(true);
        }
        let due = receipt_deadline_due_subject(&job.carrier, &job.message_id, job.hop);
        if self.last_in_stream(&due).await?.is_some() {
            // Its handler correlates the message if nothing did ([`Self::take`]).
            return Ok(true);
        }
        match self.last_in_stream(&scheduled).await? {
            Some(stored) => {
                self.resume_from(&stored, job).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Correlates `job`'s message from its deadline `stored` when that is the
    /// schedule (it carries what was awaited); the accepted entry needs nothing.
    async fn resume_from(
        &self,
        stored: &async_nats::jetstream::message::StreamMessage,
        job: &CarrierJob,
    ) -> Result<(), ReceiptError> {
        if let Ok(ReceiptNotice::Deadline {
            carrier_reference,
            awaited: Some(awaited),
            ..
        }) = serde_json::from_slice(&stored.payload)
        {
            if same_message(&awaited.job, job) {
                self.correlate(&carrier_reference, *awaited, Others::Yield)
                    .await?;
            }
        }
        Ok(())
    }

    /// The last message on `subject` in `RECEIPTS`, read from the stream's leader.
    async fn last_in_stream(
        &self,
        subject: &str,
    ) -> Result<Option<async_nats::jetstream::message::StreamMessage>, ReceiptError> {
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(stored) => Ok(Some(stored)),
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(error) => Err(store_error(error)),
        }
    }

    /// Stores `awaited`'s correlation under `carrier_reference` and links its parts:
    /// created; or, found `Early`, settled by the receipt that came first; found
    /// already (a repeat), its links made again; found settled, applied again (its
    /// settler may have stopped before). What an earlier message the carrier gave the
    /// reference left there is taken over, or, with [`Others::Yield`], left alone and
    /// this message ends `unknown`.
    async fn correlate(
        &self,
        carrier_reference: &str,
        awaited: Awaited,
        others: Others,
    ) -> Result<(), ReceiptError> {
        let job = awaited.job.clone();
        let key = correlation_key(&job.carrier, carrier_reference);
        let earlier_parts = awaited.earlier_parts(carrier_reference);
        let attempt = awaited.attempt;
        let awaiting = Correlation::Awaiting(awaited);
        let encoded = encode(&awaiting);
        for _ in 0..ROUNDS {
            if let Written::Done = self.create(&key, encoded.clone()).await? {
                return self
                    .link_parts(&job.carrier, carrier_reference, &earlier_parts)
                    .await;
            }
            let Some(read) = self.read(&key).await? else {
                continue;
            };
            if !left_by(&job, &read.correlation) {
                match others {
                    // The carrier gave this reference to an earlier message: this one
                    // takes the key over.
                    Others::TakeOver => {
                        if let Written::Done = self.take_over(&key, read, &awaiting).await? {
                            return self
                                .link_parts(&job.carrier, carrier_reference, &earlier_parts)
                                .await;
                        }
                        continue;
                    }
                    Others::Yield => {
                        // Taken over after this message was correlated (and settled):
                        // the taker left the accepted entry before it wrote.
                        if self.accepted_entry_stands(&job).await? {
                            tracing::debug!(carrier = %job.carrier, %key, message = %job.message_id, "correlated before another message took its reference; nothing to do");
                            return Ok(());
                        }
                        metrics::counter!(crate::metric_names::RECEIPTS_TOTAL, "carrier" => job.carrier.to_string(), "outcome" => "never_correlated").increment(1);
                        let detail = format!(
                            "{}: accepted it, but gave its id to another message before its receipt could be awaited",
                            job.carrier
                        );
                        return self.apply(&unknown(*job, attempt, detail)).await;
                    }
                }
            }
            match read.correlation {
                Correlation::Early {
                    receipt,
                    received_at_ms,
                } => {
                    let revision = read.revision;
                    let stored = Read {
                        revision,
                        correlation: awaiting.clone(),
                    };
                    match self.receive(stored, carrier_reference, &receipt, received_at_ms) {
                        Step::Settle(_, settlement) => {
                            if let Written::Done = self.settle(&key, revision, &settlement).await? {
                                metrics::counter!(crate::metric_names::RECEIPTS_TOTAL, "carrier" => job.carrier.to_string(), "outcome" => "early_settled").increment(1);
                                return self
                                    .link_parts(&job.carrier, carrier_reference, &earlier_parts)
                                    .await;
                            }
                        }
                        Step::Update(_, rest) => {
                            let written = self
                                .write(&key, encode(&rest), revision, self.kept())
                                .await?;
                            if let Written::Done = written {
                                return self
                                    .link_parts(&job.carrier, carrier_reference, &earlier_parts)
                                    .await;
                            }
                        }
                        Step::Repeat(..) | Step::Nothing(_) => {}
                    }
                }
                // A repeat (the job was redelivered): its parts are linked again, in
                // case the first time was cut short.
                Correlation::Awaiting(_) => {
                    return self
                        .link_parts(&job.carrier, carrier_reference, &earlier_parts)
                        .await
                }
                // Settled by someone who may have stopped before applying it.
                Correlation::Settled(settlement) => {
                    self.apply(&settlement).await?;
                    return self
                        .link_parts(&job.carrier, carrier_reference, &earlier_parts)
                        .await;
                }
                // Never this message's own (`left_by` says so).
                Correlation::Part { .. } => {}
            }
        }
        Err(ReceiptError::Contended { key })
    }

    /// Replaces what an earlier message left under `key` (the carrier gave its
    /// reference again) with `value`. A message still awaiting its receipt there is
    /// settled `unknown` first, since the receipt that comes could be either's;
    /// [`Written::Lost`] then, and the caller reads again. A settled one is applied
    /// again first, and its deadline replaced by [`Self::keep_accepted`]'s entry: that tells its
    /// redelivered job and its deadline, which would find another message under the
    /// reference, that it was correlated and settled, rather than never correlated
    /// ([`Others::Yield`]).
    async fn take_over(
        &self,
        key: &str,
        read: Read,
        value: &Correlation,
    ) -> Result<Written, ReceiptError> {
        if let Correlation::Awaiting(Awaited { job, attempt, .. }) = read.correlation {
            let settlement = Settlement {
                detail: format!(
                    "{}: accepted it, then gave its id for it to another message before its receipt came",
                    job.carrier
                ),
                job: *job,
                attempt,
                kind: EventKind::Unknown,
                at_ms: rns_types::time::now_milliseconds(),
            };
            if let Written::Done = self.settle(key, read.revision, &settlement).await? {
                metrics::counter!(crate::metric_names::RECEIPTS_TOTAL, "carrier" => settlement.job.carrier.to_string(), "outcome" => "reference_reused").increment(1);
                tracing::warn!(carrier = %settlement.job.carrier, %key, message = %settlement.job.message_id, "the carrier gave a reference still awaiting its receipt to another message; the earlier message ends unknown");
            }
            return Ok(Written::Lost);
        }
        if let Correlation::Settled(settlement) = &read.correlation {
            // Its settler may have stopped between storing and applying it, and the
            // reading that would apply it again finds the key taken: applied again
            // now (the same records under the same ids), before it is gone.
            self.apply(settlement).await?;
            let job = &settlement.job;
            self.keep_accepted(
                &job.carrier,
                &job.message_id,
                job.hop,
                "its reference was taken over",
            )
            .await?;
        }
        self.write(key, encode(value), read.revision, self.kept())
            .await
    }

    /// Points each of `earlier_parts` at the message correlated under
    /// `message_reference`, taking any receipt of a part that came early.
    async fn link_parts(
        &self,
        carrier: &CarrierId,
        message_reference: &str,
        earlier_parts: &[String],
    ) -> Result<(), ReceiptError> {
        let link = encode(&Correlation::Part {
            message_reference: message_reference.to_owned(),
        });
        for part in earlier_parts {
            let key = correlation_key(carrier, part);
            let mut linked = false;
            for _ in 0..ROUNDS {
                if let Written::Done = self.create(&key, link.clone()).await? {
                    linked = true;
                    break;
                }
                match self.read(&key).await? {
                    None => continue,
                    Some(Read {
                        correlation:
                            Correlation::Part {
                                message_reference: linked_to,
                            },
                        ..
                    }) if linked_to == message_reference => {
                        linked = true;
                        break;
                    }
                    Some(Read {
                        revision,
                        correlation:
                            Correlation::Early {
                                receipt,
                                received_at_ms,
                            },
                    }) => {
                        // Taken first, then replaced by the link: taken twice after a
                        // crash in between, the second time is a duplicate.
                        self.take_part(
                            carrier,
                            message_reference,
                            part,
                            &receipt,
                            received_at_ms,
                            true,
                        )
                        .await?;
                        if let Written::Done = self
                            .write(&key, link.clone(), revision, self.kept())
                            .await?
                        {
                            linked = true;
                            break;
                        }
                    }
                    // Left by an earlier message the carrier gave this reference.
                    Some(read) => {
                        if let Written::Done = self
                            .take_over(
                                &key,
                                read,
                                &Correlation::Part {
                                    message_reference: message_reference.to_owned(),
                                },
                            )
                            .await?
                        {
                            linked = true;
                            break;
                        }
                    }
                }
            }
            if !linked {
                return Err(ReceiptError::Contended { key });
            }
        }
        Ok(())
    }

    /// Takes the receipt of `part` of the message correlated under
    /// `message_reference`.
    async fn take_part(
        &self,
        carrier: &CarrierId,
        message_reference: &str,
        part: &str,
        receipt: &CarrierReceipt,
        received_at_ms: u64,
        redelivered: bool,
    ) -> Result<Handled, ReceiptError> {
        let key = correlation_key(carrier, message_reference);
        for _ in 0..ROUNDS {
            // Gone: the message's correlation outlived its keeping.
            let Some(read) = self.read(&key).await? else {
                return Ok(Handled::Stale);
            };
            let step = self.receive(read, part, receipt, received_at_ms);
            if let Some(handled) = self.carry_out(&key, step, redelivered).await? {
                return Ok(handled);
            }
        }
        Err(ReceiptError::Contended { key })
    }

    /// Reads `receipt.*` until `shutdown`; the notices in hand are finished first.
    pub async fn run(
        &self,
        consumer: PullConsumer,
        shutdown: CancellationToken,
    ) -> Result<(), async_nats::Error> {
        let messages = consumer
            .stream()
            // No more in hand than are read at once: a notice waiting in this
            // process's buffer past the ack wait would be handed out again.
            .max_messages_per_batch(CONCURRENCY)
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await?;
        messages
            .take_until(shutdown.cancelled())
            .for_each_concurrent(CONCURRENCY, |message| async move {
                match message {
                    Ok(message) => self.handle(message).await,
                    Err(error) => tracing::warn!(%error, "pulling receipts failed"),
                }
            })
            .await;
        Ok(())
    }

    async fn handle(&self, message: Message) {
        // `receipt.<carrier>.<reference>` or `receipt.<carrier>.deadline.<message>.<hop>`
        let carrier = message
            .subject
            .strip_prefix("receipt.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|carrier| CarrierId::parse(carrier).ok());
        let notice = serde_json::from_slice::<ReceiptNotice>(&message.payload);
        let (carrier, notice) = match (carrier, notice) {
            (Some(carrier), Ok(notice)) => (carrier, notice),
            (_, Err(error)) => {
                tracing::error!(subject = %message.subject, %error, "undecodable receipt; terminating it");
                let _ = terminate_with_reason(
                    &self.jetstream.client(),
                    &message,
                    &format!("undecodable: {error}"),
                )
                .await;
                return;
            }
            (None, Ok(_)) => {
                let _ = terminate_with_reason(
                    &self.jetstream.client(),
                    &message,
                    "no carrier in the subject",
                )
                .await;
                return;
            }
        };
        let redelivered = message.info().is_ok_and(|info| info.delivered > 1);
        let deadline_of = match &notice {
            ReceiptNotice::Deadline {
                message: Some(message),
                hop: Some(hop),
                ..
            } => Some((*message, *hop)),
            _ => None,
        };
        let taken = match self.take(&carrier, notice, redelivered).await {
            Ok(handled) => match deadline_of {
                Some((of, hop)) => self
                    .keep_accepted(&carrier, &of, hop, handled.label())
                    .await
                    .map(|()| handled),
                None => Ok(handled),
            },
            taken => taken,
        };
        match taken {
            Ok(handled) => {
                metrics::counter!(crate::metric_names::RECEIPTS_TOTAL, "carrier" => carrier.to_string(), "outcome" => handled.label()).increment(1);
                if let Err(error) = message.ack().await {
                    tracing::warn!(%carrier, %error, "acknowledging a receipt failed; it will be read again");
                }
            }
            Err(error) => {
                tracing::warn!(%carrier, %error, "taking a receipt failed; it will be read again");
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
            }
        }
    }

    /// Takes one notice about `carrier`'s message. `redelivered`: an earlier reading
    /// may have stopped between settling and applying.
    pub async fn take(
        &self,
        carrier: &CarrierId,
        notice: ReceiptNotice,
        redelivered: bool,
    ) -> Result<Handled, ReceiptError> {
        let key = correlation_key(carrier, notice.carrier_reference());
        // What a deadline read first, unless it had to correlate its message (then
        // the key is read again).
        let mut first_read = None;
        if let ReceiptNotice::Deadline {
            carrier_reference,
            awaited: Some(awaited),
            ..
        } = &notice
        {
            first_read = self
                .correlate_late(&key, carrier_reference, awaited)
                .await?;
        }
        let mut receipts_taken = false;
        for _ in 0..ROUNDS {
            let read = match first_read.take() {
                Some(read) => read,
                None => self.read(&key).await?,
            };
            let step = match (&notice, read) {
                (
                    ReceiptNotice::Receipt {
                        receipt,
                        received_at_ms,
                    },
                    None,
                ) => {
                    let early = Correlation::Early {
                        receipt: receipt.clone(),
                        received_at_ms: *received_at_ms,
                    };
                    match self.create(&key, encode(&early)).await? {
                        Written::Done => return Ok(Handled::Parked),
                        Written::Lost => continue,
                    }
                }
                (
                    ReceiptNotice::Receipt {
                        receipt,
                        received_at_ms,
                    },
                    Some(Read {
                        correlation: Correlation::Part { message_reference },
                        ..
                    }),
                ) => {
                    return self
                        .take_part(
                            carrier,
                            &message_reference,
                            &receipt.carrier_reference,
                            receipt,
                            *received_at_ms,
                            redelivered,
                        )
                        .await
                }
                // A receipt naming another handset than the message under its
                // reference: for a later message the carrier gave the reference
                // again, whose answer is not recorded yet.
                (
                    ReceiptNotice::Receipt {
                        receipt,
                        received_at_ms,
                    },
                    Some(read),
                ) if for_a_later_message(receipt, &read.correlation) => {
                    let early = Correlation::Early {
                        receipt: receipt.clone(),
                        received_at_ms: *received_at_ms,
                    };
                    match self.take_over(&key, read, &early).await? {
                        Written::Done => return Ok(Handled::Parked),
                        Written::Lost => continue,
                    }
                }
                (ReceiptNotice::Deadline { .. }, None) => return Ok(Handled::Stale),
                // The deadline of an earlier message the carrier gave this reference.
                (
                    ReceiptNotice::Deadline { message, hop, .. },
                    Some(Read {
                        correlation: Correlation::Awaiting(Awaited { ref job, .. }),
                        ..
                    }),
                ) if !named(job, *message, *hop) => return Ok(Handled::Stale),
                // A receipt RNS stored before the deadline decides: one not read yet is
                // taken now, ahead of the reading that will find it taken (once: what
                // it leaves awaited, the deadline decides).
                (
                    ReceiptNotice::Deadline { .. },
                    Some(
                        read @ Read {
                            correlation: Correlation::Awaiting(_),
                            ..
                        },
                    ),
                ) if !receipts_taken => {
                    receipts_taken = true;
                    let parts_awaited = match &read.correlation {
                        Correlation::Awaiting(awaited) => awaited.parts_awaited.clone(),
                        _ => Vec::new(),
                    };
                    let waiting = self.waiting_receipts(carrier, &key, &parts_awaited).await?;
                    if waiting.is_empty() {
                        self.step(&notice, read)
                    } else {
                        for receipt in waiting {
                            Box::pin(self.take(carrier, receipt, redelivered)).await?;
                        }
                        continue;
                    }
                }
                (_, Some(read)) => self.step(&notice, read),
            };
            if let Some(handled) = self.carry_out(&key, step, redelivered).await? {
                return Ok(handled);
            }
        }
        Err(ReceiptError::Contended { key })
    }

    /// Before its deadline is taken: stores the correlation of `awaited` if its
    /// submit's process stopped after storing the deadline and before the
    /// correlation (and the job was not delivered again since, [`Self::resume`]) —
    /// the key holds nothing, or a receipt of this message's handset that came
    /// first, which settles it now, or another message's correlation: had this one's
    /// been stored, the other's taking the key over would have replaced this
    /// deadline ([`Self::take_over`]), so it never was, and the message ends
    /// `unknown` ([`Others::Yield`]). Returns what it read when it did nothing (the
    /// usual case: the deadline goes on from that read), none when it correlated.
    async fn correlate_late(
        &self,
        key: &str,
        carrier_reference: &str,
        awaited: &Awaited,
    ) -> Result<Option<Option<Read>>, ReceiptError> {
        let read = self.read(key).await?;
        let uncorrelated = match &read {
            None => true,
            Some(Read {
                correlation: correlation @ (Correlation::Awaiting(_) | Correlation::Settled(_)),
                ..
            }) => !left_by(&awaited.job, correlation),
            Some(Read {
                correlation: Correlation::Early { .. } | Correlation::Part { .. },
                ..
            }) => true,
        };
        if !uncorrelated {
            return Ok(Some(read));
        }
        tracing::info!(carrier = %awaited.job.carrier, %key, message = %awaited.job.message_id, "a receipt deadline came for a message whose correlation was never stored; storing it now");
        self.correlate(carrier_reference, awaited.clone(), Others::Yield)
            .await?;
        Ok(None)
    }

    /// Carries out `step` on the correlation under `key`; none if another process
    /// moved it on first (read it again). `redelivered`: an earlier reading may have
    /// stopped between settling and applying.
    async fn carry_out(
        &self,
        key: &str,
        step: Step,
        redelivered: bool,
    ) -> Result<Option<Handled>, ReceiptError> {
        match step {
            Step::Settle(revision, settlement) => {
                let written = self.settle(key, revision, &settlement).await?;
                Ok(matches!(written, Written::Done).then_some(Handled::Settled))
            }
            Step::Update(revision, rest) => {
                let written = self
                    .write(key, encode(&rest), revision, self.kept())
                    .await?;
                Ok(matches!(written, Written::Done).then_some(Handled::Part))
            }
            Step::Repeat(settlement, handled) => {
                if redelivered {
                    self.apply(&settlement).await?;
                }
                Ok(Some(handled))
            }
            Step::Nothing(handled) => Ok(Some(handled)),
        }
    }

    /// What the receipt of part `part` (a message in one part: of the message itself)
    /// does to the message's correlation: a part that was not delivered settles the
    /// message at once; a delivered one settles it when it was the last awaited.
    fn receive(
        &self,
        read: Read,
        part: &str,
        receipt: &CarrierReceipt,
        received_at_ms: u64,
    ) -> Step {
        match read.correlation {
            Correlation::Awaiting(mut awaited) => {
                let parts_awaited = &mut awaited.parts_awaited;
                if !parts_awaited.is_empty() {
                    let Some(index) = parts_awaited.iter().position(|awaited| awaited == part)
                    else {
                        return Step::Nothing(Handled::Duplicate);
                    };
                    parts_awaited.remove(index);
                }
                if receipt.state != ReceiptState::Delivered || parts_awaited.is_empty() {
                    return Step::Settle(
                        read.revision,
                        self.decide(&awaited.job, awaited.attempt, receipt, received_at_ms),
                    );
                }
                Step::Update(read.revision, Correlation::Awaiting(awaited))
            }
            Correlation::Settled(settlement) => Step::Repeat(*settlement, Handled::Duplicate),
            Correlation::Early { .. } => Step::Nothing(Handled::Duplicate),
            Correlation::Part { .. } => Step::Nothing(Handled::Stale),
        }
    }

    /// What a notice does to a correlation that exists.
    fn step(&self, notice: &ReceiptNotice, read: Read) -> Step {
        if let ReceiptNotice::Receipt {
            receipt,
            received_at_ms,
        } = notice
        {
            return self.receive(read, &receipt.carrier_reference, receipt, *received_at_ms);
        }
        match (notice, read.correlation) {
            (ReceiptNotice::Deadline { .. }, Correlation::Awaiting(awaited)) => {
                let detail = format!(
                    "{}: accepted it, but sent no receipt within the receipt deadline of {}s",
                    awaited.job.carrier,
                    self.deadline.as_secs()
                );
                Step::Settle(
                    read.revision,
                    unknown(*awaited.job, awaited.attempt, detail),
                )
            }
            (ReceiptNotice::Deadline { .. }, Correlation::Settled(settlement)) => {
                Step::Repeat(*settlement, Handled::Stale)
            }
            (ReceiptNotice::Receipt { .. }, _)
            | (
                ReceiptNotice::Deadline { .. },
                Correlation::Early { .. } | Correlation::Part { .. },
            ) => Step::Nothing(Handled::Stale),
        }
    }

    /// The final step a receipt decides for `job`.
    fn decide(
        &self,
        job: &CarrierJob,
        attempt: u16,
        receipt: &CarrierReceipt,
        received_at_ms: u64,
    ) -> Settlement {
        let words = receipt
            .detail
            .as_deref()
            .map(|detail| format!(" ({detail})"))
            .unwrap_or_default();
        let kind = match receipt.state {
            ReceiptState::Undeliverable if job.fallback.is_some() => EventKind::FellBack,
            state => state.event_kind(),
        };
        let detail = match receipt.state {
            ReceiptState::Delivered => format!("receipt from {}{words}", job.carrier),
            state => format!("{}: receipt says {}{words}", job.carrier, state.as_str()),
        };
        Settlement {
            job: job.clone(),
            attempt,
            kind,
            detail,
            at_ms: received_at_ms,
        }
    }

    /// Stores `settlement` over the correlation at `revision`, then applies it.
    async fn settle(
        &self,
        key: &str,
        revision: u64,
        settlement: &Settlement,
    ) -> Result<Written, ReceiptError> {
        let settled = Correlation::Settled(Box::new(settlement.clone()));
        match self
            .write(key, encode(&settled), revision, self.kept())
            .await?
        {
            Written::Lost => Ok(Written::Lost),
            Written::Done => {
                self.apply(settlement).await?;
                Ok(Written::Done)
            }
        }
    }

    /// Publishes what a settlement decided (under ids of its message and hop, so a
    /// repeat is the same publish): its final event, or the fallback's next hop.
    pub async fn apply(&self, settlement: &Settlement) -> Result<(), ReceiptError> {
        let job = &settlement.job;
        if settlement.kind == EventKind::FellBack {
            return Ok(self
                .failover
                .fall_back(job, &settlement.detail, settlement.attempt)
                .await?);
        }
        let charged = matches!(settlement.kind, EventKind::Delivered | EventKind::Unknown);
        let event = MessageEvent {
            message_id: job.message_id,
            at_ms: settlement.at_ms,
            accepted_at_ms: job.accepted_at_ms,
            kind: settlement.kind,
            carrier: Some(job.carrier.clone()),
            hop: job.hop,
            attempt: settlement.attempt,
            detail: settlement.detail.clone(),
            points: job.settlement(charged),
            trace: job.trace,
        };
        self.results
            .record(
                &job.customer_id,
                message_ids::receipt_settlement(&job.message_id, job.hop),
                vec![event],
            )
            .await?;
        Ok(())
    }

    /// Publishes the deadline of an awaited receipt: a message schedule that puts a
    /// [`ReceiptNotice::Deadline`] on `receipt.<carrier>` when it is due. Publishing
    /// it again replaces it.
    async fn schedule_deadline(
        &self,
        carrier_reference: &str,
        awaited: &Awaited,
    ) -> Result<(), ReceiptError> {
        let job = &awaited.job;
        let notice = ReceiptNotice::Deadline {
            carrier_reference: carrier_reference.to_owned(),
            message: Some(job.message_id),
            hop: Some(job.hop),
            awaited: Some(Box::new(awaited.clone())),
        };
        let due = Outbound {
            subject: receipt_deadline_due_subject(&job.carrier, &job.message_id, job.hop),
            message_id: String::new(),
            payload: Bytes::from(serde_json::to_vec(&notice).expect("a notice serialises")),
        };
        // Whole seconds, rounded up: never before the deadline.
        let at = rns_types::time::rfc3339_seconds(awaited.deadline_at_ms.div_ceil(1_000) * 1_000);
        publish_scheduled(
            &self.jetstream,
            receipt_deadline_subject(&job.carrier, &job.message_id, job.hop),
            due,
            &at,
        )
        .await?;
        Ok(())
    }

    /// Once the deadline of `message` on `hop` came, its schedule is gone: a plain
    /// entry on the schedule's subject goes on saying that the carrier accepted the
    /// message there ([`Self::resume`]) for a day, as long as its settled correlation
    /// is kept. Stored before the deadline is acknowledged, so one of the two is
    /// always there but between the schedule firing and this handling.
    async fn keep_accepted(
        &self,
        carrier: &CarrierId,
        message: &MessageId,
        hop: u16,
        why: &str,
    ) -> Result<(), ReceiptError> {
        tracing::debug!(%carrier, %message, hop, why, "the accepted entry replaces the receipt deadline");
        let mut headers = HeaderMap::new();
        headers.insert("Nats-TTL", SETTLED_KEPT.as_secs().to_string());
        // Rolls up what the subject held: a deadline still to come is then gone (it
        // no longer fires once another message follows it, but stays stored).
        headers.insert("Nats-Rollup", "sub");
        self.jetstream
            .publish_with_headers(
                receipt_deadline_subject(carrier, message, hop),
                headers,
                Bytes::from_static(ACCEPTED_ENTRY),
            )
            .await
            .map_err(store_error)?
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Whether [`Self::keep_accepted`]'s entry stands where `job`'s deadline was
    /// scheduled: its message was correlated, and either its deadline came or a
    /// later message took its reference over after it was settled.
    async fn accepted_entry_stands(&self, job: &CarrierJob) -> Result<bool, ReceiptError> {
        let scheduled = receipt_deadline_subject(&job.carrier, &job.message_id, job.hop);
        Ok(self
            .last_in_stream(&scheduled)
            .await?
            .is_some_and(|stored| stored.payload.as_ref() == ACCEPTED_ENTRY))
    }

    /// The receipts stored and not yet read (the work queue drops what was read) of
    /// the message under `key`, or of those of its parts still awaited.
    async fn waiting_receipts(
        &self,
        carrier: &CarrierId,
        key: &str,
        parts_awaited: &[String],
    ) -> Result<Vec<ReceiptNotice>, ReceiptError> {
        let keys: Vec<String> = if parts_awaited.is_empty() {
            vec![key.to_owned()]
        } else {
            parts_awaited
                .iter()
                .map(|part| correlation_key(carrier, part))
                .collect()
        };
        let mut waiting = Vec::new();
        for key in keys {
            if let Some(stored) = self.last_in_stream(&receipt_subject(&key)).await? {
                if let Ok(notice @ ReceiptNotice::Receipt { .. }) =
                    serde_json::from_slice(&stored.payload)
                {
                    waiting.push(notice);
                }
            }
        }
        Ok(waiting)
    }

    /// The correlation under `key`, read from the stream's leader; none when there is
    /// none (or its last entry is a deletion or an expiry's marker).
    async fn read(&self, key: &str) -> Result<Option<Read>, ReceiptError> {
        Ok(self.last(key).await?.and_then(|last| match last {
            Last::Correlation(read) => Some(read),
            Last::Gone(_) => None,
        }))
    }

    async fn last(&self, key: &str) -> Result<Option<Last>, ReceiptError> {
        let subject = self.subject(key);
        let message = match self
            .correlations
            .stream
            .get_last_raw_message_by_subject(&subject)
            .await
        {
            Ok(message) => message,
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Ok(None)
            }
            Err(error) => return Err(store_error(error)),
        };
        let gone = ["KV-Operation", "Nats-Marker-Reason"]
            .iter()
            .any(|header| message.headers.get(*header).is_some());
        if gone {
            return Ok(Some(Last::Gone(message.sequence)));
        }
        match serde_json::from_slice(&message.payload) {
            Ok(correlation) => Ok(Some(Last::Correlation(Read {
                revision: message.sequence,
                correlation,
            }))),
            Err(error) => Err(ReceiptError::Store(format!(
                "correlation {key} is unreadable: {error}"
            ))),
        }
    }

    /// Creates `key` with `value` unless it holds a correlation; kept for
    /// [`Self::kept`].
    async fn create(&self, key: &str, value: Bytes) -> Result<Written, ReceiptError> {
        match self.write(key, value.clone(), 0, self.kept()).await? {
            Written::Done => Ok(Written::Done),
            // Something is there: a correlation, or what is left of an expired one.
            Written::Lost => match self.last(key).await? {
                Some(Last::Gone(revision)) => self.write(key, value, revision, self.kept()).await,
                _ => Ok(Written::Lost),
            },
        }
    }

    /// Writes `value` under `key` if its last revision is still `revision` (0: if it
    /// has none), to be kept for `kept`.
    async fn write(
        &self,
        key: &str,
        value: Bytes,
        revision: u64,
        kept: Duration,
    ) -> Result<Written, ReceiptError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Expected-Last-Subject-Sequence", revision.to_string());
        headers.insert("Nats-TTL", kept.as_secs().to_string());
        let acknowledged = self
            .jetstream
            .publish_with_headers(self.subject(key), headers, value)
            .await
            .map_err(store_error)?
            .await;
        match acknowledged {
            Ok(_) => Ok(Written::Done),
            Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => Ok(Written::Lost),
            Err(error) => Err(store_error(error)),
        }
    }

    /// The bucket stream's subject of `key`.
    fn subject(&self, key: &str) -> String {
        let store = &self.correlations;
        format!(
            "{}{key}",
            store.put_prefix.as_deref().unwrap_or(&store.prefix)
        )
    }
}

/// The last entry under a key.
enum Last {
    Correlation(Read),
    /// Deleted, or expired (the entry's revision).
    Gone(u64),
}

/// What a notice does to an existing correlation.
enum Step {
    /// Settle as decided, if the correlation is still at this revision.
    Settle(u64, Settlement),
    /// Replace the correlation (one part fewer awaited), if it is still at this
    /// revision.
    Update(u64, Correlation),
    /// Already settled so: apply again only if an earlier reading may have stopped.
    Repeat(Settlement, Handled),
    Nothing(Handled),
}

/// Whether `correlation`, found under the key of `job`'s carrier reference, is
/// `job`'s own (or a receipt that came before it, `Early`), rather than left by an
/// earlier message the carrier gave the same reference.
fn left_by(job: &CarrierJob, correlation: &Correlation) -> bool {
    match correlation {
        Correlation::Awaiting(Awaited { job: stored, .. }) => same_message(stored, job),
        Correlation::Settled(settlement) => same_message(&settlement.job, job),
        // Early, unless the receipt names another handset.
        Correlation::Early { receipt, .. } => !receipt.about_another_handset(job),
        // A message's own parts are linked under their own references.
        Correlation::Part { .. } => false,
    }
}

/// Whether `receipt` names another handset than the message `correlation` is about.
fn for_a_later_message(receipt: &CarrierReceipt, correlation: &Correlation) -> bool {
    match correlation {
        Correlation::Awaiting(Awaited { job, .. }) => receipt.about_another_handset(job),
        Correlation::Settled(settlement) => receipt.about_another_handset(&settlement.job),
        Correlation::Early { .. } | Correlation::Part { .. } => false,
    }
}

/// `job`, accepted on delivery `attempt`, ends `unknown`, for `detail`.
fn unknown(job: CarrierJob, attempt: u16, detail: String) -> Settlement {
    Settlement {
        job,
        attempt,
        kind: EventKind::Unknown,
        detail,
        at_ms: rns_types::time::now_milliseconds(),
    }
}

/// What becomes of another message's correlation found under a message's reference.
#[derive(Debug, Clone, Copy)]
enum Others {
    /// Taken over: it was an earlier message's, whose reference the carrier gave
    /// again (the submit's own answer says so).
    TakeOver,
    /// Left alone, and the message ends `unknown`: a message found uncorrelated by
    /// its redelivered job or its deadline, whose reference the carrier gave to
    /// another message since (the receipt under it could be either's).
    Yield,
}

fn same_message(one: &CarrierJob, other: &CarrierJob) -> bool {
    one.message_id == other.message_id && one.hop == other.hop
}

/// Whether a deadline naming `message` on `hop` is `job`'s (one that names none is
/// whoever's awaits).
fn named(job: &CarrierJob, message: Option<MessageId>, hop: Option<u16>) -> bool {
    message.is_none_or(|message| message == job.message_id) && hop.is_none_or(|hop| hop == job.hop)
}

fn encode(correlation: &Correlation) -> Bytes {
    Bytes::from(serde_json::to_vec(correlation).expect("a correlation serialises"))
}

fn milliseconds(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
