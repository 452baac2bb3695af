//! Names of every NATS subject, stream, consumer and KV bucket, and the
//! `Nats-Msg-Id` of every publish.
//!
//! Subjects are built only from validated ids ([`CustomerId`], [`CarrierId`]), which
//! cannot contain `.`, `*`, `>` or whitespace, so no input can address another
//! customer's subject. Names are upper-case streams and lower-case consumers, so an
//! operator finds them with `nats stream ls` and `nats consumer ls SEND`.
use crate::carrier::CarrierId;
use crate::ids::{CustomerId, MessageId, RequestId};
use crate::priority::Priority;

/// Accepted send requests, one message per HTTP request, `send.<customer>`.
pub const SEND_STREAM: &str = "SEND";
pub const SEND_SUBJECTS: &str = "send.>";
/// Sends held until a time: message schedules on `sched.<request>`, which the server
/// publishes to `due.<customer>` in the same stream when they are due, even if no
/// RNS service runs then. (Schedules cannot live in `SEND`: a stream with schedules
/// must discard old messages when full, and `SEND` refuses new ones instead.)
pub const SCHEDULES_STREAM: &str = "SCHEDULES";
pub const SCHEDULE_SUBJECTS: &str = "sched.>";
pub const DUE_SUBJECTS: &str = "due.>";
/// The dispatcher's durable consumer of due sends on [`SCHEDULES_STREAM`].
pub const DUE_CONSUMER: &str = "dispatcher-due";
/// The dispatcher's durable consumer on [`SEND_STREAM`].
pub const DISPATCHER_CONSUMER: &str = "dispatcher";

/// Message records and events bound for ClickHouse, `result.<customer>`.
pub const RESULTS_STREAM: &str = "RESULTS";
pub const RESULTS_SUBJECTS: &str = "result.>";
/// The analytics durable consumer on [`RESULTS_STREAM`].
pub const ANALYTICS_CONSUMER: &str = "analytics";

/// The points settlement's durable consumer on [`RESULTS_STREAM`].
pub const POINTS_CONSUMER: &str = "points";

/// The webhook worker's durable consumer on [`RESULTS_STREAM`]: first attempts.
pub const WEBHOOK_CONSUMER: &str = "webhooks";
/// Webhook retries: message schedules on `webhook_retry.<delivery>.<attempt>` that the
/// server publishes to `webhook.<customer>` when the retry is due, so a retry waits
/// in JetStream (not in a worker, not in anyone's acknowledgement window) however
/// long its backoff.
pub const WEBHOOKS_STREAM: &str = "WEBHOOKS";
pub const WEBHOOK_SUBJECTS: &str = "webhook.>";
pub const WEBHOOK_RETRY_SUBJECTS: &str = "webhook_retry.>";
/// The webhook worker's durable consumer of due retries on [`WEBHOOKS_STREAM`].
pub const WEBHOOK_RETRY_CONSUMER: &str = "webhook-retries";
/// Webhook settings, one [`crate::webhook::WebhookConfig`] per customer.
pub const WEBHOOKS_BUCKET: &str = "webhooks";

/// Delivery receipts, `receipt.<carrier>.<reference>` (the correlation key, see
/// [`crate::receipt`]) as carriers post them, and receipt deadlines,
/// `receipt.<carrier>.deadline.<message>.<hop>`, which message schedules on
/// `receipt_deadline.<carrier>.<message>.<hop>` publish when they are due. A receipt
/// not yet read is found by its subject, so a deadline never overtakes it; a deadline
/// due and not yet read is found by its message's.
pub const RECEIPTS_STREAM: &str = "RECEIPTS";
pub const RECEIPT_SUBJECTS: &str = "receipt.>";
pub const RECEIPT_DEADLINE_SUBJECTS: &str = "receipt_deadline.>";
/// The carriers service's durable consumer of receipts on [`RECEIPTS_STREAM`].
pub const RECEIPT_CONSUMER: &str = "receipts";
/// Where each awaited receipt stands, `<carrier>.<carrier reference>` (see
/// [`crate::receipt::correlation_key`]).
pub const RECEIPT_CORRELATIONS_BUCKET: &str = "receipt_correlations";

