//! SMPP carriers against SMSCs this project did not write (node-smpp's server and
//! smpp34's, see `testkit/smsc`), a real nats-server and Redis: submits are coded and
//! split as the SMSC reads them, receipts in `deliver_sm` settle messages, throttling
//! is waited out, and a carrier whose binds drop is routed around until it binds again.
//! What both SMSCs can do is tested against both.
use std::time::Duration;

mod common;

use rns_carriers::smpp::{SmppBind, SmppDataCoding, SmppLongMessages, SmppSettings};
use rns_carriers::{CarrierKind, CarrierSettings, Settings, WorkerSettings};
use rns_nats::{publish_all, HealthView, Outbound};
use rns_service::{NatsSettings, Readiness, RedisSettings, Secret};
use rns_testkit::{
    spare_port, wait_until, NatsServer, RedisServer, SmscImplementation, SmscServer, SMSC_PASSWORD,
    SMSC_SYSTEM_ID,
};
use rns_types::carrier::CarrierEntry;
use rns_types::inbound::Inbound;
use rns_types::wire::{CarrierJob, EventKind, MessageEvent};
use rns_types::{CarrierCatalog, CarrierId, Channel};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

struct Harness {
    _nats: NatsServer,
    _redis: RedisServer,
    smsc: SmscServer,
    jetstream: async_nats::jetstream::Context,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn kt() -> CarrierId {
    CarrierId::parse("kt").unwrap()
}

/// KT over SMPP to a fresh node-smpp SMSC (two sessions of window 10, 64 submits in
/// flight, 2 s answers, receipts awaited 30 s), its worker running.
async fn start() -> Harness {
    start_with(SmscImplementation::NodeSmpp).await
}

async fn start_with(implementation: SmscImplementation) -> Harness {
    start_configured(Configured {
        implementation,
        ..Configured::default()
    })
    .await
}

/// What a test may change of the harness.
struct Configured {
    implementation: SmscImplementation,
    receipt_deadline_seconds: u64,
    data_coding: SmppDataCoding,
    bind: SmppBind,
    long_messages: SmppLongMessages,
    /// SMPP over TLS, to an SMSC whose certificate a private CA signed.
    tls: bool,
}

impl Default for Configured {
    fn default() -> Self {
        Self {
            implementation: SmscImplementation::NodeSmpp,
            receipt_deadline_seconds: 30,
            data_coding: SmppDataCoding::Ucs2,
            bind: SmppBind::Transceiver,
            long_messages: SmppLongMessages::Udh,
            tls: false,
        }
    }
}

async fn start_configured(configured: Configured) -> Harness {
    let Configured {
        implementation,
        receipt_deadline_seconds,
        data_coding,
        bind,
        long_messages,
        tls,
    } = configured;
    let connections = match bind {
        SmppBind::Transceiver => 2,
        SmppBind::TransmitterAndReceiver => 4,
    };
    let smsc = async {
        if tls {
            SmscServer::start_tls().await
        } else {
            SmscServer::start_with(implementation).await
        }
    };
    let (nats, redis, smsc) = tokio::join!(NatsServer::start(), RedisServer::start(), smsc);
    let carrier = CarrierSettings {
        id: kt(),
        channel: Channel::Sms,
        kind: CarrierKind::Smpp,
        endpoint: String::new(),
        smpp: Some(SmppSettings {
            host: "127.0.0.1".into(),
            port: smsc.smpp_port(),
            system_id: SMSC_SYSTEM_ID.into(),
            password: Secret::Inline(SMSC_PASSWORD.into()),
            system_type: String::new(),
            sessions: 2,
            window: 10,
            enquire_link_seconds: 1,
            tls,
            ca_file: smsc.tls_authority().map(Into::into),
            data_coding,
            bind,
            long_messages,
        }),
        concurrency: 64,
        request_timeout_milliseconds: 2_000,
        batch_size: 1,
        batches_in_flight: 1,
        health_url: None,
        rate_per_second: None,
        receipt_token: None,
    };
    let mut settings = Settings {
        nats: NatsSettings {
            url: nats.url(),
            ..Default::default()
        },
        redis: RedisSettings { url: redis.url() },
        carriers: Some(vec![carrier]),
        carrier_workers: WorkerSettings {
            retry_backoff_milliseconds: vec![100],
            receipt_deadline_seconds,
            receipts_listen: format!("127.0.0.1:{}", spare_port()),
            ..Default::default()
        },
        ..Default::default()
    };
    settings.nats.topology.carrier_max_deliver = 3;
    let jetstream = async_nats::jetstream::new(nats.client().await);
    let catalog = CarrierCatalog::new(vec![CarrierEntry {
        id: kt(),
        channel: Channel::Sms,
    }]);
    common::prepare(&jetstream, settings.nats.topology.clone(), &catalog).await;
    let shutdown = CancellationToken::new();
    tokio::spawn(rns_carriers::run(
        settings,
        Readiness::default(),
        shutdown.clone(),
    ));
    let harness = Harness {
        _nats: nats,
        _redis: redis,
        smsc,
        jetstream,
        shutdown,
    };
    wait_until("both sessions bound", Duration::from_secs(20), || async {
        counts(&harness).await["binds"].as_u64() == Some(connections)
    })
    .await;
    harness
}

async fn counts(harness: &Harness) -> Value {
    serde_json::from_str(&harness.smsc.counts().await).unwrap()
}

async fn messages(harness: &Harness) -> Vec<Value> {
    serde_json::from_str(&harness.smsc.messages().await).unwrap()
}

fn job(to: &str, text: &str) -> CarrierJob {
    common::sms_job(to, text, 3)
}

async fn enqueue(harness: &Harness, job: &CarrierJob) {
    publish_all(&harness.jetstream, [Outbound::carrier_job(job)], 1)
        .await
        .unwrap();
}

async fn events(harness: &Harness) -> Vec<MessageEvent> {
    common::recorded_events(&harness.jetstream).await
}

/// The final event of `job`'s message, once there is one.
async fn final_event(harness: &Harness, job: &CarrierJob) -> MessageEvent {
    let of_job =
        |event: &MessageEvent| event.message_id == job.message_id && event.kind.status().is_final();
    wait_until("a final state", Duration::from_secs(30), || async {
        events(harness).await.iter().any(of_job)
    })
    .await;
    events(harness)
        .await
        .into_iter()
        .find(of_job)
        .expect("it was there")
}

#[tokio::test]
async fn a_korean_sms_is_submitted_in_ucs2_and_its_receipt_delivers_it() {
    korean_sms(SmscImplementation::NodeSmpp).await;
}

#[tokio::test]
async fn a_korean_sms_through_smpp34_is_submitted_in_ucs2_and_its_receipt_delivers_it() {
    korean_sms(SmscImplementation::Smpp34).await;
}

async fn korean_sms(implementation: SmscImplementation) {
    let harness = start_with(implementation).await;
    let sent = job("01012345678", "안녕하세요, RNS입니다.");
    enqueue(&harness, &sent).await;
    let delivered = final_event(&harness, &sent).await;
    assert_eq!(delivered.kind, EventKind::Delivered, "{delivered:?}");
    assert_eq!((delivered.points.reserved, delivered.points.spent), (3, 3));
    assert!(delivered.detail.contains("stat:DELIVRD"), "{delivered:?}");
    let taken = messages(&harness).await;
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0]["text"], "안녕하세요, RNS입니다.");
    assert_eq!(taken[0]["data_coding"], 8, "UCS-2");
    assert_eq!(taken[0]["destination"], "01012345678");
    let submitted = events(&harness)
        .await
        .into_iter()
        .find(|event| event.kind == EventKind::Submitted)
        .expect("submitted first");
    assert_eq!(
        Value::String(submitted.detail),
        taken[0]["id"],
        "the SMSC's message id is the carrier reference"
    );
}

