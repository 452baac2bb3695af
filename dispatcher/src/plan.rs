//! Turning one send request into carrier jobs and result records, without I/O.
//!
//! Given the positions reserved for the request, message `i` goes to
//! `schedule.carrier_at(start + i)`. Every output carries a `Nats-Msg-Id` derived from
//! the request (see [`rns_types::subjects::message_ids`]), so planning the same request
//! twice yields byte-identical publishes under the same ids.
use bytes::Bytes;
use rns_nats::Outbound;
use rns_types::compact::jobs::JobBatch;
use rns_types::routing::Schedule;
use rns_types::subjects::{carrier_lane_subject, message_ids, result_subject};
use rns_types::wire::{
    restore_traces, CarrierJob, EventKind, MessageEvent, MessageRecord, Points, Recipient,
    ResultBatch, SendRequest, WITHHELD_TEXT,
};
use rns_types::{CarrierId, CustomerId, MessageId, Priority, RequestId};

/// Most message records in one RESULTS message, to stay far below the server's
/// 1 MiB payload limit with 2,000-byte texts.
pub const RECORDS_PER_RESULT: usize = 250;

/// The first hop: the carrier chosen by weight. Failovers add one.
pub const FIRST_HOP: u16 = 1;

/// Everything one request publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub jobs: Vec<CarrierJob>,
    pub results: Vec<ResultBatch>,
}

/// Routes every recipient of `request` from position `start` of `schedule`; blocked
/// recipients get their final `blocked` event instead of a job.
pub fn plan(request: &SendRequest, schedule: &Schedule, start: u64, now_ms: u64) -> Plan {
    let carrier_of = |index: u32| schedule.carrier_at(start + u64::from(index)).clone();
    let results = result_batches(request, |index, message_id| {
        match recipient(request, index) {
            Some(_) => MessageEvent {
                message_id,
                at_ms: now_ms,
                accepted_at_ms: request.accepted_at_ms,
                kind: EventKind::Routed,
                carrier: Some(carrier_of(index)),
                hop: FIRST_HOP,
                attempt: 0,
                detail: String::new(),
                points: Points::default(),
                trace: request.trace,
            },
            None => blocked_event(request, message_id, now_ms),
        }
    });
    let jobs = request
        .recipients
        .iter()
        .enumerate()
        .map(|(index, recipient)| {
            let index = index as u32;
            let (message_type, text) = request.content_of(recipient);
            CarrierJob {
                message_id: request.request_id.message_id(index),
                customer_id: request.customer_id.clone(),
                accepted_at_ms: request.accepted_at_ms,
                carrier: carrier_of(index),
                hop: FIRST_HOP,
                message_type,
                from: request.from.clone(),
                to: recipient.to.clone(),
                subject: request.subject.clone(),
                text: text.to_owned(),
                tried: Vec::new(),
                channel: request.channel,
                points_reserved: recipient.points,
                price: request.prices.of(message_type),
                images: request.images.clone(),
                alimtalk: request.alimtalk.clone(),
                fallback: request.fallback_of(recipient),
                attempts_before: 0,
                ambiguous_since_ms: None,
                priority: request.priority,
                expires_at_ms: request
                    .valid_for_ms
                    .map(|valid_for_ms| request.accepted_at_ms.saturating_add(valid_for_ms)),
                trace: request.trace,
            }
        })
        .collect();
    Plan { jobs, results }
}

/// Records a final failure for every recipient, for a request that no carrier can
/// take (the channel has no carrier): it still ends in a final state, and its points
/// are refunded.
pub fn fail_all(request: &SendRequest, reason: &str, now_ms: u64) -> Vec<ResultBatch> {
    result_batches(request, |index, message_id| {
        match recipient(request, index) {
            Some(recipient) => MessageEvent {
                message_id,
                at_ms: now_ms,
                accepted_at_ms: request.accepted_at_ms,
                kind: EventKind::Failed,
                carrier: None,
                hop: FIRST_HOP,
                attempt: 0,
                detail: reason.to_owned(),
                points: Points {
                    reserved: recipient.points,
                    spent: 0,
                },
                trace: request.trace,
            },
            None => blocked_event(request, message_id, now_ms),
        }
    })
}

fn recipient(request: &SendRequest, index: u32) -> Option<&Recipient> {
    request.recipients.get(index as usize)
}

fn blocked_event(request: &SendRequest, message_id: MessageId, now_ms: u64) -> MessageEvent {
    MessageEvent {
        message_id,
        at_ms: now_ms,
        accepted_at_ms: request.accepted_at_ms,
        kind: EventKind::Blocked,
        carrier: None,
        hop: FIRST_HOP,
        attempt: 0,
        detail: "the recipient opted out of this sender number".to_owned(),
        points: Points::default(),
        trace: request.trace,
    }
}