/// Messages from handsets, `inbound.<carrier>` (see [`crate::inbound`]).
pub const INBOUND_STREAM: &str = "INBOUND";
pub const INBOUND_SUBJECTS: &str = "inbound.>";
/// The gateway's durable consumer of [`INBOUND_STREAM`].
pub const INBOUND_CONSUMER: &str = "inbound";

/// Where `carrier`'s messages from handsets are stored.
pub fn inbound_subject(carrier: &crate::CarrierId) -> String {
    format!("inbound.{carrier}")
}

/// Every change of every customer's points, `ledger.<customer>`: the durable copy of
/// the balances kept in Redis.
/// The audit log ([`crate::audit`]): `audit.customer.<id>` and `audit.operator`.
pub const AUDIT_STREAM: &str = "AUDIT";
pub const AUDIT_SUBJECTS: &str = "audit.>";
pub const LEDGER_STREAM: &str = "LEDGER";
pub const LEDGER_SUBJECTS: &str = "ledger.>";

/// MaxDeliver advisories of every consumer, made durable: a message that exhausted
/// its deliveries on a carrier fails over from here.
pub const ADVISORIES_STREAM: &str = "ADVISORIES";
pub const MAX_DELIVERIES_ADVISORIES: &str = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>";
/// The failover worker's durable consumer on [`ADVISORIES_STREAM`].
pub const FAILOVER_CONSUMER: &str = "failover";

/// Customer profiles (name, routing weights, sender numbers), keyed by customer id.
pub const CUSTOMERS_BUCKET: &str = "customers";
/// Hashed API keys (`sha256` hex) to customer id.
pub const API_KEYS_BUCKET: &str = "api_keys";
/// The last failure reason of a message on a carrier, `<message id>.<hop>`, written
/// by the worker on its last attempt and read by the failover worker.
pub const FAILURE_REASONS_BUCKET: &str = "failure_reasons";
/// Opt-out (080) numbers to the sender number they serve: `<080 number>` →
/// `<customer> <sender number>`. Created once per number, so no two senders share one.
pub const OPT_OUT_LINES_BUCKET: &str = "opt_out_lines";
/// Sender numbers to the customer holding them (verified or suspended there):
/// `<number>` → `<customer>`. Creating the key is the claim, so no two customers
/// hold one number.
pub const SENDER_OWNERS_BUCKET: &str = "sender_owners";
/// People who use the console (`rns_types::account::Person`), by id.
pub const PEOPLE_BUCKET: &str = "people";
/// The SHA-256 of a person's email to their id: creating the key takes the email.
pub const PERSON_EMAILS_BUCKET: &str = "person_emails";
/// MMS images, `<customer>/<sha256 of the JPEG>`: each stored once, however many
/// requests and recipients use it (object store stream `OBJ_mms_images`).
pub const MMS_IMAGES_BUCKET: &str = "mms_images";
/// Scheduled sends, one document per customer (a `ScheduleBook`).
pub const SCHEDULES_BUCKET: &str = "schedules";
/// Templates, one document per customer (a `TemplateBook`).
pub const TEMPLATES_BUCKET: &str = "templates";
/// Circuit state per carrier, written by carrier workers, watched by the dispatcher.
pub const CARRIER_HEALTH_BUCKET: &str = "carrier_health";

/// The key of a message's last failure reason on hop `hop`.
pub fn failure_reason_key(message: &MessageId, hop: u16) -> String {
    format!("{message}.{hop}")
}

/// The subject of a message schedule: a held request's id, or a schedule's id.
pub fn schedule_subject(id: &impl std::fmt::Display) -> String {
    format!("sched.{id}")
}

pub fn due_subject(customer: &CustomerId) -> String {
    format!("due.{customer}")
}

