//! Points against a real redis-server (and nats-server for the journal): atomic
//! reservations under concurrency, settlement exactly once, the ledger balancing.
use std::sync::Arc;

use futures::StreamExt;
use proptest::prelude::*;
use rns_nats::Topology;
use rns_points::journal;
use rns_points::store::{
    LedgerFilter, PointsStore, Reservation, ReservationRequest, Settlement,
    LEDGER_ENTRY_MAX_REQUESTS,
};
use rns_testkit::{NatsServer, RedisServer};
use rns_types::points::{LedgerEntry, LedgerKind};
use rns_types::subjects::LEDGER_STREAM;
use rns_types::{CarrierCatalog, CustomerId, RequestId};

fn customer(name: &str) -> CustomerId {
    CustomerId::parse(name).unwrap()
}

fn delivered(request: &RequestId, index: u32, price: u32) -> Settlement {
    Settlement {
        message_id: request.message_id(index),
        reserved: price,
        spent: price,
        failure: String::new(),
    }
}

fn failed(request: &RequestId, index: u32, price: u32) -> Settlement {
    Settlement {
        failure: "every carrier failed".into(),
        spent: 0,
        ..delivered(request, index, price)
    }
}

async fn assert_balances(store: &PointsStore, customer: &CustomerId) {
    let account = store.account(customer).await.unwrap();
    assert!(account.balance >= 0, "{account:?}");
    assert!(account.reserved >= 0, "{account:?}");
    assert_eq!(
        account.balance + account.reserved + account.spent,
        account.topped_up,
        "{account:?}"
    );
}

#[tokio::test]
async fn fifty_concurrent_reservations_never_overdraw() {
    let redis = RedisServer::start().await;
    let store = Arc::new(PointsStore::connect(&redis.url()).await.unwrap());
    let acme = customer("acme");
    store.top_up(&acme, 100, "test").await.unwrap();
    let attempts = (0..50).map(|_| {
        let store = store.clone();
        let acme = acme.clone();
        tokio::spawn(async move {
            store
                .reserve(&acme, &RequestId::generate(), 7)
                .await
                .unwrap()
        })
    });
    let outcomes = futures::future::join_all(attempts).await;
    let reserved = outcomes
        .iter()
        .filter(|outcome| matches!(outcome.as_ref().unwrap(), Reservation::Reserved))
        .count();
    assert_eq!(reserved, 14, "100 points cover 14 reservations of 7");
    let account = store.account(&acme).await.unwrap();
    assert_eq!((account.balance, account.reserved), (2, 98));
    assert_balances(&store, &acme).await;
}

#[tokio::test]
async fn reservations_of_several_customers_in_one_call_each_stand_alone_in_order() {
    let redis = RedisServer::start().await;
    let store = PointsStore::connect(&redis.url()).await.unwrap();
    let (acme, beta) = (customer("acme"), customer("beta"));
    store.top_up(&acme, 10, "test").await.unwrap();
    store.top_up(&beta, 2, "test").await.unwrap();
    let repeated = RequestId::generate();
    let second = RequestId::generate();
    let asked = |customer: &CustomerId, request: RequestId, amount: u64| {
        ReservationRequest::new(customer, &request, amount)
    };
    let answers = store
        .reserve_all(&[
            asked(&acme, repeated, 5),
            asked(&beta, RequestId::generate(), 3),
            asked(&acme, second, 5),
            asked(&acme, RequestId::generate(), 1),
            asked(&acme, repeated, 5),
        ])
        .await
        .unwrap();
    assert_eq!(
        answers,
        [
            Reservation::Reserved,
            Reservation::Insufficient { balance: 2 },
            Reservation::Reserved,
            Reservation::Insufficient { balance: 0 },
            // The same request again reserves nothing more.
            Reservation::Reserved,
        ]
    );
    let account = store.account(&acme).await.unwrap();
    assert_eq!((account.balance, account.reserved), (0, 10));
    let account = store.account(&beta).await.unwrap();
    assert_eq!((account.balance, account.reserved), (2, 0));
    assert_balances(&store, &acme).await;
    assert_balances(&store, &beta).await;
    assert!(store.reserve_all(&[]).await.unwrap().is_empty());

    // One entry for what acme reserved in the call, listing both requests.
    let page = store
        .ledger(&acme, None, 10, &LedgerFilter::default())
        .await
        .unwrap();
    let reserves: Vec<&LedgerEntry> = page
        .items
        .iter()
        .filter(|entry| entry.kind == LedgerKind::Reserve)
        .collect();
    assert_eq!(reserves.len(), 1, "{page:?}");
    let shares: Vec<(RequestId, u64)> = reserves[0]
        .requests
        .iter()
        .map(|share| (share.request_id, share.amount))
        .collect();
    assert_eq!(shares, [(repeated, 5), (second, 5)]);
    assert_eq!((reserves[0].amount, reserves[0].reserved), (10, 10));
    // Settling both in one call: one settle entry with each request's share, found
    // by either request.
    let settled = store
        .settle(
            &acme,
            vec![delivered(&repeated, 0, 5), delivered(&second, 0, 5)],
        )
        .await
        .unwrap();
    assert_eq!(settled, 2);
    let of_second = LedgerFilter {
        kind: Some(LedgerKind::Settle),
        request_id: Some(second),
    };
    let page = store.ledger(&acme, None, 10, &of_second).await.unwrap();
    assert_eq!(page.items.len(), 1, "{page:?}");
    let settle = &page.items[0];
    assert_eq!(
        (settle.amount, settle.messages, settle.spent),
        (10, Some(2), 10)
    );
    assert!(settle.covers(&repeated) && settle.covers(&second));
    // Stamped with the account after the settlement.
    assert_eq!((settle.balance, settle.reserved), (0, 0));
    assert_balances(&store, &acme).await;
}

