//! Messages from handsets (mobile-originated, MO): what a carrier passes on that is
//! not a delivery receipt — a reply, or a recipient texting a sender's opt-out (080)
//! number to stop its messages.
//!
//! A carrier's process stores each one on `inbound.<carrier>` (stream `INBOUND`)
//! before it acknowledges it to the carrier; the gateway reads them, records an
//! opt-out for each sent to an opt-out number, and keeps every one for its customer
//! (`GET /v1/inbound-messages`). None is dropped unseen: one to a number no customer
//! holds is logged and counted.
use serde::{Deserialize, Serialize};

use crate::carrier::CarrierId;

/// Characters of an inbound message's text at most (longer ones are cut).
pub const MAX_INBOUND_TEXT_CHARACTERS: usize = 2_000;

/// What `inbound.<carrier>` carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Inbound {
    /// A message a handset sent.
    MobileOriginated(InboundMessage),
}

/// One message a handset sent, as its carrier passed it on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub carrier: CarrierId,
    /// The handset's number, as the carrier gave it.
    pub from: String,
    /// The number it was sent to (a sender number or an opt-out number).
    pub to: String,
    pub text: String,
    /// When RNS stored it (ms since the epoch).
    pub received_at_ms: u64,
}

impl InboundMessage {
    /// `text` cut to [`MAX_INBOUND_TEXT_CHARACTERS`].
    pub fn new(
        carrier: CarrierId,
        from: String,
        to: String,
        text: &str,
        received_at_ms: u64,
    ) -> Self {
        Self {
            carrier,
            from,
            to,
            text: text.chars().take(MAX_INBOUND_TEXT_CHARACTERS).collect(),
            received_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_messages_travel_tagged_and_long_texts_are_cut() {
        let message = InboundMessage::new(
            CarrierId::parse("kt").unwrap(),
            "01012345678".into(),
            "0801234567".into(),
            &"거".repeat(MAX_INBOUND_TEXT_CHARACTERS + 10),
            7,
        );
        assert_eq!(message.text.chars().count(), MAX_INBOUND_TEXT_CHARACTERS);
        let inbound = Inbound::MobileOriginated(message);
        let json = serde_json::to_string(&inbound).unwrap();
        assert!(
            json.starts_with(r#"{"kind":"mobile_originated","carrier":"kt","#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Inbound>(&json).unwrap(), inbound);
    }
}
