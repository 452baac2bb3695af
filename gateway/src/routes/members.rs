//! The people of a customer: `GET /v1/members` lists them, `POST
//! /v1/members/invitations` invites someone (the token is shown once; the invited
//! person signs up with it), `DELETE /v1/members/{id}` removes one. Changes are for
//! owners (and API keys with the `manage` scope); nobody removes themselves, and the
//! last owner stays.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rns_types::account::{normalise_email, Role};
use serde::{Deserialize, Serialize};

use crate::accounts::Invitation;
use crate::error::ApiError;
use crate::extract::{cookie, ApiJson, Customer};
use crate::AppState;

/// One person of the customer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberView {
    id: String,
    email: String,
    name: String,
    role: Role,
    phone_verified: bool,
    created_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberList {
    items: Vec<MemberView>,
}

#[utoipa::path(
    get,
    path = "/v1/members",
    tag = "console",
    responses((status = 200, description = "The customer's people", body = MemberList), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn list(
    Customer(customer): Customer,
    State(state): State<AppState>,
) -> Result<Json<MemberList>, ApiError> {
    let items = state
        .accounts()
        .people_of(&customer)
        .await?
        .into_iter()
        .map(|person| MemberView {
            created_at: rns_types::time::rfc3339(person.created_at_ms),
            id: person.id,
            email: person.email,
            name: person.name,
            role: person.role,
            phone_verified: person.phone_verified,
        })
        .collect();
    Ok(Json(MemberList { items }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    email: String,
    role: Role,
}

/// An invitation: `token` is shown only now, and is used once within 7 days.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvitationView {
    email: String,
    role: Role,
    token: String,
    expires_at: String,
}

#[utoipa::path(
    post,
    path = "/v1/members/invitations",
    tag = "console",
    request_body = Invite,
    responses((status = 201, description = "Invited", body = InvitationView), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn invite(
    Customer(customer): Customer,
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<Invite>,
) -> Result<(StatusCode, Json<InvitationView>), ApiError> {
    let email = normalise_email(&body.email)
        .map_err(|error| ApiError::invalid("invalid_email", error.to_string()))?;
    if state.accounts().person_by_email(&email).await?.is_some() {
        return Err(ApiError::Conflict(
            "this email has an account already".to_owned(),
        ));
    }
    let invited_by = inviter(&state, &headers).await?;
    let invitation = Invitation {
        customer,
        role: body.role,
        email,
        invited_by,
        expires_at_ms: crate::accounts::invitation_expiry(rns_types::time::now_milliseconds()),
    };
    let token = state.accounts().invite(&invitation).await?;
    Ok((
        StatusCode::CREATED,
        Json(InvitationView {
            email: invitation.email,
            role: invitation.role,
            token,
            expires_at: rns_types::time::rfc3339(invitation.expires_at_ms),
        }),
    ))
}

/// Who invites: the signed-in person, else the API key.
async fn inviter(state: &AppState, headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
    if let Some(token) = cookie(headers, crate::accounts::SESSION_COOKIE) {
        if let Some(session) = state.accounts().session(token).await? {
            return Ok(session.person);
        }
    }
    Ok("an API key".to_owned())
}

#[utoipa::path(
    delete,
    path = "/v1/members/{id}",
    tag = "console",
    params(("id" = String, Path, description = "the person")),
    responses(
        (status = 204, description = "Removed: their sessions end"),
        (status = 409, description = "Oneself, or the last owner", body = crate::error::ErrorBody),
        crate::openapi::Errors,
    ),
    security(("api_key" = [])),
)]
pub async fn remove(
    Customer(customer): Customer,
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let well_formed = id.len() == 27
        && id.starts_with('p')
        && id
            .chars()
            .all(|character| character.is_ascii_alphanumeric());
    if !well_formed {
        return Err(ApiError::NotFound("person"));
    }
    let person = state
        .accounts()
        .person(&id)
        .await?
        .filter(|person| person.customer == customer)
        .ok_or(ApiError::NotFound("person"))?;
    if inviter(&state, &headers).await? == person.id {
        return Err(ApiError::Conflict(
            "nobody removes themselves; another owner can".to_owned(),
        ));
    }
    if person.role == Role::Owner {
        let owners = state
            .accounts()
            .people_of(&customer)
            .await?
            .into_iter()
            .filter(|other| other.role == Role::Owner)
            .count();
        if owners <= 1 {
            return Err(ApiError::Conflict("the last owner stays".to_owned()));
        }
    }
    state.accounts().remove(&person).await?;
    tracing::info!(%customer, person = %person.id, "person removed");
    Ok(StatusCode::NO_CONTENT)
}
