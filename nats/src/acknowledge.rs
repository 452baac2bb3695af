//! Acknowledgements the client library does not offer.
use async_nats::jetstream::Message;
use bytes::Bytes;

/// Terminates `message` with a reason (`+TERM <reason>`): it is never redelivered, and
/// the reason appears in the server's `MSG_TERMINATED` advisory for operators. Send it
/// only after the outcome was recorded.
pub async fn terminate_with_reason(
    client: &async_nats::Client,
    message: &Message,
    reason: &str,
) -> Result<(), async_nats::PublishError> {
    let Some(reply) = message.reply.clone() else {
        return Ok(());
    };
    let single_line: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    client
        .publish(reply, Bytes::from(format!("+TERM {single_line}")))
        .await
}
