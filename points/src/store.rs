//! Balances in Redis, changed only by atomic scripts.
//!
//! Per customer, the hash `rns:points:<customer>` holds `balance` (available),
//! `reserved`, `spent` and `topped_up`; every script keeps
//! `balance + reserved + spent = topped_up`. Per accepted request, the hash
//! `rns:points:hold:<request>` holds what is still reserved for it (`remaining`), and
//! the bitmap `rns:points:settled:<request>` has a bit per settled message (by its
//! index), so a final event settles once however often it is delivered; both
//! disappear when the request is fully settled or released. They are the only
//! per-request state and live only while a request has unsettled messages.
//!
//! A gateway reserves a request's points before it publishes the request. If it
//! dies between the two, nothing would ever settle or release that hold, so such a
//! reservation ([`ReservationRequest::awaits_publish`]) is also listed in the sorted
//! set [`UNPUBLISHED_KEY`] (by when it was made) until the gateway confirms the
//! publish ([`PointsStore::confirm_published`]) or releases it; one still listed
//! after a while was never published, and [`PointsStore::release_unpublished`]
//! returns its points.
//!
//! Every change appends a [`LedgerEntry`] to the customer's ledger stream (recent
//! entries, read by `GET /v1/points/ledger`) and to the journal stream, which
//! [`crate::journal`] copies into the durable JetStream `LEDGER` stream: Redis is the
//! hot copy, JetStream the record a lost Redis is rebuilt from.
use redis::aio::ConnectionManager;
use redis::Script;
use rns_types::points::{LedgerEntry, LedgerKind};
use rns_types::{CustomerId, MessageId, RequestId};
use serde::Serialize;

use crate::error::PointsError;

/// Recent entries kept per customer in Redis (older ones are in JetStream).
pub const LEDGER_RECENT_ENTRIES: u64 = 100_000;
/// Entries waiting to be copied to JetStream; beyond this the oldest are trimmed.
pub const JOURNAL_MAX_ENTRIES: u64 = 10_000_000;
/// The Redis stream [`crate::journal`] drains into JetStream.
pub const JOURNAL_KEY: &str = "rns:points:journal";
/// Reservations whose request is not yet known to be published: members
/// `<customer>/<request>`, scored by when they were reserved (ms since the epoch).
pub const UNPUBLISHED_KEY: &str = "rns:points:unpublished";
/// The reason a never-published request's points are released with.
pub const UNPUBLISHED_REASON: &str =
    "the request was never published (its gateway stopped before JetStream had it)";

/// Most requests one ledger entry lists: a reservation or settlement of more is
/// written as several entries, so an entry stays a few kilobytes.
pub const LEDGER_ENTRY_MAX_REQUESTS: usize = 100;

/// Shared by every script: `emit(entry)` stamps the entry with the account after the
/// change and appends it to the ledger and the journal; `MAX_SHARES` is
/// [`LEDGER_ENTRY_MAX_REQUESTS`]. Expects `CUSTOMER`, `NOW`,
/// `ACCOUNT`, `LEDGER`, `JOURNAL`, `LEDGER_MAX` and `JOURNAL_MAX` to be set.
const EMIT: &str = r"
local MAX_SHARES = 100
local function account_value(field)
  return tonumber(redis.call('HGET', ACCOUNT, field) or '0')
end
local function emit(entry)
  entry.customer_id = CUSTOMER
  entry.at_ms = NOW
  local account = redis.call('HMGET', ACCOUNT, 'balance', 'reserved', 'spent')
  entry.balance = tonumber(account[1] or '0')
  entry.reserved = tonumber(account[2] or '0')
  entry.spent = tonumber(account[3] or '0')
  local payload = cjson.encode(entry)
  local id = redis.call('XADD', LEDGER, 'MAXLEN', '~', LEDGER_MAX, '*', 'entry', payload)
  redis.call('XADD', JOURNAL, 'MAXLEN', '~', JOURNAL_MAX, '*', 'customer', CUSTOMER, 'id', id, 'entry', payload)
  return id
end
";