#[tokio::test]
async fn an_entry_lists_at_most_its_cap_of_requests_and_the_entries_cover_every_one() {
    let redis = RedisServer::start().await;
    let store = PointsStore::connect(&redis.url()).await.unwrap();
    let acme = customer("acme");
    store.top_up(&acme, 1_000, "test").await.unwrap();
    let requests: Vec<RequestId> = (0..250).map(|_| RequestId::generate()).collect();
    let asked: Vec<ReservationRequest> = requests
        .iter()
        .map(|request| ReservationRequest::new(&acme, request, 2))
        .collect();
    let answers = store.reserve_all(&asked).await.unwrap();
    assert!(answers
        .iter()
        .all(|answer| *answer == Reservation::Reserved));
    let settlements: Vec<Settlement> = requests
        .iter()
        .map(|request| delivered(request, 0, 2))
        .collect();
    assert_eq!(store.settle(&acme, settlements).await.unwrap(), 250);
    let page = store
        .ledger(&acme, None, 20, &LedgerFilter::default())
        .await
        .unwrap();
    for kind in [LedgerKind::Reserve, LedgerKind::Settle] {
        let entries: Vec<&LedgerEntry> = page
            .items
            .iter()
            .filter(|entry| entry.kind == kind)
            .collect();
        let sizes: Vec<usize> = entries.iter().map(|entry| entry.requests.len()).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 250, "{kind:?}: {sizes:?}");
        assert!(
            sizes.iter().all(|size| *size <= LEDGER_ENTRY_MAX_REQUESTS),
            "{kind:?}: {sizes:?}"
        );
        assert_eq!(
            entries.iter().map(|entry| entry.amount).sum::<u64>(),
            500,
            "{kind:?}"
        );
        for entry in &entries {
            let shares: u64 = entry.requests.iter().map(|share| share.amount).sum();
            assert_eq!(shares, entry.amount, "{entry:?}");
        }
        assert!(requests
            .iter()
            .all(|request| entries.iter().any(|entry| entry.covers(request))));
    }
    // Each entry, oldest first, is stamped with the account as its change left it
    // (the scripts change the account once per entry, not per request).
    let (mut balance, mut reserved, mut spent) = (1_000_i64, 0_i64, 0_i64);
    for entry in page.items.iter().rev() {
        let amount = entry.amount as i64;
        match entry.kind {
            LedgerKind::TopUp => continue,
            LedgerKind::Reserve => (balance, reserved) = (balance - amount, reserved + amount),
            LedgerKind::Settle => (reserved, spent) = (reserved - amount, spent + amount),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            (entry.balance, entry.reserved, entry.spent),
            (balance, reserved, spent),
            "{entry:?}"
        );
    }
    let account = store.account(&acme).await.unwrap();
    assert_eq!(
        (account.balance, account.reserved, account.spent),
        (500, 0, 500)
    );
}

