//! Contacts and groups, per customer, in Redis.
//!
//! Every key of a customer starts with `rns:c:<customer>:`, and every read and write
//! names the customer, so one customer's ids mean nothing under another's prefix:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `contact:<id>` | string | the contact as JSON |
//! | `contacts` | sorted set (by id) | every contact id, for paging in creation order |
//! | `numbers` | hash | number → contact id: one contact per number |
//! | `contact-groups:<id>` | set | the groups of a contact |
//! | `group:<id>` | string | the group as JSON |
//! | `groups` | sorted set (by id) | every group id |
//! | `members:<group id>` | sorted set (by id) | the contacts of a group |
//!
//! Changes that touch several keys are single scripts, so indexes never disagree with
//! the contacts. Ids are ULIDs: sorted by id is sorted by creation, and a cursor is
//! simply the last id of a page. Redis keeps these with AOF on (see the README); they
//! are customer data, read on every send to a group, and need these indexes.
use std::collections::BTreeMap;

use rns_types::template::{is_variable_name, MAX_VARIABLE_VALUE_CHARACTERS};

use redis::aio::ConnectionManager;
use redis::Script;
use rns_types::CustomerId;
use serde::{Deserialize, Serialize};

/// Most contacts a customer may keep.
pub const MAX_CONTACTS: u64 = 1_000_000;
/// Most groups a customer may keep.
pub const MAX_GROUPS: u64 = 10_000;
/// Contacts a search examines per call before it answers with what it found and a
/// cursor to continue from.
pub const SEARCH_BUDGET: usize = 20_000;
const READ_CHUNK: usize = 500;

/// ARGV: prefix, id, record JSON, number, mode (`create`, `update`, `upsert`), groups
/// mode (`replace`, `add`, `keep`), group ids... Upsert finds the contact by number
/// and keeps stored memo and fields where the new record has none.
const PUT_CONTACT: &str = r"
local P, id, json, number, mode, groups_mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
for i = 7, #ARGV do
  if redis.call('EXISTS', P .. 'group:' .. ARGV[i]) == 0 then return 'unknown_group:' .. ARGV[i] end
end
local owner = redis.call('HGET', P .. 'numbers', number)
if mode == 'upsert' and owner then id = owner end
local key = P .. 'contact:' .. id
local old = redis.call('GET', key)
if mode == 'create' and old then return 'exists:' .. id end
if mode == 'update' and not old then return 'not_found' end
if owner and owner ~= id then return 'duplicate_number:' .. owner end
if not old and redis.call('ZCARD', P .. 'contacts') >= MAX_CONTACTS then return 'full' end
local record = cjson.decode(json)
record.id = id
if old then
  local previous = cjson.decode(old)
  record.created_at_ms = previous.created_at_ms
  if previous.number ~= number then redis.call('HDEL', P .. 'numbers', previous.number) end
  if mode == 'upsert' then
    -- An import row adds to what is known: empty cells keep the stored values.
    if record.memo == '' then record.memo = previous.memo end
    for name, value in pairs(previous.fields or {}) do
      if record.fields[name] == nil then record.fields[name] = value end
    end
  end
end
redis.call('SET', key, cjson.encode(record))
redis.call('HSET', P .. 'numbers', number, id)
redis.call('ZADD', P .. 'contacts', 0, id)
local memberships = P .. 'contact-groups:' .. id
if groups_mode == 'replace' then
  for _, group in ipairs(redis.call('SMEMBERS', memberships)) do
    redis.call('ZREM', P .. 'members:' .. group, id)
  end
  redis.call('DEL', memberships)
end
if groups_mode ~= 'keep' then
  for i = 7, #ARGV do
    redis.call('SADD', memberships, ARGV[i])
    redis.call('ZADD', P .. 'members:' .. ARGV[i], 0, id)
  end
end
if old then return 'updated:' .. id end
return 'created:' .. id
";

/// ARGV: prefix, id. Returns 1 if the contact existed.
const DELETE_CONTACT: &str = r"
local P, id = ARGV[1], ARGV[2]
local key = P .. 'contact:' .. id
local old = redis.call('GET', key)
if not old then return 0 end
local previous = cjson.decode(old)
if redis.call('HGET', P .. 'numbers', previous.number) == id then
  redis.call('HDEL', P .. 'numbers', previous.number)
