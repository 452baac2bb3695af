//! Delivery receipts in `deliver_sm`: the `receipted_message_id` and `message_state`
//! TLVs when the SMSC sends them, else the standard text
//! (`id:<id> sub:001 dlvrd:001 submit date:… done date:… stat:DELIVRD err:000 text:…`).
//!
//! | state | receipt |
//! |---|---|
//! | `DELIVRD` (2) | delivered |
//! | `EXPIRED` (3) | expired |
//! | `UNDELIV` (5), `DELETED` (4), `REJECTD` (8) | undeliverable |
//! | `ENROUTE` (1), `ACCEPTD` (6), `UNKNOWN` (7), scheduled, skipped | not final: acknowledged and left to the deadline |
use rns_types::receipt::{CarrierReceipt, ReceiptState};
use rusmpp::pdus::DeliverSm;
use rusmpp::tlvs::TlvValue;
use rusmpp::values::{DataCoding, MessageState, MessageType};

/// What a `deliver_sm` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// A receipt with a final state.
    Receipt(CarrierReceipt),
    /// A receipt whose state is not final (en route, accepted, unknown).
    Intermediate {
        carrier_reference: String,
        state: String,
    },
    /// Not a receipt: a message from a handset (a reply, an opt-out).
    MobileOriginated {
        from: String,
        to: String,
        text: String,
    },
    /// A receipt without a message id: nothing to correlate it with.
    Unreadable(String),
}

/// The text of a message from a handset: UCS-2, KS C 5601 (EUC-KR) or Latin-1 as its
/// `data_coding` says, else read as ASCII/UTF-8; from `message_payload` when the
/// short message is empty.
fn handset_text(deliver: &DeliverSm) -> String {
    let payload = deliver.tlvs().iter().find_map(|tlv| match tlv.value() {
        Some(TlvValue::MessagePayload(payload)) => Some(payload.value.as_ref()),
        _ => None,
    });
    let bytes = match deliver.short_message().as_ref() {
        [] => payload.unwrap_or_default(),
        short => short,
    };
    let encoding = match deliver.data_coding {
        DataCoding::Ucs2 => encoding_rs::UTF_16BE,
        DataCoding::Ksc5601 => encoding_rs::EUC_KR,
        DataCoding::Latin1 => encoding_rs::WINDOWS_1252,
        _ => return String::from_utf8_lossy(bytes).into_owned(),
    };
    encoding.decode_without_bom_handling(bytes).0.into_owned()
}

/// Reads a `deliver_sm`.
pub fn read(deliver: &DeliverSm) -> Delivered {
    let is_receipt = matches!(
        deliver.esm_class.message_type,
        MessageType::ShortMessageContainsMCDeliveryReceipt
            | MessageType::ShortMessageContainsIntermediateDeliveryNotification
    );
    if !is_receipt {
        return Delivered::MobileOriginated {
            from: deliver.source_addr.to_string(),
            to: deliver.destination_addr.to_string(),
            text: handset_text(deliver),
        };
    }
    let text = String::from_utf8_lossy(deliver.short_message().as_ref()).into_owned();
    let mut reference = None;
    let mut state = None;
    for tlv in deliver.tlvs() {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(id)) => reference = Some(id.to_string()),
            Some(TlvValue::MessageState(value)) => state = Some(state_name(*value).to_owned()),
            _ => {}
        }
    }
    let reference = reference.or_else(|| field(&text, "id:").map(str::to_owned));
    let state = state.or_else(|| field(&text, "stat:").map(str::to_owned));
    let Some(carrier_reference) = reference.filter(|reference| !reference.is_empty()) else {
        return Delivered::Unreadable(text);
    };
    let state = state.unwrap_or_else(|| "UNKNOWN".to_owned());
    let error = field(&text, "err:").unwrap_or("000");
    let final_state = match state.as_str() {
        "DELIVRD" => Some(ReceiptState::Delivered),
        "EXPIRED" => Some(ReceiptState::Expired),
        "UNDELIV" | "DELETED" | "REJECTD" => Some(ReceiptState::Undeliverable),
        _ => None,
    };
    match final_state {
        Some(receipt_state) => Delivered::Receipt(CarrierReceipt {
            carrier_reference,
            state: receipt_state,
            detail: Some(format!("stat:{state} err:{error}")),
            // A receipt comes from the handset the message went to.
            handset: Some(deliver.source_addr.to_string()).filter(|handset| !handset.is_empty()),
        }),
        None => Delivered::Intermediate {
            carrier_reference,
            state,
        },
    }
}