#[tokio::test]
async fn settling_spends_refunds_and_happens_once_per_message() {
    let redis = RedisServer::start().await;
    let store = PointsStore::connect(&redis.url()).await.unwrap();
    let acme = customer("acme");
    store.top_up(&acme, 50, "first top-up").await.unwrap();
    let request = RequestId::generate();
    assert_eq!(
        store.reserve(&acme, &request, 9).await.unwrap(),
        Reservation::Reserved
    );
    // The same request again (an idempotent retry) reserves nothing more.
    store.reserve(&acme, &request, 9).await.unwrap();
    assert_eq!(store.account(&acme).await.unwrap().reserved, 9);
    let batch = vec![delivered(&request, 0, 3), failed(&request, 1, 3)];
    assert_eq!(store.settle(&acme, batch.clone()).await.unwrap(), 2);
    assert_eq!(store.settle(&acme, batch).await.unwrap(), 0, "redelivered");
    let account = store.account(&acme).await.unwrap();
    assert_eq!(
        (account.balance, account.reserved, account.spent),
        (44, 3, 3)
    );
    store
        .settle(&acme, vec![delivered(&request, 2, 3)])
        .await
        .unwrap();
    // Fully settled: a late duplicate changes nothing.
    assert_eq!(
        store
            .settle(&acme, vec![delivered(&request, 2, 3)])
            .await
            .unwrap(),
        0
    );
    let account = store.account(&acme).await.unwrap();
    assert_eq!(
        (account.balance, account.reserved, account.spent),
        (44, 0, 6)
    );
    assert_balances(&store, &acme).await;

    let short = RequestId::generate();
    assert_eq!(
        store.reserve(&acme, &short, 45).await.unwrap(),
        Reservation::Insufficient { balance: 44 }
    );

    let page = store
        .ledger(&acme, None, 3, &LedgerFilter::default())
        .await
        .unwrap();
    let kinds: Vec<LedgerKind> = page.items.iter().map(|entry| entry.kind).collect();
    assert_eq!(
        kinds,
        [LedgerKind::Settle, LedgerKind::Settle, LedgerKind::Refund]
    );
    assert_eq!(page.items[2].message_id, Some(request.message_id(1)));
    let rest = store
        .ledger(
            &acme,
            page.next_cursor.as_deref(),
            3,
            &LedgerFilter::default(),
        )
        .await
        .unwrap();
    let kinds: Vec<LedgerKind> = rest.items.iter().map(|entry| entry.kind).collect();
    assert_eq!(kinds, [LedgerKind::Reserve, LedgerKind::TopUp]);
    assert_eq!(rest.next_cursor, None);
    assert_eq!(rest.items[1].balance, 50);

    // Filtered by kind, a page at a time; by request, only that request's entries.
    let settles = LedgerFilter {
        kind: Some(LedgerKind::Settle),
        request_id: None,
    };
    let page = store.ledger(&acme, None, 1, &settles).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let rest = store
        .ledger(&acme, page.next_cursor.as_deref(), 5, &settles)
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1, "two settlements in all: {rest:?}");
    assert_eq!(rest.next_cursor, None);
    let of_request = LedgerFilter {
        kind: None,
        request_id: Some(request),
    };
    let page = store.ledger(&acme, None, 50, &of_request).await.unwrap();
    assert!(!page.items.is_empty());
    assert!(
        page.items.iter().all(|entry| entry.covers(&request)),
        "{page:?}"
    );
    assert!(page
        .items
        .iter()
        .all(|entry| entry.kind != LedgerKind::TopUp));
}