end
local memberships = P .. 'contact-groups:' .. id
for _, group in ipairs(redis.call('SMEMBERS', memberships)) do
  redis.call('ZREM', P .. 'members:' .. group, id)
end
redis.call('DEL', key, memberships)
redis.call('ZREM', P .. 'contacts', id)
return 1
";

/// ARGV: prefix, group id, JSON. Returns 'created', 'full'.
const CREATE_GROUP: &str = r"
local P, id = ARGV[1], ARGV[2]
if redis.call('ZCARD', P .. 'groups') >= MAX_GROUPS then return 'full' end
redis.call('SET', P .. 'group:' .. id, ARGV[3])
redis.call('ZADD', P .. 'groups', 0, id)
return 'created'
";

/// ARGV: prefix, group id. Returns 1 if the group existed.
const DELETE_GROUP: &str = r"
local P, id = ARGV[1], ARGV[2]
if redis.call('DEL', P .. 'group:' .. id) == 0 then return 0 end
redis.call('ZREM', P .. 'groups', id)
for _, contact in ipairs(redis.call('ZRANGE', P .. 'members:' .. id, 0, -1)) do
  redis.call('SREM', P .. 'contact-groups:' .. contact, id)
end
redis.call('DEL', P .. 'members:' .. id)
return 1
";

/// ARGV: prefix, group id, contact ids... Adds all or none: returns 'not_found' for
/// an unknown group, 'unknown_contacts:<ids>' naming up to ten unknown contacts, or
/// 'added:<count>' (contacts already members are not counted).
const ADD_MEMBERS: &str = r"
local P, group = ARGV[1], ARGV[2]
if redis.call('EXISTS', P .. 'group:' .. group) == 0 then return 'not_found' end
local missing = {}
for i = 3, #ARGV do
  if redis.call('EXISTS', P .. 'contact:' .. ARGV[i]) == 0 and #missing < 10 then
    table.insert(missing, ARGV[i])
  end
end
if #missing > 0 then return 'unknown_contacts:' .. table.concat(missing, ',') end
local added = 0
for i = 3, #ARGV do
  added = added + redis.call('ZADD', P .. 'members:' .. group, 0, ARGV[i])
  redis.call('SADD', P .. 'contact-groups:' .. ARGV[i], group)
end
return 'added:' .. added
";

/// ARGV: prefix, group id, contact id. Returns -1 for an unknown group, else how many
/// memberships were removed (0 or 1).
const REMOVE_MEMBER: &str = r"
local P, group, contact = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', P .. 'group:' .. group) == 0 then return -1 end
redis.call('SREM', P .. 'contact-groups:' .. contact, group)
return redis.call('ZREM', P .. 'members:' .. group, contact)
";

/// A contact as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContactRecord {
    #[serde(default)]
    pub id: String,
    pub number: String,
    #[serde(default)]
    pub memo: String,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// A contact with its groups, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Contact {
    #[serde(flatten)]
    pub record: ContactRecord,
    pub group_ids: Vec<String>,
}

/// A group as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupRecord {
    pub id: String,
    pub name: String,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// What a contact write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Created(String),
    Updated(String),
    NotFound,
    /// Another contact of this customer has the number.
    DuplicateNumber {
        existing: String,
    },
    UnknownGroup(String),
    Full,
}

/// What adding members did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    Added(u64),
    GroupNotFound,
    UnknownContacts(Vec<String>),
}

/// How a write treats the contact's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupsChange {
    /// The contact's groups become exactly these.
    Replace,
    /// These groups are added to the contact's.
    Add,
    /// The contact's groups stay as they are.
    Keep,
}

/// How a write finds its contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    Create,
    Update,
    /// The contact with this number if there is one, else a new one (CSV import).
    Upsert,
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Clone)]
pub struct ContactStore {
    connection: ConnectionManager,
    put_contact: Script,
    delete_contact: Script,
    create_group: Script,
    delete_group: Script,
    add_members: Script,
    remove_member: Script,
}

impl std::fmt::Debug for ContactStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ContactStore")
            .finish_non_exhaustive()
    }
}

fn prefix(customer: &CustomerId) -> String {
    format!("rns:c:{customer}:")
}

