//! One trace per send request: a W3C trace context (`traceparent`,
//! `00-<trace id>-<span id>-<flags>`) that the gateway takes from the caller's
//! `traceparent` header or starts, and that travels with the request, each of its
//! carrier jobs and each of their events, so the gateway, the dispatcher, the carriers
//! and analytics log the same trace id for the same message.
//!
//! It travels inside the payloads rather than as a NATS header: SEND, carrier and
//! RESULTS messages each gather many requests, and a header names one.
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The HTTP header (and the field name) of a trace context.
pub const TRACEPARENT: &str = "traceparent";

/// A W3C trace context: a 128-bit trace id shared by everything one request causes,
/// and the 64-bit id of the span that passed it on.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    sampled: bool,
}

impl TraceContext {
    /// A new trace (sampled).
    pub fn generate() -> Self {
        Self {
            trace_id: nonzero(rand::random()),
            span_id: nonzero(rand::random()),
            sampled: true,
        }
    }

    /// Reads a `traceparent` value; none when it is not a valid version-00 one (all
    /// zero ids, wrong lengths, upper-case hex and version `ff` are invalid).
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let lower_hex = |text: &str, length: usize| {
            text.len() == length
                && text
                    .bytes()
                    .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        };
        if !lower_hex(version, 2) || version == "ff" || !lower_hex(flags, 2) {
            return None;
        }
        // Version 00 has exactly four parts; later versions may add some.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        if !lower_hex(trace, 32) || !lower_hex(span, 16) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The same trace, passed on by a new span.
    pub fn child(&self) -> Self {
        Self {
            span_id: nonzero(rand::random()),
            ..*self
        }
    }

    /// Its parts (trace id, span id, sampled), for binary encodings ([`crate::compact`]).
    pub(crate) fn parts(&self) -> (u128, u64, bool) {
        (self.trace_id, self.span_id, self.sampled)
    }

    /// A context of [`TraceContext::parts`]; none when an id is zero, as
    /// [`TraceContext::parse`] would refuse it.
    pub(crate) fn from_parts((trace_id, span_id, sampled): (u128, u64, bool)) -> Option<Self> {
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            sampled,
        })
    }

    /// The trace id, 32 lower-case hex digits: what to grep the logs for.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

fn nonzero<T: PartialEq + From<u8>>(value: T) -> T {
    if value == T::from(0) {
        T::from(1)
    } else {
        value
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, formatter)
    }
}

impl Serialize for TraceContext {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TraceContext {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a traceparent: {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_reads_back_as_written_and_a_child_keeps_its_trace() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::parse(header).unwrap();
        assert_eq!(context.to_string(), header);
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = context.child();
        assert_eq!(child.trace_id(), context.trace_id());
        assert_ne!(child.to_string(), header, "a new span");
        let json = serde_json::to_string(&context).unwrap();
        assert_eq!(json, format!("\"{header}\""));
        assert_eq!(
            serde_json::from_str::<TraceContext>(&json).unwrap(),
            context
        );
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for header in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceContext::parse(header), None, "{header:?}");
        }
        assert!(serde_json::from_str::<TraceContext>("\"nope\"").is_err());
    }

    #[test]
    fn generated_contexts_are_valid_and_distinct() {
        let first = TraceContext::generate();
        let second = TraceContext::generate();
        assert_ne!(first.trace_id(), second.trace_id());
        assert_eq!(TraceContext::parse(&first.to_string()), Some(first));
    }
}
