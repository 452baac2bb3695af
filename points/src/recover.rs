//! Rebuilding balances that Redis lost, from the JetStream `LEDGER` stream.
//!
//! Every ledger entry carries the account as it was right after the change, and
//! every reservation, settlement, refund and release lists its requests with each
//! one's share, so a
//! customer's full history in `ledger.<customer>` gives back both the account and
//! what is still reserved per request. [`restore_lost_accounts`] runs when the
//! dispatcher starts and then every [`CHECK_INTERVAL`]: every customer that has
//! ledger history but no account in Redis (Redis lost its data) is rebuilt.
//!
//! The rebuilt values are *added* to whatever the account holds by then (changes made
//! after the loss started again from zero), and a marker naming the last entry makes
//! the restore happen once however many dispatchers run it. What a restore cannot
//! bring back is which messages of an in-flight request were already settled; a
//! settlement repeated after a restore can only move points within that request's
//! reservation, never charge beyond it.
use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use redis::Script;
use rns_types::points::{LedgerEntry, LedgerKind};
use rns_types::subjects::{ledger_subject, LEDGER_STREAM};
use rns_types::{CustomerId, RequestId};
use tokio_util::sync::CancellationToken;

use crate::error::PointsError;
use crate::store::{Account, PointsStore};

/// How often lost accounts are looked for.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// KEYS: account, marker. ARGV: balance, reserved, spent, topped up, then hold key and
/// remaining pairs. Returns 0 if this history was restored before.
const RESTORE: &str = r"
if redis.call('SET', KEYS[2], 1, 'NX', 'EX', 86400) == false then return 0 end
redis.call('HINCRBY', KEYS[1], 'balance', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'spent', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'topped_up', ARGV[4])
for i = 5, #ARGV, 2 do
  redis.call('HINCRBY', ARGV[i], 'remaining', ARGV[i + 1])
end
return 1
";

/// An account and its open reservations, replayed from ledger entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    pub account: Account,
    /// What is still reserved per request.
    pub holds: BTreeMap<RequestId, i64>,
    /// The id of the last entry replayed.
    pub last_id: String,
}

/// Orders stream ids (`<milliseconds>-<sequence>`) numerically.
fn id_key(id: &str) -> (u64, u64) {
    let (milliseconds, sequence) = id.split_once('-').unwrap_or((id, "0"));
    (
        milliseconds.parse().unwrap_or(0),
        sequence.parse().unwrap_or(0),
    )
}

/// Replays a customer's entries (in any order, duplicates allowed).
pub fn replay(entries: impl IntoIterator<Item = LedgerEntry>) -> Replayed {
    let ordered: BTreeMap<(u64, u64), LedgerEntry> = entries
        .into_iter()
        .map(|entry| (id_key(&entry.id), entry))
        .collect();
    let mut replayed = Replayed::default();
    for entry in ordered.values() {
        let amount = i64::try_from(entry.amount).unwrap_or(i64::MAX);
        for share in &entry.requests {
            let amount = i64::try_from(share.amount).unwrap_or(i64::MAX);
            let returned = i64::try_from(share.returned).unwrap_or(i64::MAX);
            let hold = replayed.holds.entry(share.request_id).or_insert(0);
            match entry.kind {
                LedgerKind::Reserve => *hold += amount,
                LedgerKind::Settle => *hold -= amount + returned,
                LedgerKind::Refund | LedgerKind::Release => *hold -= amount,
                LedgerKind::TopUp => {}
            }
        }
        if entry.kind == LedgerKind::TopUp {
            replayed.account.topped_up += amount;
        }
        replayed.account.balance = entry.balance;
        replayed.account.reserved = entry.reserved;
        replayed.account.spent = entry.spent;
        replayed.last_id = entry.id.clone();
    }
    replayed.holds.retain(|_, remaining| *remaining > 0);
    replayed
}

/// Every entry of `customer` in the `LEDGER` stream.
pub async fn history(
    jetstream: &async_nats::jetstream::Context,
    customer: &CustomerId,
) -> Result<Vec<LedgerEntry>, PointsError> {
    let nats = |error: &dyn std::fmt::Display| PointsError::Nats(error.to_string());
    let stream = jetstream
        .get_stream(LEDGER_STREAM)
        .await
        .map_err(|error| nats(&error))?;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: ledger_subject(customer),
            ..Default::default()
        })
        .await
        .map_err(|error| nats(&error))?;
    let mut messages = consumer.messages().await.map_err(|error| nats(&error))?;
    let mut entries = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), messages.next()).await;
        let Ok(Some(message)) = next else { break };
        let message = message.map_err(|error| nats(&error))?;
        let batch: Vec<LedgerEntry> = serde_json::from_slice(&message.payload)?;
        entries.extend(batch);
        if message.info().map(|info| info.pending).unwrap_or(0) == 0 {
            break;
        }
    }
    Ok(entries)
}