#[tokio::test]
async fn a_release_returns_what_remains_and_later_settlements_change_nothing() {
    let redis = RedisServer::start().await;
    let store = PointsStore::connect(&redis.url()).await.unwrap();
    let acme = customer("acme");
    store.top_up(&acme, 10, "test").await.unwrap();
    let request = RequestId::generate();
    store.reserve(&acme, &request, 6).await.unwrap();
    assert_eq!(
        store
            .release(&acme, &request, "not accepted")
            .await
            .unwrap(),
        6
    );
    assert_eq!(store.release(&acme, &request, "again").await.unwrap(), 0);
    store
        .settle(&acme, vec![delivered(&request, 0, 6)])
        .await
        .unwrap();
    let account = store.account(&acme).await.unwrap();
    assert_eq!(
        (account.balance, account.reserved, account.spent),
        (10, 0, 0)
    );
}

#[tokio::test]
async fn the_journal_reaches_the_ledger_stream() {
    let redis = RedisServer::start().await;
    let nats = NatsServer::start().await;
    let jetstream = async_nats::jetstream::new(nats.client().await);
    Topology::for_catalog(Default::default(), &CarrierCatalog::korean_default())
        .ensure(&jetstream)
        .await
        .unwrap();
    let store = PointsStore::connect(&redis.url()).await.unwrap();
    let acme = customer("acme");
    store.top_up(&acme, 10, "test").await.unwrap();
    store
        .reserve(&acme, &RequestId::generate(), 4)
        .await
        .unwrap();
    // The group is created by the copier loop; one round here creates it too.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let copier = tokio::spawn(journal::copy_until(
        store.clone(),
        jetstream.clone(),
        "test".into(),
        shutdown.clone(),
    ));
    let stream = jetstream.get_stream(LEDGER_STREAM).await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let message = tokio::time::timeout(std::time::Duration::from_secs(10), messages.next())
        .await
        .expect("ledger entries reach JetStream")
        .unwrap()
        .unwrap();
    assert_eq!(message.subject.as_str(), "ledger.acme");
    let entries: Vec<LedgerEntry> = serde_json::from_slice(&message.payload).unwrap();
    let kinds: Vec<LedgerKind> = entries.iter().map(|entry| entry.kind).collect();
    assert_eq!(kinds, [LedgerKind::TopUp, LedgerKind::Reserve]);
    assert_eq!(entries[1].reserved, 4);
    assert!(!entries[0].id.is_empty());
    shutdown.cancel();
    copier.await.unwrap();
}

