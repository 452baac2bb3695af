//! Sends that came due from `SCHEDULES` (`due.<customer>`): held advertisements,
//! one-time and recurring scheduled sends, fired by nats-server at their time.
//!
//! Before a due send is dispatched, its schedule record decides: a cancelled or
//! finished schedule is dropped; a one-time schedule moves from `scheduled` to
//! `running` by compare-and-set (so it races safely with a cancel) and is sent as the
//! request whose points were reserved when it was scheduled; a recurring firing
//! becomes a new request whose id is derived from the schedule and the firing's
//! stream sequence (the same on every redelivery), counts against the customer's
//! daily cap and pays for itself at firing time, and is recorded as a failed firing,
//! with the reason, when it would pass the cap, cannot be paid or is an
//! advertisement due at night without consent. After dispatch the record counts the
//! firing once and stores the next firing time; the last firing before `until`
//! finishes the schedule and purges it.
use rns_nats::Documents;
use rns_points::{PointsStore, Reservation};
use rns_types::advertising::advertisement_hold_until;
use rns_types::schedule::{
    FailedFiring, ScheduleBook, ScheduleRecord, ScheduleState, KEPT_FAILURES,
};
use rns_types::subjects::{schedule_subject, SCHEDULES_STREAM};
use rns_types::wire::SendRequest;
use rns_types::{CustomerId, RequestId};

use crate::error::DispatchError;

/// One firing being handled, to be recorded once it was dispatched.
#[derive(Debug, Clone)]
pub struct Firing {
    customer: CustomerId,
    schedule: String,
    sequence: u64,
    request: RequestId,
    recurring: bool,
    next_fire_at_ms: Option<u64>,
}

/// Where a due send comes from: its stream sequence, when the server fired it and
/// when it fires next (`Nats-Schedule-Next`).
#[derive(Debug, Clone, Copy)]
pub struct Due {
    pub sequence: u64,
    pub fired_at_ms: u64,
    pub next_fire_at_ms: Option<u64>,
}

#[derive(Clone)]
pub struct Firings {
    pub schedules: Documents<ScheduleBook>,
    pub points: PointsStore,
    pub caps: rns_points::DailyCaps,
    pub jetstream: async_nats::jetstream::Context,
}

fn directory_error(error: rns_nats::DocumentError) -> DispatchError {
    DispatchError::Nats(format!("schedules: {error}"))
}

impl Firings {
    async fn record(
        &self,
        customer: &CustomerId,
        schedule: &str,
    ) -> Result<Option<ScheduleRecord>, DispatchError> {
        let book = self
            .schedules
            .get(customer.as_str())
            .await
            .map_err(directory_error)?;
        Ok(book.and_then(|mut book| book.schedules.remove(schedule)))
    }

    /// Changes the record of `schedule`; `change` returns whether it changed anything.
    async fn change(
        &self,
        customer: &CustomerId,
        schedule: &str,
        mut change: impl FnMut(&mut ScheduleRecord) -> bool,
    ) -> Result<Option<ScheduleRecord>, DispatchError> {
        let mut found = None;
        self.schedules
            .update(customer.as_str(), Some(ScheduleBook::default), |book| {
                let Some(record) = book.schedules.get_mut(schedule) else {
                    return Err(());
                };
                let changed = change(record);
                found = Some(record.clone());
                if changed {
                    Ok(())
                } else {
                    Err(())
                }
            })
            .await
            .map_err(directory_error)?
            .ok();
        Ok(found)
    }

    async fn purge(&self, schedule: &str) -> Result<(), DispatchError> {
        let nats = |error: &dyn std::fmt::Display| {
            DispatchError::Nats(format!("purging schedule {schedule}: {error}"))
        };
        self.jetstream
            .get_stream(SCHEDULES_STREAM)
            .await
            .map_err(|error| nats(&error))?
            .purge()
            .filter(schedule_subject(&schedule))
            .await
            .map_err(|error| nats(&error))?;
        Ok(())
    }

    /// Records a firing that sent nothing, once per firing.
    async fn fail(
        &self,
        customer: &CustomerId,
        schedule: &str,
        due: Due,
        reason: String,
    ) -> Result<(), DispatchError> {
        tracing::warn!(customer = %customer, schedule, %reason, "scheduled firing not sent");
        let record = self
            .change(customer, schedule, |record| {
                if due.sequence <= record.last_sequence {
                    return false;
                }
                record.last_sequence = due.sequence;
                record.failed_fires += 1;
                record.failures.push(FailedFiring {
                    at_ms: due.fired_at_ms,
                    reason: reason.clone(),
                });
                let excess = record.failures.len().saturating_sub(KEPT_FAILURES);
                record.failures.drain(..excess);
                record.next_fire_at_ms = due.next_fire_at_ms;
                if record.state == ScheduleState::Scheduled {
                    record.state = ScheduleState::Running;
                }
                true
            })
            .await?;
        if record.is_some_and(|record| record.firings_exhausted()) {
            self.finish_schedule(customer, schedule).await?;
        }
        Ok(())
    }

