//! Reading a consumer in rounds against a real nats-server: a full fetch is followed at
//! once, a fetch with room to spare by the pause, and every message comes through.
use std::time::{Duration, Instant};

use async_nats::jetstream::{consumer, stream};
use futures::StreamExt;
use rns_nats::polled::{in_rounds, Rounds};
use rns_testkit::NatsServer;

/// A stream `name` on `name.>` with a durable pull consumer `reader` whose ack wait
/// is `ack_wait`, and a JetStream context of `server`.
async fn stream_and_reader(
    server: &NatsServer,
    name: &str,
    ack_wait: Duration,
) -> (async_nats::jetstream::Context, consumer::PullConsumer) {
    let jetstream = async_nats::jetstream::new(server.client().await);
    let events = jetstream
        .create_stream(stream::Config {
            name: name.to_uppercase(),
            subjects: vec![format!("{name}.>")],
            ..Default::default()
        })
        .await
        .expect("a stream");
    let reader = events
        .create_consumer(consumer::pull::Config {
            durable_name: Some("reader".to_owned()),
            ack_wait,
            ..Default::default()
        })
        .await
        .expect("a consumer");
    (jetstream, reader)
}

#[tokio::test]
async fn full_fetches_follow_at_once_and_a_quiet_consumer_is_read_after_the_pause() {
    let server = NatsServer::start().await;
    let (jetstream, reader) = stream_and_reader(&server, "rounds", Duration::from_secs(30)).await;
    for index in 0..10 {
        jetstream
            .publish("rounds.a", format!("{index}").into())
            .await
            .expect("a publish")
            .await
            .expect("stored");
    }
    let pause = Duration::from_millis(600);
    let mut messages = Box::pin(in_rounds(
        reader,
        Rounds {
            max_messages: 4,
            max_bytes: 1 << 20,
            pause,
        },
    ));
    // Ten waiting: fetches of 4 and 4 come back full and are followed at once; the
    // third takes the last 2.
    let started = Instant::now();
    let mut read = Vec::new();
    for _ in 0..10 {
        let message = messages.next().await.expect("a message").expect("fetched");
        read.push(String::from_utf8(message.payload.to_vec()).expect("text"));
        message.ack().await.expect("an ack");
    }
    assert_eq!(
        read,
        (0..10).map(|index| index.to_string()).collect::<Vec<_>>()
    );
    assert!(
        started.elapsed() < pause,
        "full fetches waited for the pause: {:?}",
        started.elapsed()
    );
    // The fetch of 2 had room to spare: a message stored now is read after the pause.
    let stored = Instant::now();
    jetstream
        .publish("rounds.a", "late".into())
        .await
        .expect("a publish")
        .await
        .expect("stored");
    let late = messages.next().await.expect("a message").expect("fetched");
    assert_eq!(&late.payload[..], b"late");
    assert!(
        stored.elapsed() >= pause / 2,
        "read {:?} after it was stored, without the pause",
        stored.elapsed()
    );
}

#[tokio::test]
async fn a_fetch_the_server_never_answers_fails_after_its_deadline_and_reading_goes_on() {
    let server = NatsServer::start().await;
    let (jetstream, reader) =
        stream_and_reader(&server, "unanswered", Duration::from_secs(2)).await;
    jetstream
        .publish("unanswered.a", "kept".into())
        .await
        .expect("a publish")
        .await
        .expect("stored");
    // The server stops answering, as one lost in a reconnect does: the fetch's end
    // never comes.
    server.freeze();
    let mut messages = Box::pin(in_rounds(
        reader,
        Rounds {
            max_messages: 10,
            max_bytes: 1 << 20,
            pause: Duration::from_millis(100),
        },
    ));
    let started = Instant::now();
    let first = tokio::time::timeout(rns_nats::polled::FETCH_DEADLINE * 2, messages.next())
        .await
        .expect("the fetch gave up instead of waiting for good");
    assert!(matches!(first, Some(Err(_))), "the unanswered fetch failed");
    assert!(started.elapsed() >= rns_nats::polled::FETCH_DEADLINE);
    server.thaw();
    // Reading goes on: the message comes with a later fetch (once its ack wait is
    // over, if the thawed server handed it to the abandoned fetch).
    let next = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match messages.next().await {
                Some(Ok(message)) => return message,
                Some(Err(_)) => continue,
                None => panic!("the stream never ends"),
            }
        }
    })
    .await
    .expect("a message after the thaw");
    assert_eq!(next.payload.as_ref(), b"kept");
}
