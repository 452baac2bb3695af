//! Daily caps: how many messages a customer may have accepted per Korean day, when
//! the operator set a cap. The gateway counts a send made now or scheduled once when
//! it accepts it; the dispatcher counts each firing of a recurring schedule when it
//! fires, once however often the firing is redelivered. A count that would pass the
//! cap adds nothing.
//!
//! `rns:c:<customer>:messages-on:<day>` holds the day's count (kept two days);
//! `rns:c:<customer>:counted:<id>` marks a firing already counted.
use redis::aio::ConnectionManager;
use redis::Script;
use rns_types::CustomerId;

use crate::PointsError;

/// Adds `ARGV[1]` messages to the day's count `KEYS[1]` unless that passes the cap
/// `ARGV[2]` or the marker `KEYS[2]` (if given) says they were counted; answers the
/// count before, and whether they are counted.
const COUNT_DAY: &str = r"
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  return {tonumber(redis.call('GET', KEYS[1]) or '0'), 1}
end
local before = tonumber(redis.call('GET', KEYS[1]) or '0')
local adding = tonumber(ARGV[1])
if before + adding > tonumber(ARGV[2]) then
  return {before, 0}
end
redis.call('INCRBY', KEYS[1], adding)
redis.call('EXPIRE', KEYS[1], 172800)
if KEYS[2] then
  redis.call('SET', KEYS[2], 1, 'EX', 172800)
end
return {before, 1}
";

/// What became of a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayCount {
    Counted,
    /// It would pass `cap`: `sent` were counted today; the day ends in
    /// `retry_after_seconds`.
    Over {
        cap: u64,
        sent: u64,
        retry_after_seconds: u64,
    },
}

#[derive(Clone)]
pub struct DailyCaps {
    connection: ConnectionManager,
    script: Script,
}

impl std::fmt::Debug for DailyCaps {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("DailyCaps").finish_non_exhaustive()
    }
}

impl DailyCaps {
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            connection,
            script: Script::new(COUNT_DAY),
        }
    }

    /// Counts `messages` against `customer`'s `cap` for today (Korean time), once
    /// per `once` id when given.
    pub async fn count(
        &self,
        customer: &CustomerId,
        messages: u64,
        cap: u64,
        once: Option<&str>,
    ) -> Result<DayCount, PointsError> {
        let day = rns_types::time::korean_day(rns_types::time::now_milliseconds());
        let mut invocation = self.script.prepare_invoke();
        invocation.key(format!("rns:c:{customer}:messages-on:{}", day.number));
        if let Some(once) = once {
            invocation.key(format!("rns:c:{customer}:counted:{once}"));
        }
        let (before, counted): (u64, u8) = invocation
            .arg(messages)
            .arg(cap)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(if counted == 1 {
            DayCount::Counted
        } else {
            DayCount::Over {
                cap,
                sent: before,
                retry_after_seconds: day.milliseconds_left.div_ceil(1_000),
            }
        })
    }
}