#[tokio::test]
async fn a_long_korean_message_travels_in_concatenated_parts_and_is_settled_once() {
    long_korean_message(SmscImplementation::NodeSmpp).await;
}

#[tokio::test]
async fn a_long_korean_message_through_smpp34_travels_in_concatenated_parts_and_is_settled_once() {
    long_korean_message(SmscImplementation::Smpp34).await;
}

async fn long_korean_message(implementation: SmscImplementation) {
    let harness = start_with(implementation).await;
    let text = "가나다라마바사아자차카타파하".repeat(12);
    let sent = job("01012345678", &text);
    enqueue(&harness, &sent).await;
    let delivered = final_event(&harness, &sent).await;
    assert_eq!(delivered.kind, EventKind::Delivered, "{delivered:?}");
    let parts = messages(&harness).await;
    assert!(parts.len() >= 3, "{} parts", parts.len());
    let total = parts.len();
    assert!(parts.iter().all(|part| part["parts"] == total), "{parts:?}");
    let joined: String = parts
        .iter()
        .map(|part| part["text"].as_str().unwrap())
        .collect();
    assert_eq!(joined, text, "the parts put together are the text");
    assert_eq!(
        counts(&harness).await["receipts_sent"],
        total,
        "a receipt is asked for on every part"
    );
    assert_eq!(
        final_events(&harness, &sent).await.len(),
        1,
        "settled once, by the last part's receipt"
    );
}

/// The final events recorded for `job`'s message.
async fn final_events(harness: &Harness, job: &CarrierJob) -> Vec<MessageEvent> {
    events(harness)
        .await
        .into_iter()
        .filter(|event| event.message_id == job.message_id && event.kind.status().is_final())
        .collect()
}