/// Whether `id` is a contact or group id (a ULID).
pub fn is_id(id: &str) -> bool {
    id.len() == 26 && ulid::Ulid::from_string(id).is_ok()
}

pub fn new_id() -> String {
    rns_types::ids::monotonic_ulid().to_string()
}

impl ContactStore {
    /// On the gateway's shared Redis connection.
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            connection,
            put_contact: Script::new(
                &PUT_CONTACT.replace("MAX_CONTACTS", &MAX_CONTACTS.to_string()),
            ),
            delete_contact: Script::new(DELETE_CONTACT),
            create_group: Script::new(&CREATE_GROUP.replace("MAX_GROUPS", &MAX_GROUPS.to_string())),
            delete_group: Script::new(DELETE_GROUP),
            add_members: Script::new(ADD_MEMBERS),
            remove_member: Script::new(REMOVE_MEMBER),
        }
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Runs `script` with the customer's key prefix and `args` as its arguments.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        customer: &CustomerId,
        args: &[&str],
    ) -> Result<T, redis::RedisError> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(prefix(customer));
        for arg in args {
            invocation.arg(*arg);
        }
        invocation.invoke_async(&mut self.connection()).await
    }

    fn put_invocation<'a>(
        &'a self,
        customer: &CustomerId,
        record: &ContactRecord,
        mode: PutMode,
        groups: GroupsChange,
        group_ids: &[String],
    ) -> redis::ScriptInvocation<'a> {
        let mut invocation = self.put_contact.prepare_invoke();
        invocation
            .arg(prefix(customer))
            .arg(&record.id)
            .arg(serde_json::to_string(record).expect("a contact serialises"))
            .arg(&record.number)
            .arg(match mode {
                PutMode::Create => "create",
                PutMode::Update => "update",
                PutMode::Upsert => "upsert",
            })
            .arg(match groups {
                GroupsChange::Replace => "replace",
                GroupsChange::Add => "add",
                GroupsChange::Keep => "keep",
            })
            .arg(group_ids);
        invocation
    }

    /// Creates, updates or upserts a contact and its group memberships atomically.
    pub async fn put(
        &self,
        customer: &CustomerId,
        record: &ContactRecord,
        mode: PutMode,
        groups: GroupsChange,
        group_ids: &[String],
    ) -> Result<PutOutcome, redis::RedisError> {
        let reply: String = self
            .put_invocation(customer, record, mode, groups, group_ids)
            .invoke_async(&mut self.connection())
            .await?;
        Ok(put_outcome(&reply))
    }

    /// Upserts many contacts in one pipeline (CSV import); one outcome per record.
    pub async fn put_many(
        &self,
        customer: &CustomerId,
        records: &[ContactRecord],
        group_ids: &[String],
    ) -> Result<Vec<PutOutcome>, redis::RedisError> {
        let mut connection = self.connection();
        // Load the script once, then call it by hash in a pipeline.
        self.put_contact
            .prepare_invoke()
            .load_async(&mut connection)
            .await?;
        let mut pipeline = redis::pipe();
        for record in records {
            let invocation = self.put_invocation(
                customer,
                record,
                PutMode::Upsert,
                GroupsChange::Add,
                group_ids,
            );
            pipeline.invoke_script(&invocation);
        }
        let replies: Vec<String> = pipeline.query_async(&mut connection).await?;
        Ok(replies.iter().map(|reply| put_outcome(reply)).collect())
    }

    pub async fn delete(&self, customer: &CustomerId, id: &str) -> Result<bool, redis::RedisError> {
        let deleted: i64 = self.run(&self.delete_contact, customer, &[id]).await?;
        Ok(deleted == 1)
    }

    pub async fn contact(
        &self,
        customer: &CustomerId,
        id: &str,
    ) -> Result<Option<Contact>, redis::RedisError> {
        Ok(self
            .contacts(customer, &[id.to_owned()])
            .await?
            .into_iter()
            .next())
    }

    /// The contacts with these ids that exist, in the given order, with their groups.
    pub async fn contacts(
        &self,
        customer: &CustomerId,
        ids: &[String],
    ) -> Result<Vec<Contact>, redis::RedisError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let prefix = prefix(customer);
        let mut pipeline = redis::pipe();
        pipeline.cmd("MGET").arg(
            ids.iter()
                .map(|id| format!("{prefix}contact:{id}"))
                .collect::<Vec<_>>(),
        );
        for id in ids {
            pipeline
                .cmd("SMEMBERS")
                .arg(format!("{prefix}contact-groups:{id}"));
        }
        let mut replies: Vec<redis::Value> = pipeline.query_async(&mut self.connection()).await?;
        let groups: Vec<Vec<String>> = replies
            .split_off(1)
            .into_iter()
            .map(|reply| redis::from_redis_value(reply).unwrap_or_default())
            .collect();
        let records: Vec<Option<String>> =
            redis::from_redis_value(replies.pop().unwrap_or(redis::Value::Nil))?;
        Ok(records
            .into_iter()
            .zip(groups)
            .filter_map(|(record, mut group_ids)| {
                let record: ContactRecord = serde_json::from_str(&record?).ok()?;
                group_ids.sort();
                Some(Contact { record, group_ids })
            })
            .collect())
    }

    /// Contact records only (no groups), for many ids; missing ones are skipped.
    pub async fn records(
        &self,
        customer: &CustomerId,
        ids: &[String],
    ) -> Result<Vec<ContactRecord>, redis::RedisError> {
        let prefix = prefix(customer);
        let mut records = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(READ_CHUNK) {
            let keys: Vec<String> = chunk
                .iter()
                .map(|id| format!("{prefix}contact:{id}"))
                .collect();
            let values: Vec<Option<String>> = redis::cmd("MGET")
                .arg(keys)
                .query_async(&mut self.connection())
                .await?;
            records.extend(
                values
                    .into_iter()
                    .flatten()
                    .filter_map(|value| serde_json::from_str(&value).ok()),
            );
        }
        Ok(records)
    }

    /// The contact records of whichever of `numbers` are this customer's contacts.
    pub async fn records_by_numbers(
        &self,
        customer: &CustomerId,
        numbers: &[&str],
    ) -> Result<Vec<ContactRecord>, redis::RedisError> {
        let mut ids = Vec::new();
        for chunk in numbers.chunks(READ_CHUNK) {
            let found: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(format!("{}numbers", prefix(customer)))
                .arg(chunk)
                .query_async(&mut self.connection())
                .await?;
            ids.extend(found.into_iter().flatten());
        }
        self.records(customer, &ids).await
    }

    /// Ids after `cursor` in the sorted set `set` (of this customer), up to `count`.
    async fn ids_after(
        &self,
        customer: &CustomerId,
        set: &str,
        cursor: Option<&str>,
        count: usize,
    ) -> Result<Vec<String>, redis::RedisError> {
        let start = cursor.map_or_else(|| "-".to_owned(), |cursor| format!("({cursor}"));
        redis::cmd("ZRANGEBYLEX")
            .arg(format!("{}{set}", prefix(customer)))
            .arg(start)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(count)
            .query_async(&mut self.connection())
            .await
    }

    /// Contacts in id order after `cursor`, optionally only a group's, and optionally
    /// only those whose number or memo contains `query`. A search examines at most
    /// [`SEARCH_BUDGET`] contacts per call: a page may then hold fewer than `limit`
    /// items and still have a `next_cursor`.
    pub async fn list(
        &self,
        customer: &CustomerId,
        group: Option<&str>,
        query: Option<&Query>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Contact>, redis::RedisError> {
        let set = group.map_or_else(|| "contacts".to_owned(), |group| format!("members:{group}"));
        let mut matching: Vec<String> = Vec::with_capacity(limit + 1);
        let mut cursor = cursor.map(str::to_owned);
        let mut examined = 0;
        let exhausted = loop {
            let chunk = if query.is_some() {
                READ_CHUNK
            } else {
                limit + 1 - matching.len()
            };
            let ids = self
                .ids_after(customer, &set, cursor.as_deref(), chunk)
                .await?;
            let end_of_set = ids.len() < chunk;
            match query {
                None => matching.extend(ids.iter().cloned()),
                Some(query) => {
                    for record in self.records(customer, &ids).await? {
                        if matching.len() > limit {
                            break;
                        }
                        cursor = Some(record.id.clone());
                        if query.matches(&record) {
                            matching.push(record.id);
                        }
                    }
                }
            }
            if query.is_none() {
                cursor = ids.last().cloned().or(cursor);
            }
            examined += ids.len();
            if matching.len() > limit || end_of_set {
                break end_of_set && matching.len() <= limit;
            }
            if examined >= SEARCH_BUDGET {
                break false;
            }
        };
        let next_cursor = if matching.len() > limit {
            matching.truncate(limit);
            matching.last().cloned()
        } else if exhausted {
            None
        } else {
            cursor
        };
        let items = self.contacts(customer, &matching).await?;
        Ok(Page { items, next_cursor })
    }

    /// The numbers of up to `most` of the customer's contacts whose memo contains
    /// `text` (ignoring case), from one search of at most [`SEARCH_BUDGET`] contacts.
    pub async fn numbers_with_memo(
        &self,
        customer: &CustomerId,
        text: &str,
        most: usize,
    ) -> Result<Vec<String>, redis::RedisError> {
        let Some(query) = Query::new(text) else {
            return Ok(Vec::new());
        };
        let page = self.list(customer, None, Some(&query), None, most).await?;
        Ok(page
            .items
            .into_iter()
            .filter(|contact| contact.record.memo.to_lowercase().contains(&query.text))
            .map(|contact| contact.record.number)
            .collect())
    }

    /// Every contact id of a group.
    pub async fn members(
        &self,
        customer: &CustomerId,
        group: &str,
    ) -> Result<Vec<String>, redis::RedisError> {
        redis::cmd("ZRANGE")
            .arg(format!("{}members:{group}", prefix(customer)))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.connection())
            .await
    }

    pub async fn create_group(
        &self,
        customer: &CustomerId,
        group: &GroupRecord,
    ) -> Result<bool, redis::RedisError> {
        let record = serde_json::to_string(group).expect("a group serialises");
        let reply: String = self
            .run(&self.create_group, customer, &[&group.id, &record])
            .await?;
        Ok(reply == "created")
    }

    /// Replaces a group's record if the group exists.
    pub async fn rename_group(
        &self,
        customer: &CustomerId,
        group: &GroupRecord,
    ) -> Result<bool, redis::RedisError> {
        let written: Option<String> = redis::cmd("SET")
            .arg(format!("{}group:{}", prefix(customer), group.id))
            .arg(serde_json::to_string(group).expect("a group serialises"))
            .arg("XX")
            .query_async(&mut self.connection())
            .await?;
        Ok(written.is_some())
    }

    pub async fn group(
        &self,
        customer: &CustomerId,
        id: &str,
    ) -> Result<Option<(GroupRecord, u64)>, redis::RedisError> {
        let prefix = prefix(customer);
        let (record, members): (Option<String>, u64) = redis::pipe()
            .cmd("GET")
            .arg(format!("{prefix}group:{id}"))
            .cmd("ZCARD")
            .arg(format!("{prefix}members:{id}"))
            .query_async(&mut self.connection())
            .await?;
        Ok(record
            .and_then(|record| serde_json::from_str(&record).ok())
            .map(|record| (record, members)))
    }

    pub async fn groups(
        &self,
        customer: &CustomerId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<(GroupRecord, u64)>, redis::RedisError> {
        let mut ids = self
            .ids_after(customer, "groups", cursor, limit + 1)
            .await?;
        let next_cursor = (ids.len() > limit).then(|| {
            ids.truncate(limit);
            ids.last().cloned().unwrap_or_default()
        });
        if ids.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                next_cursor,
            });
        }
        // Every record and member count of the page in one round trip.
        let prefix = prefix(customer);
        let mut pipeline = redis::pipe();
        for id in &ids {
            pipeline
                .cmd("GET")
                .arg(format!("{prefix}group:{id}"))
                .cmd("ZCARD")
                .arg(format!("{prefix}members:{id}"));
        }
        let replies: Vec<(Option<String>, u64)> =
            pipeline.query_async(&mut self.connection()).await?;
        let items = replies
            .into_iter()
            .filter_map(|(record, members)| {
                let record = serde_json::from_str(&record?).ok()?;
                Some((record, members))
            })
            .collect();
        Ok(Page { items, next_cursor })
    }

    pub async fn delete_group(
        &self,
        customer: &CustomerId,
        id: &str,
    ) -> Result<bool, redis::RedisError> {
        let deleted: i64 = self.run(&self.delete_group, customer, &[id]).await?;
        Ok(deleted == 1)
    }

    pub async fn add_members(
        &self,
        customer: &CustomerId,
        group: &str,
        contacts: &[String],
    ) -> Result<AddOutcome, redis::RedisError> {
        let mut args: Vec<&str> = Vec::with_capacity(contacts.len() + 1);
        args.push(group);
        args.extend(contacts.iter().map(String::as_str));
        let reply: String = self.run(&self.add_members, customer, &args).await?;
        Ok(if reply == "not_found" {
            AddOutcome::GroupNotFound
        } else if let Some(missing) = reply.strip_prefix("unknown_contacts:") {
            AddOutcome::UnknownContacts(missing.split(',').map(str::to_owned).collect())
        } else {
            AddOutcome::Added(
                reply
                    .strip_prefix("added:")
                    .and_then(|count| count.parse().ok())
                    .unwrap_or(0),
            )
        })
    }

    /// `None` if the group does not exist, else whether the contact was a member.
    pub async fn remove_member(
        &self,
        customer: &CustomerId,
        group: &str,
        contact: &str,
    ) -> Result<Option<bool>, redis::RedisError> {
        let removed: i64 = self
            .run(&self.remove_member, customer, &[group, contact])
            .await?;
        Ok((removed >= 0).then_some(removed == 1))
    }
}

