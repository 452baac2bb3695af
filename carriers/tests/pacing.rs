//! The shared rate budget against a real Redis: pacers that share nothing but Redis
//! (as two carriers processes do) submit at the carrier's rate together, and the
//! operator's run-time rate applies to the next slot.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use rns_carriers::pacing::{Pacer, RATES_KEY};
use rns_testkit::RedisServer;
use rns_types::CarrierId;

async fn connection(redis: &RedisServer) -> ConnectionManager {
    ConnectionManager::new(redis::Client::open(redis.url()).unwrap())
        .await
        .unwrap()
}

/// Runs `pacers` side by side for `window`, each submitting (recording the time)
/// whenever its slot comes; returns every submit's time since the start.
async fn submit_for(pacers: Vec<Pacer>, window: Duration) -> Vec<Duration> {
    let started = Instant::now();
    let submits = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for pacer in pacers {
        // Several submits in flight per pacer, as a worker has.
        for _ in 0..8 {
            let pacer = pacer.clone();
            let submits = submits.clone();
            tasks.spawn(async move {
                while started.elapsed() < window {
                    let wait = pacer.take(1).await.unwrap();
                    tokio::time::sleep(wait).await;
                    if started.elapsed() < window {
                        submits.lock().unwrap().push(started.elapsed());
                    }
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    let mut submits = submits.lock().unwrap().clone();
    submits.sort();
    submits
}

fn kt() -> CarrierId {
    CarrierId::parse("kt").unwrap()
}

#[tokio::test]
async fn two_processes_sharing_a_rate_submit_at_that_rate_together() {
    let redis = RedisServer::start().await;
    let pacers = vec![
        Pacer::new(connection(&redis).await, kt(), 200),
        Pacer::new(connection(&redis).await, kt(), 200),
    ];
    let window = Duration::from_secs(3);
    let submits = submit_for(pacers, window).await;
    // Without the shared budget 16 submitters would go far faster; with it, 200/s
    // together. Slots are exact; a submitter woken late (a busy machine) can bunch a
    // few submits, so no second of the run may hold more than 210 (5% above).
    assert!(
        (560..=601).contains(&submits.len()),
        "{} submits in 3 s at 200/s",
        submits.len()
    );
    for (index, first) in submits.iter().enumerate() {
        let in_a_second = submits[index..]
            .iter()
            .take_while(|at| **at < *first + Duration::from_secs(1))
            .count();
        assert!(
            in_a_second <= 210,
            "{in_a_second} submits within 1 s of {first:?}"
        );
    }
}

#[tokio::test]
async fn the_operators_rate_applies_at_once_and_removing_it_restores_the_configured_one() {
    let redis = RedisServer::start().await;
    let mut operator = connection(&redis).await;
    let pacer = Pacer::new(connection(&redis).await, kt(), 1_000);
    let _: () = redis::cmd("HSET")
        .arg(RATES_KEY)
        .arg("kt")
        .arg(20)
        .query_async(&mut operator)
        .await
        .unwrap();
    let submits = submit_for(vec![pacer.clone()], Duration::from_secs(1)).await;
    assert!(
        (18..=21).contains(&submits.len()),
        "{} submits in 1 s at the operator's 20/s",
        submits.len()
    );
    let _: () = redis::cmd("HDEL")
        .arg(RATES_KEY)
        .arg("kt")
        .query_async(&mut operator)
        .await
        .unwrap();
    // The configured 1,000/s holds again from the next slot.
    let submits = submit_for(vec![pacer], Duration::from_secs(1)).await;
    assert!(
        (800..=1_001).contains(&submits.len()),
        "{} submits in 1 s at the configured 1,000/s",
        submits.len()
    );
}

#[tokio::test]
async fn a_carrier_without_a_rate_is_not_held_back() {
    let redis = RedisServer::start().await;
    let pacer = Pacer::new(connection(&redis).await, kt(), 0);
    for _ in 0..100 {
        assert_eq!(pacer.take(1).await.unwrap(), Duration::ZERO);
    }
    // A rate the operator sets later applies within the recheck interval.
    let mut operator = connection(&redis).await;
    let _: () = redis::cmd("HSET")
        .arg(RATES_KEY)
        .arg("kt")
        .arg(5)
        .query_async(&mut operator)
        .await
        .unwrap();
    let applied = rns_testkit::wait_until("the operator's rate", Duration::from_secs(3), || {
        let pacer = pacer.clone();
        async move { pacer.take(1).await.unwrap() > Duration::ZERO }
    })
    .await;
    assert!(applied <= rns_carriers::pacing::UNPACED_RECHECK + Duration::from_millis(200));
}