/// KEYS: account, ledger, journal. ARGV: customer, now, ledger max, journal max, amount, reason.
const TOP_UP: &str = r"
local amount = tonumber(ARGV[5])
redis.call('HINCRBY', ACCOUNT, 'balance', amount)
redis.call('HINCRBY', ACCOUNT, 'topped_up', amount)
emit({kind = 'top_up', amount = amount, reason = ARGV[6]})
return account_value('balance')
";

/// Reservations of several requests, of any customers, each all or nothing, in
/// order; one ledger entry per customer lists the requests it reserved, each with its
/// amount. KEYS: journal, unpublished, then per request its account, ledger, hold and
/// once-marker. ARGV: now, ledger max, journal max, then per request its customer,
/// amount, request id, `1` if it is reserved at most once per request whatever
/// happens to its hold later (the marker is set when it is reserved, kept two days,
/// and removed by a release), else `0`, and `1` if a new hold is listed as awaiting
/// its publish, else `0`. Returns per request
/// `1, 0` when reserved (or already reserved) and `0, balance` when the balance is
/// short.
const RESERVE: &str = r"
local NOW, LEDGER_MAX, JOURNAL_MAX = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local JOURNAL, UNPUBLISHED = KEYS[1], KEYS[2]
local CUSTOMER, ACCOUNT, LEDGER
EMIT
-- Per customer in this call: its balance as the call changed it, the points it
-- reserved that its account does not show yet, and the requests of its next entry;
-- customers in the order first seen. A request costs one HSETNX: the account is
-- read once and changed once per entry.
local rounds, order = {}, {}
-- Score and member of each new hold awaiting its publish, listed in one call.
local unpublished = {}
local function round_of()
  local round = rounds[CUSTOMER]
  if not round then
    round = {account = ACCOUNT, ledger = LEDGER, balance = account_value('balance'), pending = 0, amount = 0, requests = {}}
    rounds[CUSTOMER] = round
    order[#order + 1] = CUSTOMER
  end
  return round
end
-- The account takes what the round reserved, then the round's entry is written
-- (stamped with the account as it is now).
local function emit_round(round)
  redis.call('HINCRBY', ACCOUNT, 'balance', -round.pending)
  redis.call('HINCRBY', ACCOUNT, 'reserved', round.pending)
  round.pending = 0
  emit({kind = 'reserve', amount = round.amount, requests = round.requests})
  round.amount, round.requests = 0, {}
end
local function reserve(hold, marker, amount, request, once, awaits_publish)
  if once and redis.call('EXISTS', marker) == 1 then return 1, 0 end
  local round = round_of()
  if round.balance < amount then
    if redis.call('EXISTS', hold) == 1 then return 1, 0 end
    return 0, round.balance
  end
  if amount > 0 then
    -- A hold already there was reserved by an earlier attempt of the request.
    if redis.call('HSETNX', hold, 'remaining', amount) == 0 then return 1, 0 end
    if awaits_publish then
      unpublished[#unpublished + 1] = NOW
      unpublished[#unpublished + 1] = CUSTOMER .. '/' .. request
    end
    round.balance = round.balance - amount
    round.pending = round.pending + amount
    round.amount = round.amount + amount
    round.requests[#round.requests + 1] = {request_id = request, amount = amount}
    if #round.requests >= MAX_SHARES then emit_round(round) end
  elseif redis.call('EXISTS', hold) == 1 then
    return 1, 0
  end
  if once then redis.call('SET', marker, 1, 'EX', 172800) end
  return 1, 0
end
local answers = {}
for i = 0, (#KEYS - 2) / 4 - 1 do
  local key, arg = 2 + 4 * i, 3 + 5 * i
  CUSTOMER, ACCOUNT, LEDGER = ARGV[arg + 1], KEYS[key + 1], KEYS[key + 2]
  local reserved, balance = reserve(KEYS[key + 3], KEYS[key + 4], tonumber(ARGV[arg + 2]), ARGV[arg + 3], ARGV[arg + 4] == '1', ARGV[arg + 5] == '1')
  answers[2 * i + 1] = reserved
  answers[2 * i + 2] = balance
end
for _, customer in ipairs(order) do
  local round = rounds[customer]
  if #round.requests > 0 then
    CUSTOMER, ACCOUNT, LEDGER = customer, round.account, round.ledger
    emit_round(round)
  end
end
for first = 1, #unpublished, 1000 do
  redis.call('ZADD', UNPUBLISHED, unpack(unpublished, first, math.min(first + 999, #unpublished)))
end
return answers
";

/// KEYS: account, ledger, journal, hold, settled bits, once-marker, unpublished.
/// ARGV: customer, now, ledger max, journal max, request, reason. Returns the points
/// released.
const RELEASE: &str = r"
local remaining = tonumber(redis.call('HGET', KEYS[4], 'remaining') or '0')
redis.call('DEL', KEYS[4], KEYS[5], KEYS[6])
redis.call('ZREM', KEYS[7], CUSTOMER .. '/' .. ARGV[5])
if remaining <= 0 then return 0 end
redis.call('HINCRBY', ACCOUNT, 'reserved', -remaining)
redis.call('HINCRBY', ACCOUNT, 'balance', remaining)
emit({kind = 'release', amount = remaining, requests = {{request_id = ARGV[5], amount = remaining}}, reason = ARGV[6]})
return remaining
";

/// KEYS: account, ledger, journal, then per request its hold and its settled bits.
/// ARGV: customer, now, ledger max, journal max, then per message (sorted by
/// request): request number (1-based), request, message index, message id, reserved,
/// spent, failure reason (empty when delivered). Returns how many messages were
/// settled. Per message it costs one `SETBIT`, per request one read and one change of
/// its hold; the account changes only before each ledger entry (and at the end), so
/// every entry is stamped with the account as it is then. The delivered messages settle in `settle` entries listing
/// each request's spent and returned points (one per `MAX_SHARES` requests); each
/// failed message's refund is an entry of its own.
const SETTLE: &str = r"
local current, hold, bits, exists, remaining, changed = nil, nil, nil, false, 0, false
local count, spent_total, returned_total = 0, 0, 0
local pending_taken, pending_spent = 0, 0
local settled = 0
-- The account changes of the messages settled since the account last changed,
-- summed: one HINCRBY per field before each entry instead of one per message.
local function apply()
  if pending_taken > 0 then redis.call('HINCRBY', ACCOUNT, 'reserved', -pending_taken) end
  if pending_spent > 0 then redis.call('HINCRBY', ACCOUNT, 'spent', pending_spent) end
  if pending_taken > pending_spent then
    redis.call('HINCRBY', ACCOUNT, 'balance', pending_taken - pending_spent)
  end
  pending_taken, pending_spent = 0, 0
end
-- The settle entry being gathered: each request's share, and the totals.
local shares, settle_amount, settle_returned, settle_messages = {}, 0, 0, 0
local function emit_settle()
  if #shares == 0 then return end
  apply()
  local entry = {kind = 'settle', amount = settle_amount, requests = shares, messages = settle_messages}
  if settle_returned > 0 then
    entry.returned = settle_returned
    entry.reason = 'returned ' .. settle_returned .. ' points reserved for a fallback'
  end
  emit(entry)
  shares, settle_amount, settle_returned, settle_messages = {}, 0, 0, 0
end
local function flush()
  if changed then
    if remaining <= 0 then
      redis.call('DEL', hold, bits)
    else
      redis.call('HSET', hold, 'remaining', remaining)
    end
  end
  if current and count > 0 then
    local share = {request_id = current, amount = spent_total}
    if returned_total > 0 then share.returned = returned_total end
    shares[#shares + 1] = share
    settle_amount = settle_amount + spent_total
    settle_returned = settle_returned + returned_total
    settle_messages = settle_messages + count
    if #shares >= MAX_SHARES then emit_settle() end
  end
  count, spent_total, returned_total, changed = 0, 0, 0, false
end
for i = 5, #ARGV, 7 do
  local request = ARGV[i + 1]
  if request ~= current then
    flush()
    current = request
    hold = KEYS[2 + 2 * tonumber(ARGV[i])]
    bits = KEYS[3 + 2 * tonumber(ARGV[i])]
    -- A hold always has its 'remaining' field: none means no hold.
    local stored = redis.call('HGET', hold, 'remaining')
    exists = stored ~= false
    remaining = tonumber(stored or '0')
  end
  if exists and redis.call('SETBIT', bits, ARGV[i + 2], 1) == 0 then
    local taken = math.min(tonumber(ARGV[i + 4]), remaining)
    local spent = math.min(tonumber(ARGV[i + 5]), taken)
    remaining = remaining - taken
    pending_taken = pending_taken + taken
    pending_spent = pending_spent + spent
    changed = true
    -- A fully settled request's hold goes; later messages of it settle nothing.
    if remaining <= 0 then exists = false end
    settled = settled + 1
    if ARGV[i + 6] == '' then
      count = count + 1
      spent_total = spent_total + spent
      returned_total = returned_total + taken - spent
    elseif taken > 0 then
      apply()
      emit({kind = 'refund', amount = taken, requests = {{request_id = request, amount = taken}}, message_id = ARGV[i + 3], reason = ARGV[i + 6]})
    end
  end
end
flush()
emit_settle()
apply()
return settled
";

fn script(body: &str) -> Script {
    Script::new(&format!(
        "local CUSTOMER, NOW, LEDGER_MAX, JOURNAL_MAX = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]\n\
         local ACCOUNT, LEDGER, JOURNAL = KEYS[1], KEYS[2], KEYS[3]\n{EMIT}\n{body}"
    ))
}

/// A customer's points right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Account {
    /// Available to spend.
    pub balance: i64,
    /// Held for accepted messages without a final state yet.
    pub reserved: i64,
    pub spent: i64,
    pub topped_up: i64,
}

/// What a reservation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved now, or by an earlier attempt of the same request.
    Reserved,
    /// The balance does not cover the request; nothing was reserved.
    Insufficient { balance: i64 },
}

/// Points to reserve for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRequest {
    pub customer: CustomerId,
    pub request: RequestId,
    pub amount: u64,
    /// At most once per request ([`PointsStore::reserve_once`]).
    pub once: bool,
    /// Made before its request is published: listed in [`UNPUBLISHED_KEY`] until
    /// [`PointsStore::confirm_published`] or a release, and released by
    /// [`PointsStore::release_unpublished`] if it stays there.
    pub awaits_publish: bool,
}

impl ReservationRequest {
    /// A plain reservation ([`PointsStore::reserve`]).
    pub fn new(customer: &CustomerId, request: &RequestId, amount: u64) -> Self {
        Self {
            customer: customer.clone(),
            request: *request,
            amount,
            once: false,
            awaits_publish: false,
        }
    }
}

fn first(mut reservations: Vec<Reservation>) -> Reservation {
    reservations.remove(0)
}

/// One final message event, to settle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub message_id: MessageId,
    pub reserved: u32,
    pub spent: u32,
    /// Empty when delivered; the failure otherwise.
    pub failure: String,
}

/// A page of ledger entries, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LedgerPage {
    pub items: Vec<LedgerEntry>,
    pub next_cursor: Option<String>,
}

#[derive(Clone)]
pub struct PointsStore {
    connection: ConnectionManager,
    top_up: Script,
    reserve: Script,
    release: Script,
    settle: Script,
}

impl std::fmt::Debug for PointsStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PointsStore")
            .finish_non_exhaustive()
    }
}

pub(crate) fn account_key(customer: &CustomerId) -> String {
    format!("rns:points:{customer}")
}

fn ledger_key(customer: &CustomerId) -> String {
    format!("rns:points:ledger:{customer}")
}

pub(crate) fn hold_key(request: &RequestId) -> String {
    format!("rns:points:hold:{request}")
}

/// Set when `request` was reserved at most once ([`ReservationRequest::once`]).
fn once_key(request: &RequestId) -> String {
    format!("rns:points:reserved-once:{request}")
}

/// `request`'s member of [`UNPUBLISHED_KEY`].
fn unpublished_member(customer: &CustomerId, request: &RequestId) -> String {
    format!("{customer}/{request}")
}

/// A bit per message of `request` whose final event was settled.
fn settled_key(request: &RequestId) -> String {
    format!("rns:points:settled:{request}")
}

impl PointsStore {
    pub async fn connect(url: &str) -> Result<Self, PointsError> {
        let client = redis::Client::open(url)?;
        Ok(Self::with_connection(ConnectionManager::new(client).await?))
    }

    /// On a connection its process shares with other stores.
    pub fn with_connection(connection: ConnectionManager) -> Self {
        Self {
            connection,
            top_up: script(TOP_UP),
            reserve: Script::new(&RESERVE.replace("EMIT", EMIT)),
            release: script(RELEASE),
            settle: script(SETTLE),
        }
    }

    /// The store's connection, for other stores on the same Redis.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    fn invocation<'a>(script: &'a Script, customer: &CustomerId) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(account_key(customer))
            .key(ledger_key(customer))
            .key(JOURNAL_KEY)
            .arg(customer.as_str())
            .arg(rns_types::time::now_milliseconds())
            .arg(LEDGER_RECENT_ENTRIES)
            .arg(JOURNAL_MAX_ENTRIES);
        invocation
    }

    /// Adds `amount` points; returns the new balance.
    pub async fn top_up(
        &self,
        customer: &CustomerId,
        amount: u64,
        reason: &str,
    ) -> Result<i64, PointsError> {
        let mut invocation = Self::invocation(&self.top_up, customer);
        invocation.arg(amount).arg(reason);
        Ok(invocation.invoke_async(&mut self.connection()).await?)
    }

    /// Reserves `amount` for `request`, all or nothing. Idempotent per request: a
    /// retry of a request that already holds its reservation reserves nothing more.
    pub async fn reserve(
        &self,
        customer: &CustomerId,
        request: &RequestId,
        amount: u64,
    ) -> Result<Reservation, PointsError> {
        let asked = ReservationRequest::new(customer, request, amount);
        self.reserve_all(&[asked]).await.map(first)
    }

    /// Like [`PointsStore::reserve`], but at most once per request for two days, even
    /// after the request was fully settled (its hold gone): for requests that may be
    /// handled again after they finished, such as a redelivered schedule firing or a
    /// send retried under its `Idempotency-Key` after its gateway died. A release
    /// lets the request be reserved again.
    pub async fn reserve_once(
        &self,
        customer: &CustomerId,
        request: &RequestId,
        amount: u64,
    ) -> Result<Reservation, PointsError> {
        let asked = ReservationRequest {
            once: true,
            ..ReservationRequest::new(customer, request, amount)
        };
        self.reserve_all(&[asked]).await.map(first)
    }

    /// Each of `asked`, in order, as [`PointsStore::reserve`] (or
    /// [`PointsStore::reserve_once`] where it says `once`), in one call to Redis.
    pub async fn reserve_all(
        &self,
        asked: &[ReservationRequest],
    ) -> Result<Vec<Reservation>, PointsError> {
        if asked.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.reserve.prepare_invoke();
        invocation
            .key(JOURNAL_KEY)
            .key(UNPUBLISHED_KEY)
            .arg(rns_types::time::now_milliseconds())
            .arg(LEDGER_RECENT_ENTRIES)
            .arg(JOURNAL_MAX_ENTRIES);
        for reservation in asked {
            invocation
                .key(account_key(&reservation.customer))
                .key(ledger_key(&reservation.customer))
                .key(hold_key(&reservation.request))
                .key(once_key(&reservation.request))
                .arg(reservation.customer.as_str())
                .arg(reservation.amount)
                .arg(reservation.request.to_string())
                .arg(u8::from(reservation.once))
                .arg(u8::from(reservation.awaits_publish));
        }
        let answers: Vec<i64> = invocation.invoke_async(&mut self.connection()).await?;
        if answers.len() != asked.len() * 2 {
            return Err(PointsError::Unreadable(format!(
                "{} answers to {} reservations",
                answers.len(),
                asked.len()
            )));
        }
        Ok(answers
            .chunks(2)
            .map(|answer| match answer {
                [1, _] => Reservation::Reserved,
                [_, balance] => Reservation::Insufficient { balance: *balance },
                _ => unreachable!("chunks of two"),
            })
            .collect())
    }

    /// Returns what is still reserved for `request` to the balance (the request was
    /// not accepted, or was cancelled); later settlements of it change nothing.
    pub async fn release(
        &self,
        customer: &CustomerId,
        request: &RequestId,
        reason: &str,
    ) -> Result<u64, PointsError> {
        let mut invocation = Self::invocation(&self.release, customer);
        invocation
            .key(hold_key(request))
            .key(settled_key(request))
            .key(once_key(request))
            .key(UNPUBLISHED_KEY)
            .arg(request.to_string())
            .arg(reason);
        Ok(invocation.invoke_async(&mut self.connection()).await?)
    }

    /// Takes the reservations of these published requests off [`UNPUBLISHED_KEY`].
    pub async fn confirm_published(
        &self,
        published: &[(CustomerId, RequestId)],
    ) -> Result<(), PointsError> {
        if published.is_empty() {
            return Ok(());
        }
        let members: Vec<String> = published
            .iter()
            .map(|(customer, request)| unpublished_member(customer, request))
            .collect();
        redis::cmd("ZREM")
            .arg(UNPUBLISHED_KEY)
            .arg(members)
            .query_async::<()>(&mut self.connection())
            .await?;
        Ok(())
    }

    /// Releases up to `limit` reservations made more than `older_than` ago whose
    /// requests were never confirmed published nor released (their gateway stopped
    /// between the two); returns each with the points released.
    pub async fn release_unpublished(
        &self,
        older_than: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<(CustomerId, RequestId, u64)>, PointsError> {
        let before = rns_types::time::now_milliseconds()
            .saturating_sub(u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX));
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(UNPUBLISHED_KEY)
            .arg("-inf")
            .arg(before)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.connection())
            .await?;
        let mut released = Vec::with_capacity(members.len());
        for member in members {
            let parsed = member.rsplit_once('/').and_then(|(customer, request)| {
                Some((
                    CustomerId::parse(customer).ok()?,
                    RequestId::parse(request).ok()?,
                ))
            });
            let Some((customer, request)) = parsed else {
                tracing::error!(%member, "an unreadable unpublished reservation; dropped");
                redis::cmd("ZREM")
                    .arg(UNPUBLISHED_KEY)
                    .arg(&member)
                    .query_async::<()>(&mut self.connection())
                    .await?;
                continue;
            };
            let amount = self
                .release(&customer, &request, UNPUBLISHED_REASON)
                .await?;
            released.push((customer, request, amount));
        }
        Ok(released)
    }

    /// Settles final events of one customer's messages, each at most once; returns
    /// how many were settled now (the rest were settled before).
    pub async fn settle(
        &self,
        customer: &CustomerId,
        mut settlements: Vec<Settlement>,
    ) -> Result<u64, PointsError> {
        if settlements.is_empty() {
            return Ok(0);
        }
        settlements.sort_by_key(|settlement| {
            (
                settlement.message_id.request_id(),
                settlement.message_id.index(),
            )
        });
        let mut invocation = Self::invocation(&self.settle, customer);
        let mut holds = 0usize;
        let mut last_request = None;
        for settlement in &settlements {
            let request = settlement.message_id.request_id();
            if last_request != Some(request) {
                invocation
                    .key(hold_key(&request))
                    .key(settled_key(&request));
                holds += 1;
                last_request = Some(request);
            }
            invocation
                .arg(holds)
                .arg(request.to_string())
                .arg(settlement.message_id.index())
                .arg(settlement.message_id.to_string())
                .arg(settlement.reserved)
                .arg(settlement.spent)
                .arg(&settlement.failure);
        }
        Ok(invocation.invoke_async(&mut self.connection()).await?)
    }

    /// Whether Redis holds an account for `customer` (every top-up creates one).
    pub async fn has_account(&self, customer: &CustomerId) -> Result<bool, PointsError> {
        Ok(redis::cmd("EXISTS")
            .arg(account_key(customer))
            .query_async::<i64>(&mut self.connection())
            .await?
            == 1)
    }

    pub async fn account(&self, customer: &CustomerId) -> Result<Account, PointsError> {
        let (balance, reserved, spent, topped_up): (
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        ) = redis::cmd("HMGET")
            .arg(account_key(customer))
            .arg(&["balance", "reserved", "spent", "topped_up"][..])
            .query_async(&mut self.connection())
            .await?;
        Ok(Account {
            balance: balance.unwrap_or(0),
            reserved: reserved.unwrap_or(0),
            spent: spent.unwrap_or(0),
            topped_up: topped_up.unwrap_or(0),
        })
    }

    /// Up to `limit` entries older than `cursor` (an entry id) that `filter` admits,
    /// newest first.
    pub async fn ledger(
        &self,
        customer: &CustomerId,
        cursor: Option<&str>,
        limit: usize,
        filter: &LedgerFilter,
    ) -> Result<LedgerPage, PointsError> {
        // Unfiltered, one read of `limit + 1` entries; filtered, reads of at least
        // `LEDGER_READ` until the page is full or `LEDGER_SCANNED` entries were read.
        let read = if filter.is_empty() {
            limit + 1
        } else {
            (limit + 1).max(LEDGER_READ)
        };
        let mut end = match cursor {
            Some(cursor) => format!("({cursor}"),
            None => "+".to_owned(),
        };
        let mut items = Vec::with_capacity(limit + 1);
        let mut scanned = 0;
        loop {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(ledger_key(customer))
                .arg(&end)
                .arg("-")
                .arg("COUNT")
                .arg(read)
                .query_async(&mut self.connection())
                .await?;
            let count = reply.ids.len();
            for stream_entry in reply.ids {
                scanned += 1;
                let payload: String = stream_entry.get("entry").unwrap_or_default();
                let mut entry: LedgerEntry = serde_json::from_str(&payload)?;
                entry.id = stream_entry.id;
                end = format!("({}", entry.id);
                if !filter.admits(&entry) {
                    continue;
                }
                items.push(entry);
                if items.len() > limit {
                    items.truncate(limit);
                    let next_cursor = items.last().map(|entry| entry.id.clone());
                    return Ok(LedgerPage { items, next_cursor });
                }
            }
            if count < read {
                return Ok(LedgerPage {
                    items,
                    next_cursor: None,
                });
            }
            if scanned >= LEDGER_SCANNED {
                // Where the scan stopped: the next page goes on from there.
                let next_cursor = Some(end.trim_start_matches('(').to_owned());
                return Ok(LedgerPage { items, next_cursor });
            }
        }
    }
}