/// One step of a customer's life.
#[derive(Debug, Clone)]
enum Step {
    TopUp(u64),
    Reserve { messages: u32, price: u32 },
    Deliver { request: usize, index: u32 },
    Fail { request: usize, index: u32 },
    Release { request: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u64..50).prop_map(Step::TopUp),
        (1u32..5, 1u32..7).prop_map(|(messages, price)| Step::Reserve { messages, price }),
        (0usize..8, 0u32..5).prop_map(|(request, index)| Step::Deliver { request, index }),
        (0usize..8, 0u32..5).prop_map(|(request, index)| Step::Fail { request, index }),
        (0usize..8).prop_map(|request| Step::Release { request }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever happens in whatever order (duplicates, settlements after a release,
    /// events for messages that were never reserved), the account balances:
    /// `balance + reserved + spent = topped up`, and nothing is negative.
    #[test]
    fn any_sequence_of_changes_keeps_the_ledger_balanced(steps in prop::collection::vec(step(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let redis = RedisServer::start().await;
            let store = PointsStore::connect(&redis.url()).await.unwrap();
            let acme = customer("acme");
            let mut requests: Vec<(RequestId, u32)> = Vec::new();
            for step in steps {
                match step {
                    Step::TopUp(amount) => { store.top_up(&acme, amount, "test").await.unwrap(); }
                    Step::Reserve { messages, price } => {
                        let request = RequestId::generate();
                        if store.reserve(&acme, &request, u64::from(messages * price)).await.unwrap() == Reservation::Reserved {
                            requests.push((request, price));
                        }
                    }
                    Step::Deliver { request, index } | Step::Fail { request, index } if requests.is_empty() => { let _ = (request, index); }
                    Step::Deliver { request, index } => {
                        let (request, price) = requests[request % requests.len()];
                        store.settle(&acme, vec![delivered(&request, index, price)]).await.unwrap();
                    }
                    Step::Fail { request, index } => {
                        let (request, price) = requests[request % requests.len()];
                        store.settle(&acme, vec![failed(&request, index, price)]).await.unwrap();
                    }
                    Step::Release { request } => {
                        if let Some((request, _)) = requests.get(request % requests.len().max(1)) {
                            store.release(&acme, request, "cancelled").await.unwrap();
                        }
                    }
                }
                assert_balances(&store, &acme).await;
            }
        });
    }
}

#[tokio::test]
async fn an_account_redis_lost_is_restored_from_the_ledger_stream() {
    let redis = RedisServer::start().await;
    let nats = NatsServer::start().await;
    let jetstream = async_nats::jetstream::new(nats.client().await);
    Topology::for_catalog(Default::default(), &CarrierCatalog::korean_default())
        .ensure(&jetstream)
        .await
        .unwrap();
    let store = PointsStore::connect(&redis.url()).await.unwrap();
    let acme = customer("acme");
    store.top_up(&acme, 100, "test").await.unwrap();
    let done = RequestId::generate();
    let open = RequestId::generate();
    store.reserve(&acme, &done, 6).await.unwrap();
    store.reserve(&acme, &open, 9).await.unwrap();
    store
        .settle(
            &acme,
            vec![
                delivered(&done, 0, 3),
                failed(&done, 1, 3),
                delivered(&open, 0, 3),
            ],
        )
        .await
        .unwrap();
    let before = store.account(&acme).await.unwrap();

    // Copy the journal to JetStream, then lose everything in Redis.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let copier = tokio::spawn(journal::copy_until(
        store.clone(),
        jetstream.clone(),
        "test".into(),
        shutdown.clone(),
    ));
    for _ in 0..100 {
        if rns_points::recover::history(&jetstream, &acme)
            .await
            .unwrap()
            .len()
            >= 6
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    copier.await.unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(!store.has_account(&acme).await.unwrap());

    let restored = rns_points::recover::restore_lost_accounts(&store, &jetstream)
        .await
        .unwrap();
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0], acme);
    assert_eq!(store.account(&acme).await.unwrap(), before);
    assert!(
        rns_points::recover::restore_lost_accounts(&store, &jetstream)
            .await
            .unwrap()
            .is_empty(),
        "restored once"
    );
    // The open request's reservation came back: its last two messages settle.
    store
        .settle(&acme, vec![delivered(&open, 1, 3), failed(&open, 2, 3)])
        .await
        .unwrap();
    let after = store.account(&acme).await.unwrap();
    assert_eq!((after.balance, after.reserved, after.spent), (91, 0, 9));
    assert_balances(&store, &acme).await;
}

#[tokio::test]
async fn a_once_reservation_is_not_taken_again_after_its_request_settled() {
    let redis = RedisServer::start().await;
    let store = PointsStore::connect(&redis.url()).await.unwrap();
    let acme = customer("acme");
    store.top_up(&acme, 10, "test").await.unwrap();
    let firing = RequestId::generate();
    store.reserve_once(&acme, &firing, 2).await.unwrap();
    store
        .settle(&acme, vec![delivered(&firing, 0, 2)])
        .await
        .unwrap();
    // The hold is gone; a redelivered firing must not reserve a second time.
    store.reserve_once(&acme, &firing, 2).await.unwrap();
    let account = store.account(&acme).await.unwrap();
    assert_eq!(
        (account.balance, account.reserved, account.spent),
        (8, 0, 2)
    );
    // A plain reservation would have taken it again: the marker is what prevents it.
    store.reserve(&acme, &firing, 2).await.unwrap();
    assert_eq!(store.account(&acme).await.unwrap().reserved, 2);
}

#[tokio::test]
async fn a_once_reservation_refused_or_released_may_be_taken_again() {
    let redis = RedisServer::start().await;
    let store = PointsStore::connect(&redis.url()).await.unwrap();
    let acme = customer("acme");
    store.top_up(&acme, 1, "test").await.unwrap();
    let send = RequestId::generate();
    // Refused for a short balance: nothing is marked, so after a top-up it reserves.
    assert_eq!(
        store.reserve_once(&acme, &send, 3).await.unwrap(),
        Reservation::Insufficient { balance: 1 }
    );
    store.top_up(&acme, 9, "test").await.unwrap();
    assert_eq!(
        store.reserve_once(&acme, &send, 3).await.unwrap(),
        Reservation::Reserved
    );
    assert_eq!(store.account(&acme).await.unwrap().reserved, 3);
    // Released (its publish failed): a retry under the same id reserves again.
    store.release(&acme, &send, "not accepted").await.unwrap();
    assert_eq!(store.account(&acme).await.unwrap().reserved, 0);
    store.reserve_once(&acme, &send, 3).await.unwrap();
    let account = store.account(&acme).await.unwrap();
    assert_eq!((account.balance, account.reserved), (7, 3));
    assert_balances(&store, &acme).await;
}