/// The SMPP 3.4 name of a `message_state`.
fn state_name(state: MessageState) -> &'static str {
    match state {
        MessageState::Enroute => "ENROUTE",
        MessageState::Delivered => "DELIVRD",
        MessageState::Expired => "EXPIRED",
        MessageState::Deleted => "DELETED",
        MessageState::Undeliverable => "UNDELIV",
        MessageState::Accepted => "ACCEPTD",
        MessageState::Rejected => "REJECTD",
        _ => "UNKNOWN",
    }
}

/// The value after `name` in a receipt's text, up to the next space.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find(name)? + name.len();
    text[start..].split_whitespace().next()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use rusmpp::types::{COctetString, OctetString};
    use rusmpp::values::EsmClass;

    use super::*;

    fn deliver(text: &str, esm_class: MessageType) -> DeliverSm {
        let mut deliver = DeliverSm::builder()
            .source_addr(COctetString::from_str("01012345678").unwrap())
            .destination_addr(COctetString::from_str("0212345678").unwrap())
            .short_message(OctetString::from_str(text).unwrap())
            .build();
        deliver.esm_class = EsmClass {
            message_type: esm_class,
            ..EsmClass::default()
        };
        deliver
    }

    #[test]
    fn receipts_are_read_from_their_text() {
        let text = "id:00000000a1 sub:001 dlvrd:000 submit date:2612021000 done date:2612021001 stat:UNDELIV err:001 text:";
        assert_eq!(
            read(&deliver(
                text,
                MessageType::ShortMessageContainsMCDeliveryReceipt
            )),
            Delivered::Receipt(CarrierReceipt {
                carrier_reference: "00000000a1".into(),
                state: ReceiptState::Undeliverable,
                detail: Some("stat:UNDELIV err:001".into()),
                handset: Some("01012345678".into()),
            })
        );
        let delivered = "id:7 sub:001 dlvrd:001 submit date:2612021000 done date:2612021001 stat:DELIVRD err:000 text:hi";
        assert!(matches!(
            read(&deliver(
                delivered,
                MessageType::ShortMessageContainsMCDeliveryReceipt
            )),
            Delivered::Receipt(CarrierReceipt {
                state: ReceiptState::Delivered,
                ..
            })
        ));
        assert!(matches!(
            read(&deliver(
                "id:7 stat:ENROUTE",
                MessageType::ShortMessageContainsMCDeliveryReceipt
            )),
            Delivered::Intermediate { .. }
        ));
        assert!(matches!(
            read(&deliver(
                "stat:DELIVRD",
                MessageType::ShortMessageContainsMCDeliveryReceipt
            )),
            Delivered::Unreadable(_)
        ));
    }

    #[test]
    fn a_message_from_a_handset_is_not_a_receipt_and_its_text_is_read_by_its_coding() {
        let coded = |bytes: Vec<u8>, coding: DataCoding| {
            let mut deliver = deliver("", MessageType::Default);
            deliver.data_coding = coding;
            deliver.set_short_message(OctetString::from_vec(bytes).unwrap());
            read(&deliver)
        };
        let handset = |text: &str| Delivered::MobileOriginated {
            from: "01012345678".into(),
            to: "0212345678".into(),
            text: text.into(),
        };
        let ucs2: Vec<u8> = "수신거부"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(coded(ucs2, DataCoding::Ucs2), handset("수신거부"));
        let euc_kr = encoding_rs::EUC_KR.encode("수신거부").0.into_owned();
        assert_eq!(coded(euc_kr, DataCoding::Ksc5601), handset("수신거부"));
        assert_eq!(
            read(&deliver("STOP", MessageType::Default)),
            handset("STOP")
        );
    }
}