/// Queues the copy of `sent` that a split of its redelivered batch queues (attempt
/// 1's outcome unknown, under an id of its own), and waits until it was taken.
async fn queue_a_copy(harness: &Harness, sent: &CarrierJob) {
    let copy = CarrierJob {
        attempts_before: 1,
        ..sent.clone()
    };
    let mut outbound = Outbound::carrier_job(&copy);
    outbound.message_id.push_str(":copy");
    publish_all(&harness.jetstream, [outbound], 1)
        .await
        .unwrap();
    let queue = rns_types::subjects::carrier_stream(&kt());
    wait_until("the copy was taken", Duration::from_secs(20), || async {
        let mut stream = harness.jetstream.get_stream(&queue).await.unwrap();
        stream.info().await.unwrap().state.messages == 0
    })
    .await;
}

fn long_text() -> String {
    "가나다라마바사아자차카타파하".repeat(12)
}

#[tokio::test]
async fn a_long_message_one_of_whose_parts_is_undeliverable_is_undeliverable_and_refunded() {
    let harness = start().await;
    harness.smsc.set_knobs(r#"{"undeliverable_part": 2}"#).await;
    let sent = job("01012345678", &long_text());
    enqueue(&harness, &sent).await;
    let ended = final_event(&harness, &sent).await;
    assert_eq!(ended.kind, EventKind::Undeliverable, "{ended:?}");
    assert_eq!((ended.points.reserved, ended.points.spent), (3, 0));
    assert!(ended.detail.contains("stat:UNDELIV"), "{ended:?}");
    // The parts' receipts after it are duplicates of a settled message.
    wait_until(
        "every part's receipt taken",
        Duration::from_secs(20),
        || async {
            let counts = counts(&harness).await;
            counts["receipts_acknowledged"] == counts["accepted"]
        },
    )
    .await;
    assert_eq!(final_events(&harness, &sent).await.len(), 1);
}

#[tokio::test]
async fn early_and_duplicated_part_receipts_settle_a_long_message_once() {
    let harness = start().await;
    harness
        .smsc
        .set_knobs(r#"{"early_rate": 1.0, "duplicate_rate": 1.0}"#)
        .await;
    let sent = job("01012345678", &long_text());
    enqueue(&harness, &sent).await;
    assert_eq!(
        final_event(&harness, &sent).await.kind,
        EventKind::Delivered
    );
    let parts = messages(&harness).await.len() as u64;
    wait_until(
        "every copy of every receipt taken",
        Duration::from_secs(20),
        || async { counts(&harness).await["receipts_acknowledged"].as_u64() == Some(2 * parts) },
    )
    .await;
    assert_eq!(final_events(&harness, &sent).await.len(), 1);
}

#[tokio::test]
async fn a_long_message_missing_one_parts_receipt_is_unknown_at_its_deadline() {
    let harness = start_configured(Configured {
        receipt_deadline_seconds: 3,
        ..Configured::default()
    })
    .await;
    harness.smsc.set_knobs(r#"{"lost_part": 1}"#).await;
    let sent = job("01012345678", &long_text());
    enqueue(&harness, &sent).await;
    let ended = final_event(&harness, &sent).await;
    assert_eq!(ended.kind, EventKind::Unknown, "{ended:?}");
    assert_eq!((ended.points.reserved, ended.points.spent), (3, 3));
    let counts = counts(&harness).await;
    assert_eq!(counts["receipts_lost"], 1, "{counts}");
    assert!(
        counts["receipts_acknowledged"].as_u64() >= Some(2),
        "the other parts' receipts came and did not settle it: {counts}"
    );
}

/// SMPP over TLS to an SMSC whose certificate the carrier's private CA signed
/// (`ca_file`): the sessions bind and a message is delivered by its receipt.
#[tokio::test]
async fn sessions_bind_over_tls_trusting_the_carriers_own_certificate_authority() {
    let harness = start_configured(Configured {
        tls: true,
        ..Configured::default()
    })
    .await;
    let sent = job("01012345678", "암호화된 연결");
    enqueue(&harness, &sent).await;
    let delivered = final_event(&harness, &sent).await;
    assert_eq!(delivered.kind, EventKind::Delivered, "{delivered:?}");
    assert_eq!(messages(&harness).await[0]["text"], "암호화된 연결");
}

/// A carrier that prefers `message_payload` gets a long text whole in one submit_sm,
/// and one receipt settles it.
#[tokio::test]
async fn a_long_text_goes_whole_in_message_payload_where_the_carrier_prefers_it() {
    let harness = start_configured(Configured {
        long_messages: SmppLongMessages::MessagePayload,
        ..Configured::default()
    })
    .await;
    let text = long_text();
    let sent = job("01012345678", &text);
    enqueue(&harness, &sent).await;
    let delivered = final_event(&harness, &sent).await;
    assert_eq!(delivered.kind, EventKind::Delivered, "{delivered:?}");
    let taken = messages(&harness).await;
    assert_eq!(taken.len(), 1, "one submit_sm: {taken:?}");
    assert_eq!(
        (
            &taken[0]["message_payload"],
            &taken[0]["text"],
            &taken[0]["data_coding"]
        ),
        (
            &Value::Bool(true),
            &Value::from(text.as_str()),
            &Value::from(8)
        ),
    );
}

/// A carrier that asks for EUC-KR gets it (70 Korean characters a part, cut between
/// characters), and UCS-2 for a text EUC-KR cannot carry.
#[tokio::test]
async fn a_carrier_that_asks_for_euc_kr_gets_it_and_ucs2_when_it_cannot_carry_the_text() {
    let harness = start_configured(Configured {
        data_coding: SmppDataCoding::EucKr,
        ..Configured::default()
    })
    .await;
    let text = format!("RNS {}", long_text());
    let korean = job("01012345678", &text);
    let emoji = job("01087654321", "감사합니다 🙏");
    enqueue(&harness, &korean).await;
    enqueue(&harness, &emoji).await;
    for sent in [&korean, &emoji] {
        let ended = final_event(&harness, sent).await;
        assert_eq!(ended.kind, EventKind::Delivered, "{ended:?}");
    }
    let taken = messages(&harness).await;
    let of = |to: &str| -> Vec<&Value> {
        taken
            .iter()
            .filter(|part| part["destination"] == to)
            .collect()
    };
    let parts = of("01012345678");
    assert!(
        parts.iter().all(|part| part["data_coding"] == 14),
        "KS C 5601: {parts:?}"
    );
    assert_eq!(parts.len(), 3, "172 characters at 70 Korean a part");
    let joined: String = parts
        .iter()
        .map(|part| part["text"].as_str().unwrap())
        .collect();
    assert_eq!(joined, text);
    let fallback = of("01087654321");
    assert_eq!(
        (&fallback[0]["data_coding"], &fallback[0]["text"]),
        (&Value::from(8), &Value::from("감사합니다 🙏")),
        "UCS-2 for what EUC-KR has no code for"
    );
}

#[tokio::test]
async fn throttling_answers_are_waited_out_and_an_undeliverable_receipt_refunds() {
    throttling_and_undeliverable(SmscImplementation::NodeSmpp).await;
}

#[tokio::test]
async fn smpp34_throttling_answers_are_waited_out_and_an_undeliverable_receipt_refunds() {
    throttling_and_undeliverable(SmscImplementation::Smpp34).await;
}

async fn throttling_and_undeliverable(implementation: SmscImplementation) {
    let harness = start_with(implementation).await;
    harness
        .smsc
        .set_knobs(r#"{"throttle_rate": 0.5, "undeliverable_rate": 1.0}"#)
        .await;
    // Sixteen, so that none throttled (one chance in 65,536) does not fail the test:
    // eight once went through unthrottled (one chance in 256).
    let jobs: Vec<CarrierJob> = (0..16)
        .map(|index| job(&format!("010{index:08}"), "hello"))
        .collect();
    for job in &jobs {
        enqueue(&harness, job).await;
    }
    for job in &jobs {
        let ended = final_event(&harness, job).await;
        assert_eq!(ended.kind, EventKind::Undeliverable, "{ended:?}");
        assert_eq!((ended.points.reserved, ended.points.spent), (3, 0));
    }
    let counts = counts(&harness).await;
    assert!(counts["throttled"].as_u64().unwrap() > 0, "{counts}");
    assert!(
        events(&harness)
            .await
            .iter()
            .all(|event| event.kind != EventKind::AttemptFailed),
        "throttling is no failed attempt"
    );
}

#[tokio::test]
async fn a_carrier_whose_binds_drop_opens_its_circuit_and_a_rebind_closes_it() {
    let harness = start().await;
    let health = HealthView::watch(&harness.jetstream, harness.shutdown.clone())
        .await
        .unwrap();
    harness.smsc.set_knobs(r#"{"refuse_binds": true}"#).await;
    harness.smsc.drop_sessions().await;
    let waiting = job("01012345678", "after the drop");
    enqueue(&harness, &waiting).await;
    wait_until("KT's circuit opening", Duration::from_secs(20), || async {
        health.is_open(&kt())
    })
    .await;
    // The session tries to bind again and is refused: the fault is felt.
    wait_until("a refused rebind", Duration::from_secs(20), || async {
        counts(&harness).await["refused_binds"].as_u64() > Some(0)
    })
    .await;
    harness.smsc.set_knobs(r#"{"refuse_binds": false}"#).await;
    wait_until("KT's circuit closing", Duration::from_secs(40), || async {
        !health.is_open(&kt())
    })
    .await;
    let again = job("01087654321", "after the rebind");
    enqueue(&harness, &again).await;
    assert_eq!(
        final_event(&harness, &again).await.kind,
        EventKind::Delivered
    );
}

/// For an SMSC without transceivers: each session is a transmitter for submits and a
/// receiver for receipts and messages from handsets.
#[tokio::test]
async fn transmitter_and_receiver_binds_submit_on_one_and_take_receipts_on_the_other() {
    let harness = start_configured(Configured {
        bind: SmppBind::TransmitterAndReceiver,
        ..Configured::default()
    })
    .await;
    let sent = job("01012345678", "두 개의 연결");
    enqueue(&harness, &sent).await;
    let delivered = final_event(&harness, &sent).await;
    assert_eq!(delivered.kind, EventKind::Delivered, "{delivered:?}");
    assert_eq!(
        harness
            .smsc
            .mobile_originated("01055550001", "0801234567", "수신거부")
            .await,
        0,
        "a handset's message is taken on a receiver"
    );
    let counts = counts(&harness).await;
    assert_eq!(
        (counts["binds"].as_u64(), counts["accepted"].as_u64()),
        (Some(4), Some(1)),
        "two transmitters and two receivers: {counts}"
    );
}

/// A `generic_nack` in answer to a submit is the SMSC refusing it (here a system
/// error, so the message is submitted again, and delivered).
#[tokio::test]
async fn a_submit_answered_with_a_generic_nack_is_refused_by_its_status() {
    let harness = start().await;
    harness
        .smsc
        .set_knobs(r#"{"generic_nack_submits": 1}"#)
        .await;
    let sent = job("01012345678", "nacked once");
    enqueue(&harness, &sent).await;
    let delivered = final_event(&harness, &sent).await;
    assert_eq!(delivered.kind, EventKind::Delivered, "{delivered:?}");
    let failed: Vec<MessageEvent> = events(&harness)
        .await
        .into_iter()
        .filter(|event| event.kind == EventKind::AttemptFailed)
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "the nacked attempt is recorded: {failed:?}"
    );
    let counts = counts(&harness).await;
    assert_eq!(
        (
            counts["generic_nacks"].as_u64(),
            counts["accepted"].as_u64()
        ),
        (Some(1), Some(1)),
        "{counts}"
    );
}

/// A session whose `enquire_link`s go unanswered is taken for dead: it is closed and
/// bound again, and messages keep flowing.
#[tokio::test]
async fn a_session_whose_enquire_links_go_unanswered_is_bound_again() {
    let harness = start().await;
    harness
        .smsc
        .set_knobs(r#"{"answer_enquire_links": false}"#)
        .await;
    wait_until(
        "a rebind after unanswered enquire_links",
        Duration::from_secs(30),
        || async {
            let counts = counts(&harness).await;
            counts["unanswered_enquire_links"].as_u64() > Some(0)
                && counts["binds"].as_u64() > Some(2)
        },
    )
    .await;
    harness
        .smsc
        .set_knobs(r#"{"answer_enquire_links": true}"#)
        .await;
    let after = job("01012345678", "still flowing");
    enqueue(&harness, &after).await;
    assert_eq!(
        final_event(&harness, &after).await.kind,
        EventKind::Delivered
    );
}

/// smpp34's SMSC ends every bind with an `unbind` of its own: the sessions bind again
/// and what was sent meanwhile is delivered.
#[tokio::test]
async fn binds_the_smpp34_smsc_ends_are_made_again_and_nothing_is_lost() {
    let harness = start_with(SmscImplementation::Smpp34).await;
    harness.smsc.drop_sessions().await;
    let jobs: Vec<CarrierJob> = (0..6)
        .map(|index| job(&format!("010{index:08}"), "across the unbind"))
        .collect();
    for job in &jobs {
        enqueue(&harness, job).await;
    }
    wait_until(
        "both sessions bound again",
        Duration::from_secs(30),
        || async { counts(&harness).await["binds"].as_u64() >= Some(4) },
    )
    .await;
    for job in &jobs {
        assert_eq!(final_event(&harness, job).await.kind, EventKind::Delivered);
    }
    let counts = counts(&harness).await;
    assert_eq!(counts["dropped_sessions"], 2, "{counts}");
    assert_eq!(
        counts["accepted"], 6,
        "each message taken once across the unbind: {counts}"
    );
}

#[tokio::test]
async fn each_session_keeps_at_most_its_window_of_submits_awaiting_answers() {
    let harness = start().await;
    harness
        .smsc
        .set_knobs(r#"{"answer_delay_milliseconds": 300}"#)
        .await;
    let jobs: Vec<CarrierJob> = (0..60)
        .map(|index| job(&format!("010{index:08}"), "windowed"))
        .collect();
    for job in &jobs {
        enqueue(&harness, job).await;
    }
    for job in &jobs {
        assert_eq!(final_event(&harness, job).await.kind, EventKind::Delivered);
    }
    let most = counts(&harness).await["max_outstanding"].as_u64().unwrap();
    assert!(
        (5..=10).contains(&most),
        "submits awaiting answers on one session: {most} (window 10; asynchronous, so more than one)"
    );
}

#[tokio::test]
async fn a_message_from_a_handset_is_stored_in_inbound_before_it_is_acknowledged() {
    let harness = start().await;
    let status = harness
        .smsc
        .mobile_originated("01055550001", "0801234567", "수신거부")
        .await;
    assert_eq!(status, 0, "ESME_ROK once stored");
    let stream = harness
        .jetstream
        .get_stream(rns_types::subjects::INBOUND_STREAM)
        .await
        .unwrap();
    let stored = stream
        .get_last_raw_message_by_subject("inbound.kt")
        .await
        .expect("stored before the answer");
    let inbound: Inbound = serde_json::from_slice(&stored.payload).unwrap();
    let Inbound::MobileOriginated(message) = inbound;
    assert_eq!(
        (
            message.from.as_str(),
            message.to.as_str(),
            message.text.as_str()
        ),
        ("01055550001", "0801234567", "수신거부"),
        "read as UCS-2"
    );
    assert_eq!(message.carrier, kt());
}

/// SMPP has no client reference: an SMSC that never answered a submit_sm may have
/// taken it, and a second submit could reach the handset twice.
#[tokio::test]
async fn an_unanswered_submit_is_never_made_again_and_ends_unknown() {
    let harness = start().await;
    harness.smsc.set_knobs(r#"{"unanswered_rate": 1.0}"#).await;
    let sent = job("01012345678", "no answer");
    enqueue(&harness, &sent).await;
    let ended = final_event(&harness, &sent).await;
    assert_eq!(ended.kind, EventKind::Unknown, "{ended:?}");
    assert_eq!(
        (ended.points.reserved, ended.points.spent),
        (3, 3),
        "charged"
    );
    assert!(ended.detail.contains("not sent again"), "{ended:?}");
    harness.smsc.set_knobs(r#"{"unanswered_rate": 0.0}"#).await;
    let after = job("01087654321", "answered again");
    enqueue(&harness, &after).await;
    assert_eq!(
        final_event(&harness, &after).await.kind,
        EventKind::Delivered
    );
    let counts = counts(&harness).await;
    assert_eq!(
        (counts["unanswered"].as_u64(), counts["submits"].as_u64()),
        (Some(1), Some(2)),
        "the unanswered message was submitted once: {counts}"
    );
}

/// An SMSC that restarts counts its message ids from the start again, so a later
/// message may get the id of an earlier one. The later message takes the earlier
/// one's correlation over: one settled already is replaced; one still awaiting its
/// receipt ends `unknown` (the receipt that comes could be either's), and its
/// deadline, which names it, leaves the later message alone.
#[tokio::test]
async fn a_message_given_an_earlier_messages_id_after_an_smsc_restart_is_settled_by_its_own_receipt(
) {
    let mut harness = start_configured(Configured {
        receipt_deadline_seconds: 10,
        ..Configured::default()
    })
    .await;
    let first = job("01011110001", "first");
    enqueue(&harness, &first).await;
    assert_eq!(
        final_event(&harness, &first).await.kind,
        EventKind::Delivered
    );
    // The second's receipt never comes: it awaits it.
    harness.smsc.set_knobs(r#"{"loss_rate": 1.0}"#).await;
    let second = job("01011110002", "second");
    enqueue(&harness, &second).await;
    wait_until("the second submitted", Duration::from_secs(30), || async {
        events(&harness).await.iter().any(|event| {
            event.message_id == second.message_id && event.kind == EventKind::Submitted
        })
    })
    .await;
    let second_submitted = std::time::Instant::now();
    harness.smsc.restart().await;

    // The first's id again: its settled correlation gives way.
    let third = job("01011110003", "third");
    enqueue(&harness, &third).await;
    let delivered = final_event(&harness, &third).await;
    assert_eq!(delivered.kind, EventKind::Delivered, "{delivered:?}");

    // The second's id again, while it awaits; its receipt comes 8.5 s later: after
    // the second's deadline, before its own.
    harness
        .smsc
        .set_knobs(r#"{"receipt_delay_milliseconds": 8500}"#)
        .await;
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(second_submitted.elapsed())).await;
    let fourth = job("01011110004", "fourth");
    enqueue(&harness, &fourth).await;
    let ended = final_event(&harness, &second).await;
    assert_eq!(ended.kind, EventKind::Unknown, "{ended:?}");
    assert!(ended.detail.contains("gave its id"), "{ended:?}");
    let delivered = final_event(&harness, &fourth).await;
    assert_eq!(delivered.kind, EventKind::Delivered, "{delivered:?}");
    assert!(
        second_submitted.elapsed() > Duration::from_secs(10),
        "the second's deadline came while the fourth awaited its receipt"
    );
    let taken = messages(&harness).await;
    assert_eq!(
        (taken[0]["id"].as_str(), taken[1]["id"].as_str()),
        (Some("0000000001"), Some("0000000002")),
        "the restarted SMSC gave the first two ids again: {taken:?}"
    );
    // The first's deadline has come since, and a copy of its job (its batch split
    // after a restart) comes now: the third took the first's settled correlation
    // over, and neither the deadline nor the copy, finding the third's correlation
    // under the id, takes the first for a message never correlated.
    queue_a_copy(&harness, &first).await;
    let first_ended: Vec<EventKind> = final_events(&harness, &first)
        .await
        .into_iter()
        .map(|event| event.kind)
        .collect();
    assert_eq!(first_ended, [EventKind::Delivered], "one final state");
}

/// A job handed out again after its message was accepted (its worker stopped before
/// the ack, or its batch was split) must not be ended `unknown` beside the receipt
/// that settled it: SMPP cannot recognise a repeated submit, so the copy asks whether
/// the message awaits or had its receipt — also once the receipt deadline came and
/// its schedule is gone.
#[tokio::test]
async fn a_copy_of_an_accepted_job_after_its_receipt_deadline_came_is_left_to_its_receipt() {
    let harness = start_configured(Configured {
        receipt_deadline_seconds: 2,
        ..Configured::default()
    })
    .await;
    let sent = job("01011112222", "accepted once");
    enqueue(&harness, &sent).await;
    assert_eq!(
        final_event(&harness, &sent).await.kind,
        EventKind::Delivered
    );
    let deadline = rns_types::subjects::receipt_deadline_subject(&kt(), &sent.message_id, sent.hop);
    let receipts = harness.jetstream.get_stream("RECEIPTS").await.unwrap();
    wait_until("the deadline came", Duration::from_secs(20), || async {
        receipts
            .get_last_raw_message_by_subject(&deadline)
            .await
            .is_ok_and(|stored| stored.headers.get("Nats-Schedule").is_none())
    })
    .await;
    queue_a_copy(&harness, &sent).await;
    let ended: Vec<EventKind> = events(&harness)
        .await
        .into_iter()
        .filter(|event| event.message_id == sent.message_id && event.kind.status().is_final())
        .map(|event| event.kind)
        .collect();
    assert_eq!(ended, [EventKind::Delivered], "one final state");
    assert_eq!(counts(&harness).await["submits"].as_u64(), Some(1));
}

/// A job whose earlier delivery never claimed its submit — its worker was stopped
/// while the job waited for a permit, or its batch was split before it was submitted
/// — never reached the SMSC: it is submitted now rather than ended `unknown`,
/// charged. One whose earlier delivery claimed the submit may have reached it, and
/// SMPP cannot tell a repeat: that one ends `unknown` unsent.
#[tokio::test]
async fn a_job_whose_earlier_delivery_never_claimed_its_submit_is_submitted_after_all() {
    let harness = start().await;
    let never_claimed = job("01033334444", "waited for a permit");
    let claimed = job("01033335555", "claimed, then its worker stopped");
    let reasons = harness
        .jetstream
        .get_key_value(rns_types::subjects::FAILURE_REASONS_BUCKET)
        .await
        .unwrap();
    reasons
        .put(
            format!(
                "{}.submitting",
                rns_types::subjects::failure_reason_key(&claimed.message_id, claimed.hop)
            ),
            "1".into(),
        )
        .await
        .unwrap();
    // The copies a split of a redelivered batch queues: attempt 1's outcome unknown.
    for sent in [&never_claimed, &claimed] {
        let copy = CarrierJob {
            attempts_before: 1,
            ..sent.clone()
        };
        enqueue(&harness, &copy).await;
    }
    let delivered = final_event(&harness, &never_claimed).await;
    assert_eq!(delivered.kind, EventKind::Delivered, "{delivered:?}");
    assert_eq!(delivered.attempt, 2, "{delivered:?}");
    let ended = final_event(&harness, &claimed).await;
    assert_eq!(ended.kind, EventKind::Unknown, "{ended:?}");
    assert!(ended.detail.contains("may have reached it"), "{ended:?}");
    let taken = messages(&harness).await;
    assert_eq!(
        taken.len(),
        1,
        "only the unclaimed one was submitted: {taken:?}"
    );
    assert_eq!(
        taken[0]["destination"].as_str(),
        Some("01033334444"),
        "{taken:?}"
    );
}

/// A process stopped after storing an accepted message's receipt deadline and before
/// its correlation (the deadline is stored first) leaves nothing behind: the job's
/// next delivery correlates what the deadline carries, and a deadline that comes
/// first does it itself — a receipt that came meanwhile settles the message, none
/// ends it `unknown`. None is submitted again.
#[tokio::test]
async fn an_accepted_message_whose_correlation_was_never_stored_is_settled_all_the_same() {
    let harness = start().await;
    let redelivered = job("01044440001", "its job comes again");
    let receipt_came = job("01044440002", "its receipt came before its deadline");
    let nothing_came = job("01044440003", "nothing came");
    let reasons = harness
        .jetstream
        .get_key_value(rns_types::subjects::FAILURE_REASONS_BUCKET)
        .await
        .unwrap();
    let now_ms = rns_types::time::now_milliseconds();
    for (index, (sent, deadline_in_ms, receipt)) in [
        (&redelivered, 600_000, true),
        (&receipt_came, 2_000, true),
        (&nothing_came, 2_000, false),
    ]
    .into_iter()
    .enumerate()
    {
        // What the stopped delivery left: its claim, its deadline, and the receipt the
        // SMSC sent meanwhile (parked as early, no correlation being there).
        reasons
            .put(
                format!(
                    "{}.submitting",
                    rns_types::subjects::failure_reason_key(&sent.message_id, sent.hop)
                ),
                "1".into(),
            )
            .await
            .unwrap();
        let reference = format!("stopped-{index}");
        let key = rns_types::receipt::correlation_key(&kt(), &reference);
        let awaited = rns_types::receipt::Awaited {
            job: Box::new(sent.clone()),
            attempt: 1,
            submitted_at_ms: now_ms,
            deadline_at_ms: now_ms + deadline_in_ms,
            parts_awaited: Vec::new(),
        };
        let notice = rns_types::receipt::ReceiptNotice::Deadline {
            carrier_reference: reference.clone(),
            message: Some(sent.message_id),
            hop: Some(sent.hop),
            awaited: Some(Box::new(awaited)),
        };
        rns_nats::publish::publish_scheduled(
            &harness.jetstream,
            rns_types::subjects::receipt_deadline_subject(&kt(), &sent.message_id, sent.hop),
            Outbound {
                subject: rns_types::subjects::receipt_deadline_due_subject(
                    &kt(),
                    &sent.message_id,
                    sent.hop,
                ),
                message_id: String::new(),
                payload: serde_json::to_vec(&notice).unwrap().into(),
            },
            &rns_types::time::rfc3339_seconds((now_ms + deadline_in_ms).div_ceil(1_000) * 1_000),
        )
        .await
        .unwrap();
        if receipt {
            let notice = rns_types::receipt::ReceiptNotice::Receipt {
                receipt: rns_types::receipt::CarrierReceipt {
                    carrier_reference: reference.clone(),
                    state: rns_types::receipt::ReceiptState::Delivered,
                    detail: Some("stat:DELIVRD".into()),
                    handset: Some(sent.to.to_string()),
                },
                received_at_ms: now_ms,
            };
            publish_all(
                &harness.jetstream,
                [Outbound {
                    subject: rns_types::subjects::receipt_subject(&key),
                    message_id: format!("test-receipt-{index}"),
                    payload: serde_json::to_vec(&notice).unwrap().into(),
                }],
                1,
            )
            .await
            .unwrap();
        }
    }
    // The copy a split of the redelivered batch queues: attempt 1's outcome unknown.
    enqueue(
        &harness,
        &CarrierJob {
            attempts_before: 1,
            ..redelivered.clone()
        },
    )
    .await;
    for (sent, kind) in [
        (&redelivered, EventKind::Delivered),
        (&receipt_came, EventKind::Delivered),
        (&nothing_came, EventKind::Unknown),
    ] {
        let ended = final_event(&harness, sent).await;
        assert_eq!(ended.kind, kind, "{ended:?}");
        assert_eq!(
            ended.attempt, 1,
            "settled as the stopped delivery's: {ended:?}"
        );
    }
    assert!(
        final_event(&harness, &nothing_came)
            .await
            .detail
            .contains("no receipt within the receipt deadline"),
        "the deadline ended it"
    );
    let ended: Vec<EventKind> = events(&harness)
        .await
        .into_iter()
        .filter(|event| event.kind.status().is_final())
        .map(|event| event.kind)
        .collect();
    assert_eq!(ended.len(), 3, "one final state each: {ended:?}");
    assert_eq!(counts(&harness).await["submits"].as_u64(), Some(0));
}

/// Two copies of one job in two queue messages (a batch published twice, under two
/// ids) both arrive as attempt 1: the claim names the delivery that made it, so the
/// second copy finds it another copy's and is dropped — the SMSC, which cannot tell
/// a repeat, is asked once.
#[tokio::test]
async fn a_second_copy_of_a_job_is_not_submitted_beside_the_first() {
    let harness = start().await;
    let sent = job("01055556666", "queued twice");
    let mut twice = Outbound::carrier_job(&sent);
    twice.message_id.push_str(":again");
    publish_all(&harness.jetstream, [Outbound::carrier_job(&sent), twice], 2)
        .await
        .unwrap();
    assert_eq!(
        final_event(&harness, &sent).await.kind,
        EventKind::Delivered
    );
    let queue = rns_types::subjects::carrier_stream(&kt());
    wait_until(
        "both copies were taken",
        Duration::from_secs(20),
        || async {
            let mut stream = harness.jetstream.get_stream(&queue).await.unwrap();
            stream.info().await.unwrap().state.messages == 0
        },
    )
    .await;
    assert_eq!(counts(&harness).await["submits"].as_u64(), Some(1));
    assert_eq!(final_events(&harness, &sent).await.len(), 1);
}