pub fn send_subject(customer: &CustomerId) -> String {
    format!("send.{customer}")
}

pub fn result_subject(customer: &CustomerId) -> String {
    format!("result.{customer}")
}

pub fn ledger_subject(customer: &CustomerId) -> String {
    format!("ledger.{customer}")
}

pub fn carrier_subject(carrier: &CarrierId) -> String {
    format!("carrier.{carrier}")
}

/// The subject of a carrier's lane: `carrier.kt` for normal messages (the queue's
/// subject before lanes existed), `carrier.kt.high` and `carrier.kt.bulk` for the
/// others.
pub fn carrier_lane_subject(carrier: &CarrierId, priority: Priority) -> String {
    match priority {
        Priority::Normal => carrier_subject(carrier),
        other => format!("carrier.{carrier}.{other}"),
    }
}

/// The consumer of a carrier's lane: `carrier-kt` for normal messages,
/// `carrier-kt-high` and `carrier-kt-bulk` for the others.
pub fn carrier_lane_consumer(carrier: &CarrierId, priority: Priority) -> String {
    match priority {
        Priority::Normal => carrier_consumer(carrier),
        other => format!("carrier-{carrier}-{other}"),
    }
}

/// `CARRIER_KT` for `kt`: one work-queue stream per carrier.
pub fn carrier_stream(carrier: &CarrierId) -> String {
    format!("CARRIER_{}", carrier.as_str().to_ascii_uppercase())
}

/// `carrier-kt` for `kt`: the one durable consumer of a carrier's work queue, shared
/// by all of that carrier's workers.
pub fn carrier_consumer(carrier: &CarrierId) -> String {
    format!("carrier-{carrier}")
}

/// `Nats-Msg-Id` values: each names the input and the hop, so a redelivered input
/// republishes under the same id and JetStream drops the copy.
pub mod message_ids {
    use super::*;

    pub fn send(request: &RequestId) -> String {
        format!("send:{request}")
    }

    pub fn carrier_job(message: &MessageId, hop: u16) -> String {
        format!("job:{message}:{hop}")
    }

    /// Chunk `chunk` of the jobs that request `request` routed to `carrier`, published
    /// as one batch (the dispatcher's routing of a request is the same on every
    /// delivery, so a repeat publishes the same batches under the same ids).
    pub fn carrier_batch(request: &RequestId, carrier: &CarrierId, chunk: usize) -> String {
        format!("jobs:{request}:{carrier}:{chunk}")
    }

    /// A SEND message holding several requests of one customer, named by its first
    /// (a request is gathered into one message only, and never published alone).
    pub fn gathered_sends(first: &RequestId) -> String {
        format!("sends:{first}")
    }

    /// Chunk `chunk` of the jobs that the requests of the SEND message whose first
    /// request is `first` routed to `carrier` (see [`carrier_batch`]).
    pub fn gathered_carrier_batch(first: &RequestId, carrier: &CarrierId, chunk: usize) -> String {
        format!("jobs:sends:{first}:{carrier}:{chunk}")
    }

    /// Chunk `chunk` of the records of the SEND message whose first request is `first`.
    pub fn gathered_records(first: &RequestId, chunk: usize) -> String {
        format!("accepted:sends:{first}:{chunk}")
    }

    pub fn accepted_records(request: &RequestId, chunk: usize) -> String {
        format!("accepted:{request}:{chunk}")
    }

    pub fn outcome(message: &MessageId, hop: u16, attempt: u16) -> String {
        format!("outcome:{message}:{hop}:{attempt}")
    }

    /// A receipt as a carrier posted it: a repeat of the same receipt is dropped.
    /// The handset it names is part of it, so the receipt of a later message the
    /// carrier gave the same reference is not taken for a repeat.
    pub fn receipt(carrier: &CarrierId, receipt: &crate::receipt::CarrierReceipt) -> String {
        let reference = &receipt.carrier_reference;
        let state = receipt.state.as_str();
        match &receipt.handset {
            Some(handset) => format!("receipt:{carrier}:{reference}:{state}:{handset}"),
            None => format!("receipt:{carrier}:{reference}:{state}"),
        }
    }

