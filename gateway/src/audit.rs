//! The audit log's writer and reader (see [`rns_types::audit`]).
//!
//! [`record`] is a layer around every route: a request that changes something
//! (not a `GET`) on an audited route — every `/v1/admin/…` route, and the
//! customer's own keys, people, webhook, routing and sender numbers — is written to the
//! `AUDIT` stream once it was answered, with who made it (the operator, or the key
//! by its id, or the person signed in), the route, the path and the status. The actor is found before the
//! request runs, so a key that revokes itself is still named. A request without a
//! valid key is not an action of anyone's and is not recorded.
//!
//! [`read`] pages the stream for `GET /v1/admin/audit`: an ephemeral consumer on
//! the customer's subject (or all), from a sequence or a time.
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use rns_types::audit::{audit_subject, Actor, AuditEntry};
use rns_types::subjects::AUDIT_STREAM;
use rns_types::CustomerId;

use crate::error::ApiError;
use crate::AppState;

/// Whether a change on `route` is recorded.
pub fn is_audited(method: &Method, route: &str) -> bool {
    const AUDITED: [&str; 6] = [
        "/v1/admin/",
        "/v1/api-keys",
        "/v1/members",
        "/v1/webhook",
        "/v1/routing",
        "/v1/sender-numbers",
    ];
    *method != Method::GET && AUDITED.iter().any(|prefix| route.starts_with(prefix))
}

/// Who the request's key is, and the customer a customer's key belongs to.
async fn actor_of(
    state: &AppState,
    token: Option<String>,
    session: Option<String>,
) -> Option<(Actor, Option<CustomerId>)> {
    let Some(token) = token else {
        let session = state.accounts().session(&session?).await.ok()??;
        let person = state.accounts().person(&session.person).await.ok()??;
        return Some((
            Actor::Person {
                person_id: person.id,
            },
            Some(person.customer),
        ));
    };
    let hash = crate::extract::hash_api_key(&token);
    if state.admin_key_hash() == Some(hash.as_str()) {
        return Some((Actor::Operator, None));
    }
    let key = state.key(&hash).await.ok()??;
    Some((Actor::Key { key_id: key.id }, Some(key.customer)))
}

/// The customer an admin route names (`…/customers/{id}/…`), as called.
fn customer_in_path(route: &str, path: &str) -> Option<CustomerId> {
    let template: Vec<&str> = route.split('/').collect();
    let called: Vec<&str> = path.split('/').collect();
    let index = template
        .windows(2)
        .position(|pair| pair == ["customers", "{id}"])?;
    CustomerId::parse(called.get(index + 1)?).ok()
}

/// Records an audited request once answered (see the module's documentation).
pub async fn record(
    State(state): State<AppState>,
    route: MatchedPath,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let route = route.as_str().to_owned();
    if !is_audited(&method, &route) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(|token| token.trim().to_owned());
    let session = crate::extract::cookie(request.headers(), crate::accounts::SESSION_COOKIE)
        .map(str::to_owned);
    let actor = actor_of(&state, token, session).await;
    let response = next.run(request).await;
    let Some((actor, key_customer)) = actor else {
        return response;
    };
    let entry = AuditEntry {
        at_ms: rns_types::time::now_milliseconds(),
        actor,
        customer: key_customer.or_else(|| customer_in_path(&route, &path)),
        action: format!("{method} {route}"),
        path,
        status: response.status().as_u16(),
    };
    if let Err(error) = write(&state, &entry).await {
        // The change is made; its record is what is missing.
        tracing::error!(%error, action = %entry.action, path = %entry.path, "an audit entry could not be written");
    }
    response
}

/// Publishes `entry` under an id of its own (`audit:<ulid>`), like every publish of
/// RNS, so a publish repeated by the client is stored once.
async fn write(state: &AppState, entry: &AuditEntry) -> Result<(), ApiError> {
    let outbound = rns_nats::Outbound {
        subject: audit_subject(entry.customer.as_ref()),
        message_id: format!("audit:{}", ulid::Ulid::new()),
        payload: serde_json::to_vec(entry)
            .expect("an audit entry serialises")
            .into(),
    };
    rns_nats::publish_all(state.jetstream(), [outbound], 1)
        .await
        .map_err(|error| ApiError::unavailable("the audit log", error))
}