/// Rebuilds every customer that has ledger history in JetStream but no account in
/// Redis; returns who was restored.
pub async fn restore_lost_accounts(
    store: &PointsStore,
    jetstream: &async_nats::jetstream::Context,
) -> Result<Vec<CustomerId>, PointsError> {
    let nats = |error: &dyn std::fmt::Display| PointsError::Nats(error.to_string());
    let stream = jetstream
        .get_stream(LEDGER_STREAM)
        .await
        .map_err(|error| nats(&error))?;
    let mut subjects = stream
        .info_with_subjects("ledger.>")
        .await
        .map_err(|error| nats(&error))?;
    let mut restored = Vec::new();
    while let Some(subject) = subjects.next().await {
        let (subject, _) = subject.map_err(|error| nats(&error))?;
        let Some(customer) = subject
            .strip_prefix("ledger.")
            .and_then(|id| CustomerId::parse(id).ok())
        else {
            continue;
        };
        if store.has_account(&customer).await? {
            continue;
        }
        let replayed = replay(history(jetstream, &customer).await?);
        if restore(store, &customer, &replayed).await? {
            tracing::warn!(customer = %customer, balance = replayed.account.balance, reserved = replayed.account.reserved, last_entry = %replayed.last_id, "points account was missing from Redis; restored from the LEDGER stream");
            restored.push(customer);
        }
    }
    Ok(restored)
}

async fn restore(
    store: &PointsStore,
    customer: &CustomerId,
    replayed: &Replayed,
) -> Result<bool, PointsError> {
    let script = Script::new(RESTORE);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(crate::store::account_key(customer))
        .key(format!(
            "rns:points:restored:{customer}:{}",
            replayed.last_id
        ))
        .arg(replayed.account.balance)
        .arg(replayed.account.reserved)
        .arg(replayed.account.spent)
        .arg(replayed.account.topped_up);
    for (request, remaining) in &replayed.holds {
        invocation
            .arg(crate::store::hold_key(request))
            .arg(remaining);
    }
    let restored: i64 = invocation.invoke_async(&mut store.connection()).await?;
    Ok(restored == 1)
}

/// Restores lost accounts now and every [`CHECK_INTERVAL`] until `shutdown`.
pub async fn watch(
    store: PointsStore,
    jetstream: async_nats::jetstream::Context,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(error) = restore_lost_accounts(&store, &jetstream).await {
            tracing::warn!(%error, "checking for lost points accounts failed; will retry");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(CHECK_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rns_types::points::RequestShare;

    /// An entry of acme's with a zero account, covering `request` (all of `amount`).
    pub(crate) fn entry(
        id: &str,
        kind: LedgerKind,
        amount: u64,
        request: Option<RequestId>,
    ) -> LedgerEntry {
        LedgerEntry {
            id: id.into(),
            customer_id: CustomerId::parse("acme").unwrap(),
            at_ms: 0,
            kind,
            amount,
            balance: 0,
            reserved: 0,
            spent: 0,
            requests: request
                .map(|request_id| RequestShare {
                    request_id,
                    amount,
                    returned: 0,
                })
                .into_iter()
                .collect(),
            message_id: None,
            messages: None,
            returned: None,
            reason: String::new(),
        }
    }

    #[test]
    fn replay_gives_back_the_last_account_and_what_each_request_still_holds() {
        let open = RequestId::generate();
        let done = RequestId::generate();
        let mut last = entry("20-0", LedgerKind::Refund, 1, Some(open));
        (last.balance, last.reserved, last.spent) = (92, 3, 5);
        let mut settle = entry("15-0", LedgerKind::Settle, 2, Some(done));
        settle.returned = Some(1);
        settle.requests[0].returned = 1;
        let entries = vec![
            last,
            entry("1-0", LedgerKind::TopUp, 100, None),
            entry("10-0", LedgerKind::Reserve, 3, Some(done)),
            entry("11-0", LedgerKind::Reserve, 4, Some(open)),
            settle.clone(),
            settle,
        ];
        let replayed = replay(entries);
        assert_eq!(replayed.last_id, "20-0");
        assert_eq!(
            (
                replayed.account.balance,
                replayed.account.reserved,
                replayed.account.spent
            ),
            (92, 3, 5)
        );
        assert_eq!(replayed.account.topped_up, 100);
        assert_eq!(replayed.holds.len(), 1, "the settled request holds nothing");
        assert_eq!(replayed.holds[&open], 3);
    }

    #[test]
    fn replay_takes_each_requests_share_of_an_entry_of_a_gathered_round() {
        let [first, second, third] = [(); 3].map(|()| RequestId::generate());
        let share = |request_id, amount, returned| RequestShare {
            request_id,
            amount,
            returned,
        };
        let mut reserve = entry("10-0", LedgerKind::Reserve, 9, None);
        reserve.requests = vec![share(first, 2, 0), share(second, 3, 0), share(third, 4, 0)];
        // The first delivered with a point returned, the second half delivered.
        let mut settle = entry("11-0", LedgerKind::Settle, 2, None);
        settle.returned = Some(1);
        settle.requests = vec![share(first, 1, 1), share(second, 1, 0)];
        let refund = entry("12-0", LedgerKind::Refund, 1, Some(second));
        let replayed = replay([reserve, settle, refund]);
        assert_eq!(
            replayed.holds,
            BTreeMap::from([(second, 1), (third, 4)]),
            "the first is settled, the second holds 3 - 1 - 1, the third all of its 4"
        );
    }
}
