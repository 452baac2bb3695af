//! Shared types of RNS, with no I/O.
//!
//! Every service speaks in these: validated ids that are safe to put in a NATS subject
//! or KV key ([`ids`]), normalised phone numbers ([`phone`]), message content and its
//! SMS/LMS classification ([`content`]), the carrier catalogue and routing weights
//! ([`carrier`], [`routing`]), the JSON messages on every stream ([`wire`]) and the
//! compact encoding of RESULTS ([`compact`]), the
//! prepaid points ([`points`]), AlimTalk content ([`alimtalk`]), delivery receipts ([`receipt`]) and the
//! names of every subject, stream, consumer and bucket ([`subjects`]).
#![forbid(unsafe_code)]

pub mod account;
pub mod advertising;
pub mod alimtalk;
pub mod api_key;
pub mod audit;
pub mod carrier;
pub mod compact;
pub mod content;
pub mod customer;
pub mod ids;
pub mod inbound;
pub mod network;
pub mod phone;
pub mod points;
pub mod priority;
pub mod receipt;
pub mod routing;
pub mod schedule;
pub mod sender_number;
pub mod subjects;
pub mod template;
pub mod time;
pub mod trace;
pub mod webhook;
pub mod wire;

pub use carrier::{CarrierCatalog, CarrierId, Channel, CircuitRecord, CircuitState};
pub use content::MessageType;
pub use customer::CustomerProfile;
pub use ids::{CustomerId, InvalidId, MessageId, RequestId};
pub use phone::PhoneNumber;
pub use priority::Priority;