/// The message records of `request` (recipients, then blocked ones) with one event
/// each, in chunks of [`RECORDS_PER_RESULT`].
fn result_batches(
    request: &SendRequest,
    mut event: impl FnMut(u32, MessageId) -> MessageEvent,
) -> Vec<ResultBatch> {
    let total = request.message_count();
    let mut batches = Vec::with_capacity(total.div_ceil(RECORDS_PER_RESULT));
    for chunk_start in (0..total).step_by(RECORDS_PER_RESULT) {
        let chunk_end = (chunk_start + RECORDS_PER_RESULT).min(total);
        let mut batch = ResultBatch {
            customer_id: request.customer_id.clone(),
            messages: Vec::with_capacity(chunk_end - chunk_start),
            events: Vec::with_capacity(chunk_end - chunk_start),
        };
        for index in chunk_start..chunk_end {
            let message_id = request.request_id.message_id(index as u32);
            let (to, message_type, text, points_reserved, fallback) =
                match request.recipients.get(index) {
                    Some(recipient) => {
                        let (message_type, text) = request.content_of(recipient);
                        let fallback = request.fallback_of(recipient);
                        (
                            &recipient.to,
                            message_type,
                            text,
                            recipient.points,
                            fallback,
                        )
                    }
                    None => (
                        &request.blocked[index - request.recipients.len()],
                        request.message_type,
                        request.text.as_str(),
                        0,
                        None,
                    ),
                };
            let mut record = MessageRecord {
                message_id,
                accepted_at_ms: request.accepted_at_ms,
                channel: request.channel,
                message_type,
                from: request.from.clone(),
                to: to.clone(),
                subject: request.subject.clone(),
                text: text.to_owned(),
                points_reserved,
                schedule_id: request.schedule_id.clone(),
                fallback,
            };
            if request.confidential {
                withhold(&mut record);
            }
            batch.messages.push(record);
            batch.events.push(event(index as u32, message_id));
        }
        batch.share_traces();
        batches.push(batch);
    }
    batches
}

/// A confidential request's record: its subjects and texts replaced by
/// [`WITHHELD_TEXT`] (the jobs keep them: the carriers deliver them).
fn withhold(record: &mut MessageRecord) {
    let withheld = || WITHHELD_TEXT.to_owned();
    record.text = withheld();
    record.subject = record.subject.as_ref().map(|_| withheld());
    if let Some(fallback) = &mut record.fallback {
        fallback.text = withheld();
        fallback.subject = fallback.subject.as_ref().map(|_| withheld());
    }
}

/// Most bytes of jobs in one batch message, far below the server's 1 MiB payload
/// limit whatever the texts.
pub const BATCH_BYTES: usize = 256 * 1024;

/// What a plan's publishes are named after: one request, or a SEND message that
/// gathered several requests of one customer (named by its first request).
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    Request(&'a RequestId),
    Gathered(&'a RequestId),
}

impl Origin<'_> {
    fn records(self, chunk: usize) -> String {
        match self {
            Origin::Request(request) => message_ids::accepted_records(request, chunk),
            Origin::Gathered(first) => message_ids::gathered_records(first, chunk),
        }
    }

    fn batch(self, carrier: &CarrierId, chunk: usize) -> String {
        match self {
            Origin::Request(request) => message_ids::carrier_batch(request, carrier, chunk),
            Origin::Gathered(first) => message_ids::gathered_carrier_batch(first, carrier, chunk),
        }
    }
}

/// The records and events of several plans of one customer, in order, in chunks of
/// [`RECORDS_PER_RESULT`].
pub fn merge_results(results: Vec<ResultBatch>) -> Vec<ResultBatch> {
    let Some(customer_id) = results.first().map(|batch| batch.customer_id.clone()) else {
        return Vec::new();
    };
    let mut messages = Vec::new();
    let mut events = Vec::new();
    for batch in results {
        messages.extend(batch.messages);
        events.extend(batch.events);
    }
    // Regrouped into new chunks, each must carry its traces anew.
    restore_traces(&mut events);
    let chunks = messages
        .len()
        .max(events.len())
        .div_ceil(RECORDS_PER_RESULT);
    let mut messages = messages.into_iter();
    let mut events = events.into_iter();
    (0..chunks)
        .map(|_| {
            let mut batch = ResultBatch {
                customer_id: customer_id.clone(),
                messages: messages.by_ref().take(RECORDS_PER_RESULT).collect(),
                events: events.by_ref().take(RECORDS_PER_RESULT).collect(),
            };
            batch.share_traces();
            batch
        })
        .collect()
}