    /// What to dispatch for a due send, if anything. A recurring firing counts
    /// against the customer's `daily_cap` of messages when it has one.
    pub async fn prepare(
        &self,
        request: SendRequest,
        due: Due,
        daily_cap: Option<u64>,
    ) -> Result<Option<(SendRequest, Option<Firing>)>, DispatchError> {
        let Some(schedule) = request.schedule_id.clone() else {
            // A held send without a schedule record: send it as it is.
            return Ok(Some((request, None)));
        };
        let customer = request.customer_id.clone();
        let Some(record) = self.record(&customer, &schedule).await? else {
            tracing::warn!(customer = %customer, schedule, "due send of an unknown schedule; dropped");
            return Ok(None);
        };
        let Some(recurrence) = record.recurrence.clone() else {
            // One-time: scheduled → running, unless a cancel won.
            let record = self
                .change(&customer, &schedule, |record| {
                    if record.state == ScheduleState::Scheduled {
                        record.state = ScheduleState::Running;
                        return true;
                    }
                    false
                })
                .await?;
            if record.is_none_or(|record| record.state == ScheduleState::Cancelled) {
                tracing::info!(customer = %customer, schedule, "cancelled schedule fired; dropped");
                return Ok(None);
            }
            let firing = Firing {
                customer,
                schedule,
                sequence: due.sequence,
                request: request.request_id,
                recurring: false,
                next_fire_at_ms: None,
            };
            return Ok(Some((request, Some(firing))));
        };
        if !record.state.is_live() || due.sequence <= record.last_sequence {
            return Ok(None);
        }
        let now_ms = rns_types::time::now_milliseconds();
        if recurrence.until_ms.is_some_and(|until| now_ms > until) || record.firings_exhausted() {
            self.finish_schedule(&customer, &schedule).await?;
            return Ok(None);
        }
        if request.advertisement
            && !request.night_consent
            && advertisement_hold_until(now_ms).is_some()
        {
            let reason = "an advertisement may not be sent between 21:00 and 08:00 KST without the recipients' consent".to_owned();
            self.fail(&customer, &schedule, due, reason).await?;
            return Ok(None);
        }
        let firing_request = SendRequest {
            request_id: RequestId::for_firing(&schedule, due.sequence, due.fired_at_ms),
            accepted_at_ms: now_ms,
            // Routed by the weights at the firing.
            weights: None,
            ..request
        };
        if let Some(cap) = daily_cap {
            let messages = firing_request.message_count() as u64;
            let once = firing_request.request_id.to_string();
            if let rns_points::DayCount::Over { cap, sent, .. } = self
                .caps
                .count(&customer, messages, cap, Some(&once))
                .await?
            {
                let reason = format!(
                    "this firing's {messages} messages would pass the daily cap of {cap} ({sent} sent today, Korean time)"
                );
                self.fail(&customer, &schedule, due, reason).await?;
                return Ok(None);
            }
        }
        let needed = firing_request.points();
        match self
            .points
            .reserve_once(&customer, &firing_request.request_id, needed)
            .await?
        {
            Reservation::Reserved => {}
            Reservation::Insufficient { balance } => {
                let reason =
                    format!("this firing needs {needed} points and the balance was {balance}");
                self.fail(&customer, &schedule, due, reason).await?;
                return Ok(None);
            }
        }
        let firing = Firing {
            customer,
            schedule,
            sequence: due.sequence,
            request: firing_request.request_id,
            recurring: true,
            next_fire_at_ms: due.next_fire_at_ms,
        };
        Ok(Some((firing_request, Some(firing))))
    }

    async fn finish_schedule(
        &self,
        customer: &CustomerId,
        schedule: &str,
    ) -> Result<(), DispatchError> {
        self.change(customer, schedule, |record| {
            if record.state.is_live() {
                record.state = ScheduleState::Done;
                record.next_fire_at_ms = None;
                return true;
            }
            false
        })
        .await?;
        self.purge(schedule).await
    }

    /// Records a dispatched firing, once.
    pub async fn finish(&self, firing: Firing) -> Result<(), DispatchError> {
        let record = self
            .change(&firing.customer, &firing.schedule, |record| {
                if firing.recurring && firing.sequence <= record.last_sequence {
                    return false;
                }
                if !firing.recurring && record.state == ScheduleState::Done {
                    return false;
                }
                record.fires += 1;
                record.last_sequence = firing.sequence;
                record.last_request_id = Some(firing.request);
                record.next_fire_at_ms = firing.next_fire_at_ms;
                record.state = if firing.recurring && record.state.is_live() {
                    ScheduleState::Running
                } else if record.state == ScheduleState::Cancelled {
                    ScheduleState::Cancelled
                } else {
                    ScheduleState::Done
                };
                true
            })
            .await?;
        let Some(record) = record else { return Ok(()) };
        let until = record
            .recurrence
            .as_ref()
            .and_then(|recurrence| recurrence.until_ms);
        let past_until = match (until, firing.next_fire_at_ms) {
            (Some(until), Some(next)) => next > until,
            _ => false,
        };
        if firing.recurring && (past_until || record.firings_exhausted()) {
            self.finish_schedule(&firing.customer, &firing.schedule)
                .await?;
        }
        Ok(())
    }
}
