//! `[nats] compact_payloads = false`: every writer writes the JSON that versions
//! before the compact encodings read, and readers still take it. The switch is
//! process-wide, so this file holds one test (its own process).
use rns_types::compact::jobs::{encode_job, JobBatch};
use rns_types::compact::{write_compact, writes_compact};
use rns_types::wire::{CarrierJob, CarrierPayload, EventKind, MessageEvent, Points, ResultBatch};
use rns_types::{CarrierId, CustomerId, PhoneNumber, RequestId};

fn job(to: &str) -> CarrierJob {
    CarrierJob::sms(
        RequestId::generate().message_id(0),
        CustomerId::parse("acme").unwrap(),
        CarrierId::parse("kt").unwrap(),
        PhoneNumber::parse("0212345678").unwrap(),
        PhoneNumber::parse(to).unwrap(),
        "안내",
        13,
    )
}

#[test]
fn with_compact_payloads_off_results_and_jobs_are_written_as_json() {
    assert!(writes_compact(), "compact is the default");
    let one = job("01012345678");
    assert_eq!(encode_job(&one)[0], 0x00, "compact by default");
    write_compact(false);

    let encoded = encode_job(&one);
    let json: CarrierJob = serde_json::from_slice(&encoded).expect("a JSON job");
    assert_eq!(json, one);
    let mut batch = JobBatch::default();
    let two = job("01087654321");
    batch.push(&one);
    assert!(batch.push_within(&two, 1 << 20));
    let payload = batch.take();
    let jobs: Vec<CarrierJob> = serde_json::from_slice(&payload).expect("a JSON array of jobs");
    assert_eq!(jobs, vec![one.clone(), two.clone()]);
    assert_eq!(
        CarrierPayload::decode(&payload).unwrap(),
        CarrierPayload::Batch(vec![one.clone(), two])
    );

    let results = ResultBatch {
        customer_id: CustomerId::parse("acme").unwrap(),
        messages: Vec::new(),
        events: vec![MessageEvent {
            message_id: one.message_id,
            at_ms: 1_764_820_000_100,
            accepted_at_ms: one.accepted_at_ms,
            kind: EventKind::Delivered,
            carrier: Some(one.carrier.clone()),
            hop: 1,
            attempt: 1,
            detail: String::new(),
            points: Points::default(),
            trace: None,
        }],
    };
    let encoded = results.encode();
    assert_eq!(encoded[0], b'{', "RESULTS as JSON");
    assert_eq!(ResultBatch::decode(&encoded).unwrap(), results);
}