/// Where a read of the log starts.
#[derive(Debug, Clone, Copy)]
pub enum From {
    /// At this stream sequence (a page's cursor).
    Sequence(u64),
    /// At the first entry at or after this time (milliseconds since the epoch).
    Time(u64),
}

/// Up to `limit` entries (of `customer`, or all) from `from`, with their sequences,
/// oldest first, and whether more follow.
pub async fn read(
    state: &AppState,
    customer: Option<&CustomerId>,
    from: From,
    limit: usize,
) -> Result<(Vec<(u64, AuditEntry)>, bool), ApiError> {
    let unavailable = |error| ApiError::unavailable("the audit log", error);
    let stream = state
        .jetstream()
        .get_stream(AUDIT_STREAM)
        .await
        .map_err(|error| unavailable(error.into()))?;
    let deliver_policy = match from {
        From::Sequence(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
        From::Time(at_ms) => DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(at_ms) * 1_000_000,
            )
            .map_err(|error| unavailable(error.into()))?,
        },
    };
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: match customer {
                Some(customer) => audit_subject(Some(customer)),
                None => rns_types::subjects::AUDIT_SUBJECTS.to_owned(),
            },
            deliver_policy,
            ack_policy: AckPolicy::None,
            inactive_threshold: std::time::Duration::from_secs(10),
            memory_storage: true,
            ..Default::default()
        })
        .await
        .map_err(|error| unavailable(error.into()))?;
    let mut messages = consumer
        .fetch()
        .max_messages(limit + 1)
        .messages()
        .await
        .map_err(|error| unavailable(error.into()))?;
    let mut entries = Vec::with_capacity(limit + 1);
    while let Some(message) = messages.next().await {
        let message = message.map_err(unavailable)?;
        let sequence = message.info().map_err(unavailable)?.stream_sequence;
        match serde_json::from_slice::<AuditEntry>(&message.payload) {
            Ok(entry) => entries.push((sequence, entry)),
            Err(error) => tracing::error!(sequence, %error, "an unreadable audit entry"),
        }
    }
    let consumer_name = consumer.cached_info().name.clone();
    if let Err(error) = stream.delete_consumer(&consumer_name).await {
        tracing::debug!(%error, "an audit reader's consumer is left to expire");
    }
    let more = entries.len() > limit;
    entries.truncate(limit);
    Ok((entries, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_to_the_account_and_every_admin_change_are_audited_reads_and_sends_are_not() {
        for (method, route) in [
            (Method::POST, "/v1/admin/customers"),
            (Method::PUT, "/v1/admin/customers/{id}/limits"),
            (Method::POST, "/v1/api-keys/{id}/rotate"),
            (Method::DELETE, "/v1/api-keys/{id}"),
            (Method::PUT, "/v1/webhook"),
            (Method::PUT, "/v1/routing/{channel}"),
            (Method::POST, "/v1/sender-numbers"),
        ] {
            assert!(is_audited(&method, route), "{method} {route}");
        }
        for (method, route) in [
            (Method::GET, "/v1/admin/customers"),
            (Method::GET, "/v1/api-keys"),
            (Method::POST, "/v1/messages"),
            (Method::POST, "/v1/contacts"),
        ] {
            assert!(!is_audited(&method, route), "{method} {route}");
        }
    }

    #[test]
    fn the_customer_an_admin_route_names_is_read_from_the_called_path() {
        assert_eq!(
            customer_in_path(
                "/v1/admin/customers/{id}/sender-numbers/{number}",
                "/v1/admin/customers/acme/sender-numbers/0212345678"
            ),
            Some(CustomerId::parse("acme").unwrap())
        );
        assert_eq!(
            customer_in_path("/v1/admin/carriers/{id}/rate", "/v1/admin/carriers/kt/rate"),
            None
        );
    }
}