fn put_outcome(reply: &str) -> PutOutcome {
    let (kind, detail) = reply.split_once(':').unwrap_or((reply, ""));
    match kind {
        "created" => PutOutcome::Created(detail.to_owned()),
        "updated" => PutOutcome::Updated(detail.to_owned()),
        "duplicate_number" | "exists" => PutOutcome::DuplicateNumber {
            existing: detail.to_owned(),
        },
        "unknown_group" => PutOutcome::UnknownGroup(detail.to_owned()),
        "full" => PutOutcome::Full,
        _ => PutOutcome::NotFound,
    }
}

/// A contact search: a substring of the number (digits) or of the memo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    text: String,
    digits: Option<String>,
}

impl Query {
    pub fn new(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        let looks_like_number = text
            .chars()
            .all(|character| character.is_ascii_digit() || "+-() ".contains(character));
        Some(Self {
            text: text.to_lowercase(),
            digits: (looks_like_number && !digits.is_empty()).then_some(digits),
        })
    }

    pub fn matches(&self, record: &ContactRecord) -> bool {
        if let Some(digits) = &self.digits {
            let national = record.number.trim_start_matches('+');
            if national.contains(digits.as_str()) {
                return true;
            }
            // `+82 10-…` searched as `010…`: compare national digits too.
            if let Some(rest) = digits.strip_prefix("82") {
                if national.contains(&format!("0{rest}")) {
                    return true;
                }
            }
        }
        record.memo.to_lowercase().contains(&self.text)
    }
}