/// Entries a filtered ledger page reads at once.
const LEDGER_READ: usize = 256;
/// Most entries one filtered ledger page reads: a page of a rare kind may hold fewer
/// than its limit and still a `next_cursor`, where the reading stopped.
const LEDGER_SCANNED: usize = 10_000;

/// Which ledger entries a page shows: all, or those of one kind, or those that cover
/// one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerFilter {
    pub kind: Option<LedgerKind>,
    pub request_id: Option<RequestId>,
}

impl LedgerFilter {
    fn is_empty(&self) -> bool {
        self.kind.is_none() && self.request_id.is_none()
    }

    fn admits(&self, entry: &LedgerEntry) -> bool {
        self.kind.is_none_or(|kind| entry.kind == kind)
            && self
                .request_id
                .as_ref()
                .is_none_or(|request| entry.covers(request))
    }
}

/// Whether `cursor` is a ledger entry id (`<milliseconds>-<sequence>`).
pub fn is_ledger_cursor(cursor: &str) -> bool {
    cursor
        .split_once('-')
        .is_some_and(|(milliseconds, sequence)| {
            !milliseconds.is_empty()
                && !sequence.is_empty()
                && milliseconds.len() <= 20
                && sequence.len() <= 20
                && milliseconds.bytes().all(|byte| byte.is_ascii_digit())
                && sequence.bytes().all(|byte| byte.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_stream_ids_only() {
        assert!(is_ledger_cursor("1732406400000-0"));
        assert!(!is_ledger_cursor("1732406400000"));
        assert!(!is_ledger_cursor("+"));
        assert!(!is_ledger_cursor("1-0 COUNT 5"));
        assert!(!is_ledger_cursor("-1"));
    }

    #[test]
    fn the_scripts_cap_an_entry_at_the_declared_number_of_requests() {
        assert!(EMIT.contains(&format!("local MAX_SHARES = {LEDGER_ENTRY_MAX_REQUESTS}\n")));
    }
}
