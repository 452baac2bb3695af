//! The receipts library against a real nats-server, with no consumer reading
//! `RECEIPTS`: what a deadline does with a receipt that RNS stored before it but had
//! not read yet.
use std::time::Duration;

mod common;

use rns_carriers::failover::Failover;
use rns_carriers::receipts::{Handled, Receipts};
use rns_carriers::results::ResultSink;
use rns_nats::{publish_all, HealthView, Outbound};
use rns_testkit::NatsServer;
use rns_types::carrier::CarrierEntry;
use rns_types::receipt::{correlation_key, CarrierReceipt, ReceiptNotice, ReceiptState};
use rns_types::subjects::{
    message_ids, receipt_deadline_due_subject, receipt_deadline_subject, receipt_subject,
    RECEIPTS_STREAM,
};
use rns_types::wire::EventKind;
use rns_types::{CarrierCatalog, CarrierId, Channel};
use tokio_util::sync::CancellationToken;

/// The library over a fresh nats-server with KT's topology; receipts awaited 600 s.
struct Library {
    _nats: NatsServer,
    jetstream: async_nats::jetstream::Context,
    receipts: Receipts,
    _stop: tokio_util::sync::DropGuard,
}

fn kt() -> CarrierId {
    CarrierId::parse("kt").unwrap()
}

async fn start() -> Library {
    let nats = NatsServer::start().await;
    let jetstream = async_nats::jetstream::new(nats.client().await);
    let catalog = CarrierCatalog::new(vec![CarrierEntry {
        id: kt(),
        channel: Channel::Sms,
    }]);
    common::prepare(&jetstream, Default::default(), &catalog).await;
    let stop = CancellationToken::new();
    let health = HealthView::watch(&jetstream, stop.clone()).await.unwrap();
    let deadline = Duration::from_secs(600);
    let failover = Failover::new(jetstream.clone(), catalog, health, deadline)
        .await
        .unwrap();
    let (results, _published) = ResultSink::start(jetstream.clone(), 16);
    let receipts = Receipts::open(jetstream.clone(), results, failover, deadline)
        .await
        .unwrap();
    Library {
        _nats: nats,
        jetstream,
        receipts,
        _stop: stop.drop_guard(),
    }
}

/// A deadline that finds its message's receipt stored but not read yet (the
/// receipts consumer far behind) takes that receipt first, so the receipt decides;
/// reading it later changes nothing. It never waits for the consumer: deadlines put
/// back to wait once filled the consumer's in-flight window and kept the very
/// receipts they waited for from being delivered (79,490 deferrals in one run).
#[tokio::test]
async fn a_deadline_that_finds_its_receipt_stored_but_unread_takes_it_first() {
    let library = start().await;
    let (jetstream, receipts, kt) = (&library.jetstream, &library.receipts, kt());

    let job = common::sms_job("01012345678", "its receipt waits unread", 3);
    receipts
        .await_receipt(&job, 1, "kt-ref-1", &[])
        .await
        .unwrap();
    let receipt = delivered("kt-ref-1", "01012345678");
    publish_all(
        jetstream,
        [Outbound {
            subject: receipt_subject(&correlation_key(&kt, "kt-ref-1")),
            message_id: message_ids::carrier_job(&job.message_id, 99),
            payload: serde_json::to_vec(&receipt).unwrap().into(),
        }],
        1,
    )
    .await
    .unwrap();

    let came = ReceiptNotice::Deadline {
        carrier_reference: "kt-ref-1".into(),
        message: Some(job.message_id),
        hop: Some(job.hop),
        awaited: None,
    };
    assert_eq!(
        receipts.take(&kt, came.clone(), false).await.unwrap(),
        Handled::Stale,
        "the receipt settled it before the deadline looked"
    );
    let finals: Vec<EventKind> = common::recorded_events(jetstream)
        .await
        .into_iter()
        .filter(|event| event.message_id == job.message_id && event.kind.status().is_final())
        .map(|event| event.kind)
        .collect();
    assert_eq!(finals, [EventKind::Delivered]);
    assert_eq!(
        receipts.take(&kt, receipt, false).await.unwrap(),
        Handled::Duplicate,
        "read later, the receipt finds it taken"
    );
    assert_eq!(
        receipts.take(&kt, came, true).await.unwrap(),
        Handled::Stale
    );
}

/// A settlement stored but never applied (its process killed in between, the
/// receipt that settled it to be read again) must not vanish when a later message the
/// restarted SMSC gave the same reference takes the key over: the taker applies it
/// again first. (Lost 2 messages in an SMPP chaos run: the redelivered receipt found
/// the later message there and parked itself as early.)
#[tokio::test]
async fn a_settlement_never_applied_is_applied_before_a_later_message_takes_its_reference() {
    let library = start().await;
    let (jetstream, receipts, kt) = (&library.jetstream, &library.receipts, kt());

    let earlier = common::sms_job("01012340001", "settled, not applied", 3);
    let settled =
        rns_types::receipt::Correlation::Settled(Box::new(rns_types::receipt::Settlement {
            job: earlier.clone(),
            attempt: 1,
            kind: EventKind::Delivered,
            detail: "receipt from kt (stat:DELIVRD)".into(),
            at_ms: rns_types::time::now_milliseconds(),
        }));
    jetstream
        .get_key_value(rns_types::subjects::RECEIPT_CORRELATIONS_BUCKET)
        .await
        .unwrap()
        .put(
            correlation_key(&kt, "0000000007"),
            serde_json::to_vec(&settled).unwrap().into(),
        )
        .await
        .unwrap();
    let later = common::sms_job("01012340002", "given the same id", 3);
    receipts
        .await_receipt(&later, 1, "0000000007", &[])
        .await
        .unwrap();
    let finals: Vec<EventKind> = common::recorded_events(jetstream)
        .await
        .into_iter()
        .filter(|event| event.message_id == earlier.message_id && event.kind.status().is_final())
        .map(|event| event.kind)
        .collect();
    assert_eq!(finals, [EventKind::Delivered]);
}

