//! The topology against a real nats-server: created idempotently, bounded, and
//! publishing with de-duplication.
use bytes::Bytes;
use rns_nats::{publish_all, Outbound, Topology, TopologySettings};
use rns_testkit::NatsServer;
use rns_types::{subjects, CarrierId};

fn topology() -> Topology {
    let carriers = ["kt", "skt"]
        .iter()
        .map(|name| CarrierId::parse(name).unwrap())
        .collect();
    Topology::new(TopologySettings::default(), carriers)
}

#[tokio::test]
async fn ensure_is_idempotent_and_creates_every_stream_consumer_and_bucket() {
    let server = NatsServer::start().await;
    let jetstream = async_nats::jetstream::new(server.client().await);
    topology().ensure(&jetstream).await.unwrap();
    topology().ensure(&jetstream).await.unwrap();

    for stream in ["SEND", "RESULTS", "CARRIER_KT", "CARRIER_SKT"] {
        jetstream
            .get_stream(stream)
            .await
            .unwrap_or_else(|error| panic!("{stream}: {error}"));
    }
    Topology::consumer(&jetstream, "SEND", subjects::DISPATCHER_CONSUMER)
        .await
        .unwrap();
    Topology::consumer(&jetstream, "CARRIER_KT", "carrier-kt")
        .await
        .unwrap();
    Topology::consumer(&jetstream, "RESULTS", subjects::ANALYTICS_CONSUMER)
        .await
        .unwrap();
    jetstream
        .get_key_value(subjects::CUSTOMERS_BUCKET)
        .await
        .unwrap();
    jetstream
        .get_key_value(subjects::API_KEYS_BUCKET)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_republished_message_id_is_stored_once() {
    let server = NatsServer::start().await;
    let jetstream = async_nats::jetstream::new(server.client().await);
    topology().ensure(&jetstream).await.unwrap();

    let message = |id: &str| Outbound {
        subject: "carrier.kt".into(),
        message_id: id.into(),
        payload: Bytes::from_static(b"{}"),
    };
    publish_all(
        &jetstream,
        vec![message("a"), message("b"), message("a")],
        8,
    )
    .await
    .unwrap();
    publish_all(&jetstream, vec![message("b")], 8)
        .await
        .unwrap();

    let mut stream = jetstream.get_stream("CARRIER_KT").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
}

#[tokio::test]
async fn publishing_to_a_subject_without_a_stream_fails() {
    let server = NatsServer::start().await;
    let jetstream = async_nats::jetstream::new(server.client().await);
    topology().ensure(&jetstream).await.unwrap();
    let stray = Outbound {
        subject: "carrier.nobody".into(),
        message_id: "x".into(),
        payload: Bytes::new(),
    };
    assert!(publish_all(&jetstream, vec![stray], 8).await.is_err());
}

#[tokio::test]
async fn a_durable_pull_consumer_keeps_delivering_after_the_server_restarts() {
    use futures::StreamExt;
    let mut server = NatsServer::start().await;
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(server.url())
        .await
        .unwrap();
    let jetstream = async_nats::jetstream::new(client);
    topology().ensure(&jetstream).await.unwrap();
    let consumer = Topology::consumer(&jetstream, "CARRIER_KT", "carrier-kt")
        .await
        .unwrap();
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(8)
        .heartbeat(std::time::Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    let message = |id: &str| Outbound {
        subject: "carrier.kt".into(),
        message_id: id.into(),
        payload: Bytes::from_static(b"{}"),
    };
    publish_all(&jetstream, vec![message("before")], 1)
        .await
        .unwrap();
    let first = messages.next().await.unwrap().unwrap();
    first.ack().await.unwrap();

    server.restart().await;
    let mut published = false;
    for _ in 0..50 {
        if publish_all(&jetstream, vec![message("after")], 1)
            .await
            .is_ok()
        {
            published = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(published, "publishing after the restart failed");
    let deadline = std::time::Duration::from_secs(15);
    let received = tokio::time::timeout(deadline, async {
        loop {
            match messages.next().await {
                Some(Ok(message)) => return message,
                Some(Err(error)) => eprintln!("stream error: {error}"),
                None => panic!("the message stream ended"),
            }
        }
    })
    .await
    .expect("no message arrived after the restart");
    assert_eq!(received.payload.as_ref(), b"{}");
}

/// A held send: scheduled on `sched.<request>`, published by the server itself to
/// `due.<customer>` at its time, where the dispatcher's `dispatcher-due` consumer
/// reads it; cancelled by purging the schedule subject.
#[tokio::test]
async fn a_scheduled_send_becomes_due_at_its_time_and_a_purged_one_never_does() {
    use futures::StreamExt;
    use rns_nats::publish_scheduled;
    use rns_types::{CustomerId, RequestId};

    let server = NatsServer::start().await;
    let jetstream = async_nats::jetstream::new(server.client().await);
    topology().ensure(&jetstream).await.unwrap();
    let customer = CustomerId::parse("acme").unwrap();
    let now_ms = rns_types::time::now_milliseconds();
    let due_at = now_ms + 2_000;
    let schedule = |request: &RequestId, payload: &'static [u8]| {
        (
            subjects::schedule_subject(request),
            Outbound {
                subject: subjects::due_subject(&customer),
                message_id: subjects::message_ids::send(request),
                payload: Bytes::from_static(payload),
            },
        )
    };
    let (kept_subject, kept) = schedule(&RequestId::generate(), b"kept");
    let cancelled_request = RequestId::generate();
    let (cancelled_subject, cancelled) = schedule(&cancelled_request, b"cancelled");
    let at = rns_types::time::rfc3339_seconds(due_at + 999);
    publish_scheduled(&jetstream, kept_subject, kept, &at)
        .await
        .unwrap();
    publish_scheduled(&jetstream, cancelled_subject.clone(), cancelled, &at)
        .await
        .unwrap();
    let stream = jetstream
        .get_stream(subjects::SCHEDULES_STREAM)
        .await
        .unwrap();
    stream.purge().filter(cancelled_subject).await.unwrap();

    let consumer = Topology::consumer(
        &jetstream,
        subjects::SCHEDULES_STREAM,
        subjects::DUE_CONSUMER,
    )
    .await
    .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let message = tokio::time::timeout(std::time::Duration::from_secs(10), messages.next())
        .await
        .expect("the schedule fires")
        .unwrap()
        .unwrap();
    let fired_at = rns_types::time::now_milliseconds();
    assert_eq!(message.subject.as_str(), "due.acme");
    assert_eq!(&message.payload[..], b"kept");
    assert!(
        fired_at >= due_at,
        "not early: fired {} ms before",
        due_at - fired_at
    );
    assert!(
        fired_at <= due_at + 2_500,
        "fired {} ms late",
        fired_at - due_at
    );
    message.ack().await.unwrap();
    let nothing_else =
        tokio::time::timeout(std::time::Duration::from_secs(3), messages.next()).await;
    assert!(nothing_else.is_err(), "the cancelled schedule never fires");
}
