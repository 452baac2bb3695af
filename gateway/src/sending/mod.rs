//! The send use case: what `POST /v1/messages` (and a schedule's firing, through the
//! dispatcher) does, in the order it does it. Routes call it; it never calls a route.
//!
//! 1. [`validate`] — everything is checked before anything is reserved or published:
//!    the content ([`content`]: its own text or a template's, SMS or AlimTalk, and
//!    MMS images), the recipients ([`audience`]: `to`, `recipients`, `groups`),
//!    the sender (registered by this customer), opt-outs (those recipients are
//!    `blocked`: recorded, never sent, never charged), each recipient's filled text
//!    composed and priced ([`crate::compose`]), the time ([`crate::scheduling`]) and
//!    the advertising rules (an advertisement at night is held for 08:00 KST).
//! 2. [`accept`] — images stored, then a paid publish ([`publish`]): the whole
//!    request's points reserved (402 if short) and one [`SendRequest`] published to
//!    `send.<customer>` now, or recorded in the schedule book and published under a
//!    schedule ([`schedule_book`]); the 202 body ([`answer`]) only once JetStream
//!    acknowledged it, so a 202 means durable.
//!
//! [`preview`] answers what a send would do, from the same checks, doing nothing.
//!
//! [`lookup`] holds what other routes look up too (a sender number's opt-out line,
//! a template by id).
//!
//! [`SendRequest`]: rns_types::wire::SendRequest
pub mod accept;
pub mod answer;
pub mod audience;
pub mod content;
pub mod input;
pub mod lookup;
pub mod preview;
pub mod publish;
pub mod schedule_book;
pub mod validate;

pub use accept::accept;
pub use answer::{Scheduled, SendAnswer, Sent, Skipped};
pub use input::{FallbackInput, ImageInput, RecipientInput, SendMessages};
pub use lookup::{find_template, opt_out_number_of};
pub use preview::{preview, PreviewedMessage, SendPreview};
pub use publish::{ensure_schedule_room, publish_paid, Publication};
pub use schedule_book::{
    change_book, create_once, create_recurring, unavailable, FailureView, RecurrenceView,
    ScheduleView,
};
pub use validate::{validate, Purpose, ValidSend};