/// A job redelivered after its deadline fired (the server took the schedule away and
/// stored the due notice) and before the notice was handled (which leaves the
/// accepted entry in the schedule's place) was accepted all the same: resuming it
/// finds the notice. Answering "never accepted" there ended a message `unknown`
/// beside the `delivered` its deadline then settled (two SMPP chaos runs).
#[tokio::test]
async fn a_job_redelivered_while_its_fired_deadline_waits_unread_was_accepted() {
    let library = start().await;
    let (jetstream, receipts) = (&library.jetstream, &library.receipts);

    let job = common::sms_job("01012349999", "its deadline fired", 3);
    receipts
        .await_receipt(&job, 1, "kt-ref-9", &[])
        .await
        .unwrap();
    fire_deadline(jetstream, &job).await;

    assert!(
        receipts.resume(&job).await.unwrap(),
        "a job whose deadline is due and unread was accepted"
    );
    let never = common::sms_job("01012348888", "never submitted", 3);
    assert!(
        !receipts.resume(&never).await.unwrap(),
        "a job with no deadline anywhere was never accepted"
    );
}

/// A message settled by its receipt whose deadline fires while a later message the
/// restarted SMSC gave the same reference takes the key over: the deadline finds the
/// later message there and must not take its own message for never correlated (and
/// end it `unknown` beside its `delivered`: 52 messages in one SMPP chaos run).
#[tokio::test]
async fn a_deadline_fired_as_a_later_message_takes_its_reference_leaves_its_settlement() {
    rns_service::metrics::handle();
    let library = start().await;
    let (jetstream, receipts, kt) = (&library.jetstream, &library.receipts, kt());

    let earlier = common::sms_job("01012340010", "delivered", 3);
    receipts
        .await_receipt(&earlier, 1, "0000000295", &[])
        .await
        .unwrap();
    assert_eq!(
        receipts
            .take(&kt, delivered("0000000295", "01012340010"), false)
            .await
            .unwrap(),
        Handled::Settled
    );
    let due = fire_deadline(jetstream, &earlier).await;
    let later = common::sms_job("01012340020", "same reference, after a restart", 3);
    receipts
        .await_receipt(&later, 1, "0000000295", &[])
        .await
        .unwrap();

    assert_eq!(
        receipts.take(&kt, due, false).await.unwrap(),
        Handled::Stale
    );
    // (RESULTS would drop a second final of a lone outcome as a repeat; gathered
    // with others, as under load, it is stored: the counter tells.)
    let counted = rns_service::metrics::render();
    assert!(
        !counted.contains("never_correlated"),
        "the deadline took its message for never correlated: {counted}"
    );
    let finals: Vec<EventKind> = common::recorded_events(jetstream)
        .await
        .into_iter()
        .filter(|event| event.message_id == earlier.message_id && event.kind.status().is_final())
        .map(|event| event.kind)
        .collect();
    assert_eq!(
        finals,
        [EventKind::Delivered],
        "settled once, by its receipt"
    );
}

/// A `DELIVRD` receipt of the message `reference` sent to `handset`, received now.
fn delivered(reference: &str, handset: &str) -> ReceiptNotice {
    ReceiptNotice::Receipt {
        receipt: CarrierReceipt {
            carrier_reference: reference.into(),
            state: ReceiptState::Delivered,
            detail: Some("stat:DELIVRD".into()),
            handset: Some(handset.into()),
        },
        received_at_ms: rns_types::time::now_milliseconds(),
    }
}

/// Does what the server does when `job`'s receipt deadline is due: stores the notice
/// its schedule carries on the schedule's target, then purges the schedule. Returns
/// the notice.
async fn fire_deadline(
    jetstream: &async_nats::jetstream::Context,
    job: &rns_types::wire::CarrierJob,
) -> ReceiptNotice {
    let scheduled = receipt_deadline_subject(&job.carrier, &job.message_id, job.hop);
    let stream = jetstream.get_stream(RECEIPTS_STREAM).await.unwrap();
    let schedule = stream
        .get_last_raw_message_by_subject(&scheduled)
        .await
        .unwrap();
    publish_all(
        jetstream,
        [Outbound {
            subject: receipt_deadline_due_subject(&job.carrier, &job.message_id, job.hop),
            message_id: String::new(),
            payload: schedule.payload.clone(),
        }],
        1,
    )
    .await
    .unwrap();
    stream.purge().filter(&scheduled).await.unwrap();
    assert!(
        stream
            .get_last_raw_message_by_subject(&scheduled)
            .await
            .is_err(),
        "the schedule is gone"
    );
    serde_json::from_slice(&schedule.payload).unwrap()
}