/// One named value (a contact field or a send's variable).
pub fn check_field(name: &str, value: &str) -> Result<(), String> {
    if !is_variable_name(name) {
        return Err(format!(
            "field name {name:?} must be 1 to 32 characters without spaces, braces or '#'"
        ));
    }
    if value.chars().count() > MAX_VARIABLE_VALUE_CHARACTERS {
        return Err(format!(
            "field {name:?} is longer than {MAX_VARIABLE_VALUE_CHARACTERS} characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(number: &str, memo: &str) -> ContactRecord {
        ContactRecord {
            id: new_id(),
            number: number.into(),
            memo: memo.into(),
            fields: BTreeMap::new(),
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn a_query_matches_number_digits_or_memo_text() {
        let kim = record("01012345678", "VIP 고객 김철수");
        assert!(Query::new("1234").unwrap().matches(&kim));
        assert!(Query::new("010-1234").unwrap().matches(&kim));
        assert!(Query::new("+82 10 1234").unwrap().matches(&kim));
        assert!(Query::new("vip").unwrap().matches(&kim));
        assert!(Query::new("김철수").unwrap().matches(&kim));
        assert!(!Query::new("9999").unwrap().matches(&kim));
        assert!(!Query::new("이영희").unwrap().matches(&kim));
        assert!(Query::new("  ").is_none());
    }

    #[test]
    fn ids_are_ulids() {
        assert!(is_id(&new_id()));
        assert!(!is_id("01JDXYZ"));
        assert!(!is_id("../../etc/passwd-000000000"));
    }
}