/// The publishes of a plan: result records first, then the jobs.
///
/// With `job_batch` above 1, the jobs routed to one carrier travel in batches of up
/// to `job_batch` (and [`BATCH_BYTES`]), in plan order, under
/// [`message_ids::carrier_batch`]; a batch of one, and every job with an AlimTalk
/// fallback (its carrier's rejection leads straight to the fallback), travel alone.
pub fn outbound(
    request: &SendRequest,
    jobs: &[CarrierJob],
    results: &[ResultBatch],
    job_batch: usize,
) -> Vec<Outbound> {
    publishes(
        &request.customer_id,
        Origin::Request(&request.request_id),
        jobs,
        results,
        job_batch,
    )
}

/// The publishes of plans of one customer's requests, named after `origin`: as
/// [`outbound`], with one carrier's jobs of every request batched together.
pub fn publishes(
    customer: &CustomerId,
    origin: Origin<'_>,
    jobs: &[CarrierJob],
    results: &[ResultBatch],
    job_batch: usize,
) -> Vec<Outbound> {
    let mut messages = Vec::with_capacity(jobs.len() / job_batch.max(1) + results.len() + 4);
    for (chunk, batch) in results.iter().enumerate() {
        messages.push(Outbound {
            subject: result_subject(customer),
            message_id: origin.records(chunk),
            payload: Bytes::from(batch.encode()),
        });
    }
    let single = Outbound::carrier_job;
    if job_batch <= 1 {
        messages.extend(jobs.iter().map(single));
        return messages;
    }
    // Batches hold one carrier's jobs of one lane; chunks are numbered per carrier
    // across its lanes, so every batch id is distinct.
    let mut by_lane: Vec<((&CarrierId, Priority), Vec<&CarrierJob>)> = Vec::new();
    for job in jobs {
        if job.fallback.is_some() {
            messages.push(single(job));
            continue;
        }
        let lane = (&job.carrier, job.priority);
        match by_lane.iter_mut().find(|(key, _)| *key == lane) {
            Some((_, routed)) => routed.push(job),
            None => by_lane.push((lane, vec![job])),
        }
    }
    let mut chunks_used: Vec<(&CarrierId, usize)> = Vec::new();
    for ((carrier, priority), routed) in by_lane {
        let used = match chunks_used.iter().position(|(used, _)| *used == carrier) {
            Some(index) => index,
            None => {
                chunks_used.push((carrier, 0));
                chunks_used.len() - 1
            }
        };
        let mut chunk = chunks_used[used].1;
        let mut pending: Vec<&CarrierJob> = Vec::new();
        let mut payload = JobBatch::default();
        let mut flush = |pending: &mut Vec<&CarrierJob>, payload: &mut JobBatch| {
            match pending.len() {
                0 => {}
                1 => messages.push(single(pending[0])),
                _ => {
                    messages.push(Outbound {
                        subject: carrier_lane_subject(carrier, priority),
                        message_id: origin.batch(carrier, chunk),
                        payload: Bytes::from(payload.take()),
                    });
                }
            }
            chunk += 1;
            pending.clear();
            payload.take();
        };
        for job in routed {
            if pending.len() >= job_batch || !payload.push_within(job, BATCH_BYTES) {
                flush(&mut pending, &mut payload);
                payload.push(job);
            }
            pending.push(job);
        }
        flush(&mut pending, &mut payload);
        chunks_used[used].1 = chunk;
    }
    messages
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use rns_types::routing::Weights;
    use rns_types::{CarrierCatalog, Channel, CustomerId, MessageType, PhoneNumber, RequestId};

    use super::*;

    fn request(recipients: usize) -> SendRequest {
        SendRequest::sms(
            RequestId::generate(),
            CustomerId::parse("acme").unwrap(),
            PhoneNumber::parse("0212345678").unwrap(),
            "hi",
            (0..recipients)
                .map(|index| {
                    Recipient::new(PhoneNumber::parse(&format!("010{index:08}")).unwrap(), 1)
                })
                .collect(),
        )
    }

    fn schedule() -> Schedule {
        let raw: BTreeMap<String, u32> = [("kt", 50), ("skt", 30), ("lgu", 20)]
            .iter()
            .map(|(name, weight)| (name.to_string(), *weight))
            .collect();
        Schedule::new(
            &Weights::validate(&raw, Channel::Sms, &CarrierCatalog::korean_default()).unwrap(),
        )
    }

    #[test]
    fn a_thousand_recipients_split_exactly_and_records_are_chunked() {
        let request = request(1_000);
        let plan = plan(&request, &schedule(), 7, 2);
        let mut split: HashMap<&str, usize> = HashMap::new();
        for job in &plan.jobs {
            *split.entry(job.carrier.as_str()).or_insert(0) += 1;
        }
        assert_eq!(split["kt"], 500);
        assert_eq!(split["skt"], 300);
        assert_eq!(split["lgu"], 200);
        assert_eq!(plan.results.len(), 4);
        assert!(plan
            .results
            .iter()
            .all(|batch| batch.messages.len() == RECORDS_PER_RESULT));
        let ids: Vec<String> = plan
            .jobs
            .iter()
            .map(|job| job.message_id.to_string())
            .collect();
        assert_eq!(ids[999], format!("{}-999", request.request_id));
    }

    #[test]
    fn a_confidential_request_is_delivered_as_written_and_recorded_withheld() {
        let mut request = request(3);
        request.text = "인증번호 482913".to_owned();
        request.subject = Some("코드".to_owned());
        request.blocked = vec![PhoneNumber::parse("01099999999").unwrap()];
        request.confidential = true;
        let planned = plan(&request, &schedule(), 0, 2);
        assert_eq!(planned.jobs.len(), 3);
        assert!(planned
            .jobs
            .iter()
            .all(|job| job.text == "인증번호 482913" && job.subject.as_deref() == Some("코드")));
        let records: Vec<&MessageRecord> = planned
            .results
            .iter()
            .flat_map(|batch| &batch.messages)
            .collect();
        assert_eq!(records.len(), 4, "the blocked recipient's record too");
        for record in records {
            assert_eq!(record.text, WITHHELD_TEXT);
            assert_eq!(record.subject.as_deref(), Some(WITHHELD_TEXT));
        }
        request.confidential = false;
        let recorded = plan(&request, &schedule(), 0, 2);
        assert!(recorded.results[0]
            .messages
            .iter()
            .all(|record| record.text == "인증번호 482913"));
    }

    #[test]
    fn gathered_plans_share_records_and_batches_under_the_first_requests_name() {
        let requests = [request(100), request(200), request(1)];
        let mut jobs = Vec::new();
        let mut results = Vec::new();
        let mut start = 0;
        for request in &requests {
            let plan = plan(request, &schedule(), start, 2);
            start += request.recipients.len() as u64;
            jobs.extend(plan.jobs);
            results.extend(plan.results);
        }
        let merged = merge_results(results);
        let sizes: Vec<(usize, usize)> = merged
            .iter()
            .map(|batch| (batch.messages.len(), batch.events.len()))
            .collect();
        assert_eq!(sizes, [(250, 250), (51, 51)]);
        let order: Vec<MessageId> = merged
            .iter()
            .flat_map(|batch| batch.messages.iter().map(|record| record.message_id))
            .collect();
        let planned: Vec<MessageId> = jobs.iter().map(|job| job.message_id).collect();
        assert_eq!(order, planned);
        let first = &requests[0].request_id;
        let messages = publishes(
            &requests[0].customer_id,
            Origin::Gathered(first),
            &jobs,
            &merged,
            100,
        );
        let ids: Vec<&str> = messages
            .iter()
            .map(|message| message.message_id.as_str())
            .collect();
        let kt = CarrierId::parse("kt").unwrap();
        assert_eq!(ids[0], message_ids::gathered_records(first, 0));
        assert_eq!(ids[1], message_ids::gathered_records(first, 1));
        // 301 jobs at 50/30/20 from position 0: kt 151, skt 90, lgu 60.
        assert_eq!(messages.len(), 2 + 2 + 1 + 1);
        assert_eq!(ids[2], message_ids::gathered_carrier_batch(first, &kt, 0));
        let batched: usize = messages[2..]
            .iter()
            .map(|message| {
                rns_types::wire::CarrierPayload::decode(&message.payload)
                    .unwrap()
                    .job_count()
            })
            .sum();
        assert_eq!(batched, 301);
    }

    #[test]
    fn planning_twice_publishes_the_same_ids_and_bytes() {
        let request = request(300);
        let first = plan(&request, &schedule(), 3, 5);
        let second = plan(&request, &schedule(), 3, 5);
        let first = outbound(&request, &first.jobs, &first.results, 1);
        let second = outbound(&request, &second.jobs, &second.results, 1);
        assert_eq!(first.len(), 302);
        for (left, right) in first.iter().zip(&second) {
            assert_eq!(left.message_id, right.message_id);
            assert_eq!(left.subject, right.subject);
            assert_eq!(left.payload, right.payload);
        }
    }

    #[test]
    fn blocked_recipients_get_a_final_record_and_no_job_and_own_texts_travel() {
        let mut request = request(2);
        request.recipients[1].text = Some("hello Kim".into());
        request.recipients[1].message_type = Some(MessageType::Lms);
        request.blocked = vec![PhoneNumber::parse("01099999999").unwrap()];
        let plan = plan(&request, &schedule(), 0, 5);
        assert_eq!(plan.jobs.len(), 2);
        assert_eq!(plan.jobs[0].text, "hi");
        assert_eq!(plan.jobs[1].text, "hello Kim");
        assert_eq!(plan.jobs[1].price, 3, "an LMS costs its own price");
        assert_eq!(plan.jobs[1].points_reserved, 1);
        let batch = &plan.results[0];
        assert_eq!(batch.messages.len(), 3);
        assert_eq!(batch.messages[2].to.as_str(), "01099999999");
        assert_eq!(batch.events[2].kind, EventKind::Blocked);
        assert!(batch.events[2].points.is_none(), "blocked is never charged");
        let failed = fail_all(&request, "no carrier", 5);
        assert_eq!(failed[0].events[0].points.reserved, 1, "failures refund");
        assert_eq!(failed[0].events[2].kind, EventKind::Blocked);
    }

    /// Every job of `messages`, decoded, with how many travelled in batches.
    fn jobs_in(messages: &[Outbound]) -> (Vec<CarrierJob>, usize) {
        let mut jobs = Vec::new();
        let mut batches = 0;
        for message in messages
            .iter()
            .filter(|message| message.subject.starts_with("carrier."))
        {
            match rns_types::wire::CarrierPayload::decode(&message.payload).unwrap() {
                rns_types::wire::CarrierPayload::One(job) => {
                    assert_eq!(
                        message.message_id,
                        message_ids::carrier_job(&job.message_id, job.hop)
                    );
                    jobs.push(*job);
                }
                rns_types::wire::CarrierPayload::Batch(batch) => {
                    assert!(batch.len() > 1, "a batch of one travels alone");
                    assert!(message.payload.len() <= BATCH_BYTES);
                    assert!(batch
                        .iter()
                        .all(|job| message.subject
                            == carrier_lane_subject(&job.carrier, job.priority)));
                    batches += 1;
                    jobs.extend(batch);
                }
            }
        }
        (jobs, batches)
    }

    #[test]
    fn batches_carry_every_job_once_to_its_own_carrier() {
        let request = request(1_000);
        let plan = plan(&request, &schedule(), 11, 2);
        for job_batch in [1, 2, 7, 100, 128, 5_000] {
            let messages = outbound(&request, &plan.jobs, &plan.results, job_batch);
            let (mut jobs, batches) = jobs_in(&messages);
            jobs.sort_by_key(|job| job.message_id.index());
            assert_eq!(jobs, plan.jobs, "batch size {job_batch}");
            let expected_batches = if job_batch == 1 {
                0
            } else {
                [500usize, 300, 200]
                    .iter()
                    .map(|routed| routed / job_batch + usize::from(routed % job_batch > 1))
                    .sum()
            };
            assert_eq!(batches, expected_batches, "batch size {job_batch}");
            let ids: std::collections::HashSet<&str> = messages
                .iter()
                .map(|message| message.message_id.as_str())
                .collect();
            assert_eq!(ids.len(), messages.len(), "every publish has its own id");
        }
    }

    #[test]
    fn long_texts_and_fallbacks_bound_the_batches() {
        let mut request = request(300);
        request.text = "가".repeat(1_000);
        let plan = plan(&request, &schedule(), 0, 2);
        let messages = outbound(&request, &plan.jobs, &plan.results, 300);
        let (jobs, batches) = jobs_in(&messages);
        assert_eq!(jobs.len(), 300);
        assert!(batches > 3, "the byte bound splits what the count allows");
        let mut with_fallback = plan.jobs.clone();
        with_fallback[4].fallback = Some(rns_types::wire::Fallback {
            message_type: MessageType::Sms,
            subject: None,
            text: "fallback".into(),
            price: 1,
        });
        let messages = outbound(&request, &with_fallback, &[], 300);
        assert!(messages.iter().any(|message| {
            message.message_id == message_ids::carrier_job(&with_fallback[4].message_id, FIRST_HOP)
        }));
        assert_eq!(jobs_in(&messages).0.len(), 300);
    }
}
