//! Batch submits against the simulator's real HTTP server: each message of a batch
//! comes to the outcome its single submit would have had.
use std::time::Duration;

use rns_carriers::http::{HttpCarrier, SubmitRequest, Submitter};
use rns_carriers::outcome::SubmitOutcome;
use rns_carriers::simulator::{self, Knobs, Simulator};

async fn serve(simulator: &Simulator) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = simulator::app(simulator.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn request(reference: &str, to: &str) -> SubmitRequest {
    SubmitRequest {
        client_reference: reference.to_owned(),
        from: "0212345678".to_owned(),
        to: to.to_owned(),
        message_type: "sms".to_owned(),
        subject: None,
        text: "hello".to_owned(),
        images: Vec::new(),
        alimtalk: None,
    }
}

fn label(outcome: &SubmitOutcome) -> &'static str {
    outcome.label()
}

#[tokio::test]
async fn each_message_of_a_batch_gets_its_own_outcome_and_repeats_are_not_delivered_twice() {
    let simulator = Simulator::new("kt", Knobs::default());
    let carrier = HttpCarrier::new(&serve(&simulator).await, Duration::from_secs(2), 4);
    let outcomes = carrier
        .submit_batch(vec![
            request("m1", "01012345678"),
            request("m2", "0212345678"),
            request("m3", "01087654321"),
        ])
        .await;
    assert_eq!(
        outcomes.iter().map(label).collect::<Vec<_>>(),
        ["delivered", "rejected", "delivered"]
    );
    match &outcomes[1] {
        SubmitOutcome::Rejected { reason } => assert!(
            reason.starts_with("400 invalid_number"),
            "the reason names the carrier's code: {reason}"
        ),
        other => panic!("expected a rejection, got {other:?}"),
    }
    // The same messages again, one of them alone: recognised, not delivered again.
    let again = carrier
        .submit_batch(vec![request("m1", "01012345678")])
        .await;
    assert_eq!(again.iter().map(label).collect::<Vec<_>>(), ["delivered"]);
    let single = carrier.submit(&request("m3", "01087654321")).await;
    assert_eq!(label(&single), "delivered");
    let counts = simulator.counts();
    assert_eq!((counts.delivered, counts.duplicates), (2, 2));
}

#[tokio::test]
async fn a_batch_refused_as_a_whole_or_never_sent_is_retryable_for_each_message() {
    let simulator = Simulator::new("kt", Knobs::default());
    let carrier = HttpCarrier::new(&serve(&simulator).await, Duration::from_secs(2), 4);
    simulator.set_knobs(Knobs {
        outage: true,
        ..Knobs::default()
    });
    let outcomes = carrier
        .submit_batch(vec![
            request("m1", "01012345678"),
            request("m2", "01012345679"),
        ])
        .await;
    assert_eq!(
        outcomes.iter().map(label).collect::<Vec<_>>(),
        ["transient", "transient"]
    );
    // Nothing listens on a port just released: the connection is refused.
    let released = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let nowhere = HttpCarrier::new(&format!("http://{released}"), Duration::from_secs(2), 4);
    let outcomes = nowhere
        .submit_batch(vec![request("m1", "01012345678")])
        .await;
    assert_eq!(
        outcomes.iter().map(label).collect::<Vec<_>>(),
        ["transient"]
    );
    assert_eq!(simulator.counts().delivered, 0);
}

#[tokio::test]
async fn concurrent_submits_through_a_batching_submitter_are_each_answered() {
    let simulator = Simulator::new("kt", Knobs::default());
    let carrier = HttpCarrier::new(&serve(&simulator).await, Duration::from_secs(2), 4);
    let submitter = Submitter::new(carrier, 16, 2, 64);
    let submits = (0..100).map(|index| {
        let submitter = submitter.clone();
        async move {
            // Every tenth recipient is a landline, which the carrier rejects.
            let to = if index % 10 == 0 {
                "0212345678".to_owned()
            } else {
                format!("0101234{index:04}")
            };
            submitter.submit(request(&format!("m{index}"), &to)).await
        }
    });
    let outcomes = futures::future::join_all(submits).await;
    for (index, outcome) in outcomes.iter().enumerate() {
        let expected = if index % 10 == 0 {
            "rejected"
        } else {
            "delivered"
        };
        assert_eq!(label(outcome), expected, "message {index}");
    }
    let counts = simulator.counts();
    assert_eq!((counts.received, counts.delivered), (100, 90));
}

#[tokio::test]
async fn a_handsets_latest_texts_can_be_read_back_and_only_the_latest_are_kept() {
    let simulator = Simulator::new("kt", Knobs::default());
    let url = serve(&simulator).await;
    let carrier = HttpCarrier::new(&url, Duration::from_secs(2), 4);
    let mut code = request("code", "01055551234");
    code.text = "인증번호 482913".to_owned();
    assert_eq!(label(&carrier.submit(&code).await), "delivered");
    let texts: Vec<String> = reqwest::get(format!("{url}/v1/texts?to=01055551234"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(texts, ["인증번호 482913"]);
    // The texts kept are bounded: 1,100 more push the first one out.
    for round in 0..11 {
        let batch = (0..100)
            .map(|index| request(&format!("r{round}-{index}"), "01000000000"))
            .collect();
        carrier.submit_batch(batch).await;
    }
    assert_eq!(
        simulator.texts_to("01000000000").len(),
        simulator::TEXTS_KEPT,
        "only the latest are kept"
    );
    assert!(
        simulator.texts_to("01055551234").is_empty(),
        "the oldest text was forgotten"
    );
}