    /// A message from a handset as a carrier passed it on: a repeat of it (the
    /// carrier sending it again when its acknowledgement was lost) is dropped. Its
    /// text is hashed (SHA-256, hex), so the id stays short whatever the text.
    pub fn inbound(carrier: &CarrierId, from: &str, to: &str, text: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for field in [from, to, text] {
            hash.update(field.as_bytes());
            hash.update([0]);
        }
        let digest: String = hash
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("inbound:{carrier}:{digest}")
    }

    /// The final step of a message on `hop` that its receipt (or deadline) decided.
    pub fn receipt_settlement(message: &MessageId, hop: u16) -> String {
        format!("receipt:{message}:{hop}")
    }

    /// The events of a message leaving hop `hop` (failed over, or finally failed).
    pub fn failover(message: &MessageId, hop: u16) -> String {
        format!("failover:{message}:{hop}")
    }
}

/// The subject of the receipts of the message under correlation key `key`
/// (`<carrier>.<reference>`).
pub fn receipt_subject(key: &str) -> String {
    format!("receipt.{key}")
}

/// The subject the receipt deadline of `message` on `hop` at `carrier` is published
/// to when it is due (five tokens: never a receipt's subject, which has three).
pub fn receipt_deadline_due_subject(carrier: &CarrierId, message: &MessageId, hop: u16) -> String {
    format!("receipt.{carrier}.deadline.{message}.{hop}")
}

/// The schedule subject of the receipt deadline of `message` on `hop` at `carrier`.
pub fn receipt_deadline_subject(carrier: &CarrierId, message: &MessageId, hop: u16) -> String {
    format!("receipt_deadline.{carrier}.{message}.{hop}")
}

pub fn webhook_subject(customer: &CustomerId) -> String {
    format!("webhook.{customer}")
}

/// The schedule subject of retry `attempt` of a delivery (ids of
/// [`crate::webhook::delivery_id`]'s alphabet).
pub fn webhook_retry_subject(delivery: &str, attempt: u32) -> String {
    format!("webhook_retry.{delivery}.{attempt}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_for_another_handset_under_a_reference_given_again_is_no_repeat() {
        let kt = CarrierId::parse("kt").unwrap();
        let receipt = |handset: Option<&str>| crate::receipt::CarrierReceipt {
            carrier_reference: "0000000001".to_owned(),
            state: crate::receipt::ReceiptState::Delivered,
            detail: None,
            handset: handset.map(str::to_owned),
        };
        let first = receipt(Some("01011110001"));
        assert_eq!(
            message_ids::receipt(&kt, &first),
            message_ids::receipt(&kt, &first.clone())
        );
        assert_ne!(
            message_ids::receipt(&kt, &first),
            message_ids::receipt(&kt, &receipt(Some("01011110003")))
        );
        assert_eq!(
            message_ids::receipt(&kt, &receipt(None)),
            "receipt:kt:0000000001:delivered"
        );
    }

    #[test]
    fn a_repeated_message_from_a_handset_gets_the_same_id_and_another_message_another() {
        let kt = CarrierId::parse("kt").unwrap();
        let id = message_ids::inbound(&kt, "01012345678", "0801234567", "수신거부");
        assert_eq!(
            id,
            message_ids::inbound(&kt, "01012345678", "0801234567", "수신거부")
        );
        assert!(id.starts_with("inbound:kt:") && id.len() == "inbound:kt:".len() + 64);
        // Fields are kept apart: moving a character from one to the next changes it.
        assert_ne!(
            id,
            message_ids::inbound(&kt, "0101234567", "80801234567", "수신거부")
        );
        assert_ne!(
            id,
            message_ids::inbound(&kt, "01012345678", "0801234567", "수신 거부")
        );
    }
}
