//! The customer directory against a real nats-server: a replicated directory reads
//! its own writes at once, follows writes made elsewhere, and serves reads (whole
//! profiles or one part) from memory.
use std::time::Duration;

use rns_nats::{CustomerDirectory, Topology, TopologySettings};
use rns_testkit::NatsServer;
use rns_types::sender_number::SenderNumber;
use rns_types::{CustomerId, CustomerProfile, PhoneNumber};
use tokio_util::sync::CancellationToken;

async fn sender_numbers(directory: &CustomerDirectory, customer: &CustomerId) -> Vec<String> {
    directory
        .profile(customer)
        .await
        .unwrap()
        .expect("the customer exists")
        .sender_numbers
        .keys()
        .map(|number| number.to_string())
        .collect()
}

async fn register(directory: &CustomerDirectory, customer: &CustomerId, number: &str) {
    let number = PhoneNumber::parse(number).unwrap();
    directory
        .update(customer, |profile| {
            let registered = SenderNumber::registered(&number, 0);
            profile.sender_numbers.insert(number.clone(), registered);
            Ok::<(), ()>(())
        })
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_replicated_directory_reads_its_own_writes_follows_others_and_reads_from_memory() {
    let mut server = NatsServer::start().await;
    let jetstream = async_nats::jetstream::new(server.client().await);
    Topology::new(TopologySettings::default(), Vec::new())
        .ensure(&jetstream)
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let replicated = CustomerDirectory::replicated(&jetstream, shutdown.clone())
        .await
        .unwrap();
    let elsewhere = CustomerDirectory::open(&jetstream).await.unwrap();

    // Created elsewhere a moment ago: read from the bucket if not yet followed.
    let acme = CustomerId::parse("acme").unwrap();
    elsewhere
        .create(
            &CustomerProfile::new(acme.clone(), "Acme".into(), 0),
            "hash",
            &rns_types::api_key::ApiKeyRecord::parse(b"acme").unwrap(),
        )
        .await
        .unwrap();
    assert!(sender_numbers(&replicated, &acme).await.is_empty());
    let nobody = CustomerId::parse("nobody").unwrap();
    assert!(replicated.profile(&nobody).await.unwrap().is_none());

    // Its own write, in the very next read.
    register(&replicated, &acme, "0212345678").await;
    assert_eq!(sender_numbers(&replicated, &acme).await, ["0212345678"]);

    // A write made elsewhere arrives with the watch.
    register(&elsewhere, &acme, "0311112222").await;
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = sender_numbers(&replicated, &acme).await;
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, ["0212345678", "0311112222"]);

    // One part of a profile reads the same, from the copy or from the bucket.
    let count = |profile: &CustomerProfile| profile.sender_numbers.len();
    assert_eq!(
        replicated.profile_part(&acme, count).await.unwrap(),
        Some(2)
    );
    assert_eq!(elsewhere.profile_part(&acme, count).await.unwrap(), Some(2));
    assert_eq!(replicated.profile_part(&nobody, count).await.unwrap(), None);

    // Reads come from memory: they go on while the server is down.
    server.kill();
    assert_eq!(sender_numbers(&replicated, &acme).await.len(), 2);
    assert_eq!(
        replicated.profile_part(&acme, count).await.unwrap(),
        Some(2)
    );
    // (A directory that reads the bucket cannot, failing or waiting for the server.)
    let unfollowed = tokio::time::timeout(Duration::from_secs(1), elsewhere.profile(&acme)).await;
    assert!(!matches!(unfollowed, Ok(Ok(Some(_)))));
    shutdown.cancel();
}