#[tokio::test]
async fn a_daily_cap_counts_until_it_would_pass_and_a_firing_counts_once() {
    let redis = RedisServer::start().await;
    let store = PointsStore::connect(&redis.url()).await.unwrap();
    let caps = rns_points::DailyCaps::new(store.connection());
    let acme = customer("acme");
    let counted = rns_points::DayCount::Counted;
    assert_eq!(caps.count(&acme, 3, 5, None).await.unwrap(), counted);
    // A redelivered firing is counted once.
    assert_eq!(
        caps.count(&acme, 2, 5, Some("firing-1")).await.unwrap(),
        counted
    );
    assert_eq!(
        caps.count(&acme, 2, 5, Some("firing-1")).await.unwrap(),
        counted
    );
    match caps.count(&acme, 1, 5, None).await.unwrap() {
        rns_points::DayCount::Over {
            cap,
            sent,
            retry_after_seconds,
        } => {
            assert_eq!((cap, sent), (5, 5));
            assert!((1..=86_400).contains(&retry_after_seconds));
        }
        other => panic!("a sixth message passed the cap: {other:?}"),
    }
    // Another customer has its own day.
    assert_eq!(
        caps.count(&customer("beta"), 5, 5, None).await.unwrap(),
        counted
    );
}

#[tokio::test]
async fn a_reservation_never_confirmed_published_is_released_after_a_while_and_only_it() {
    let redis = RedisServer::start().await;
    let store = PointsStore::connect(&redis.url()).await.unwrap();
    let acme = customer("acme");
    store.top_up(&acme, 10, "test").await.unwrap();
    let awaiting = |request: &RequestId, amount: u64| ReservationRequest {
        awaits_publish: true,
        ..ReservationRequest::new(&acme, request, amount)
    };
    // Published and confirmed; published and failed (released at once); its gateway
    // died before the publish (never confirmed); and a firing's plain reservation.
    let (confirmed, failed, orphaned, plain) = (
        RequestId::generate(),
        RequestId::generate(),
        RequestId::generate(),
        RequestId::generate(),
    );
    let answers = store
        .reserve_all(&[
            awaiting(&confirmed, 1),
            awaiting(&failed, 2),
            awaiting(&orphaned, 3),
            ReservationRequest::new(&acme, &plain, 4),
        ])
        .await
        .unwrap();
    assert_eq!(answers, vec![Reservation::Reserved; 4]);
    store
        .confirm_published(&[(acme.clone(), confirmed)])
        .await
        .unwrap();
    store.release(&acme, &failed, "not accepted").await.unwrap();

    // Not yet old enough: nothing is released.
    let early = store
        .release_unpublished(std::time::Duration::from_secs(60), 100)
        .await
        .unwrap();
    assert!(early.is_empty(), "{early:?}");
    let released = store
        .release_unpublished(std::time::Duration::ZERO, 100)
        .await
        .unwrap();
    assert_eq!(released, vec![(acme.clone(), orphaned, 3)]);
    let account = store.account(&acme).await.unwrap();
    assert_eq!(
        (account.balance, account.reserved),
        (10 - 1 - 4, 1 + 4),
        "{account:?}"
    );
    assert_balances(&store, &acme).await;
    let filter = LedgerFilter {
        request_id: Some(orphaned),
        ..LedgerFilter::default()
    };
    let entries = store.ledger(&acme, None, 10, &filter).await.unwrap().items;
    assert_eq!(entries[0].kind, LedgerKind::Release);
    assert_eq!(entries[0].reason, rns_points::store::UNPUBLISHED_REASON);
    // Once: nothing is left to release.
    let again = store
        .release_unpublished(std::time::Duration::ZERO, 100)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
}
