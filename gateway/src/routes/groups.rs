//! Groups of contacts: `POST|GET /v1/groups`, `GET|PATCH|DELETE /v1/groups/{id}`,
//! `POST|GET /v1/groups/{id}/members` and `DELETE /v1/groups/{id}/members/{contact}`.
//! A send naming `"groups"` goes to their members (see [`super::messages`]).
//! Deleting a group leaves its contacts in place.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rns_types::CustomerId;
use serde::{Deserialize, Serialize};

use crate::contacts::{is_id, new_id, AddOutcome, Contact, GroupRecord, Page};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Customer};
use crate::pagination::PageQuery;
use crate::AppState;

const MAX_NAME_CHARACTERS: usize = 100;
/// Contacts added to a group in one call.
pub const MAX_MEMBERS_PER_CALL: usize = 10_000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    name: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Members {
    contact_ids: Vec<String>,
}

fn name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARACTERS {
        return Err(ApiError::invalid(
            "invalid_name",
            format!("name must be 1 to {MAX_NAME_CHARACTERS} characters"),
        ));
    }
    Ok(name.to_owned())
}

/// A group as the API shows it: with how many contacts it holds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupView {
    #[serde(flatten)]
    group: GroupRecord,
    members: u64,
}

fn view(group: GroupRecord, members: u64) -> GroupView {
    GroupView { group, members }
}

/// What adding members did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MembersAdded {
    /// Contacts that were not members yet.
    added: u64,
    /// Members of the group now.
    members: u64,
}

/// The caller's group `id`, or 404.
async fn existing(
    state: &AppState,
    customer: &CustomerId,
    id: &str,
) -> Result<(GroupRecord, u64), ApiError> {
    if !is_id(id) {
        return Err(ApiError::NotFound("group"));
    }
    state
        .contacts()
        .group(customer, id)
        .await?
        .ok_or(ApiError::NotFound("group"))
}

#[utoipa::path(
    post,
    path = "/v1/groups",
    tag = "groups",
    request_body = GroupBody,
    responses((status = 201, description = "Created", body = GroupView), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn create(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<GroupBody>,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    let now_ms = rns_types::time::now_milliseconds();
    let group = GroupRecord {
        id: new_id(),
        name: name(&body.name)?,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
    };
    if !state.contacts().create_group(&customer, &group).await? {
        return Err(ApiError::invalid(
            "too_many_groups",
            format!(
                "a customer may keep at most {} groups",
                crate::contacts::MAX_GROUPS
            ),
        ));
    }
    Ok((StatusCode::CREATED, Json(view(group, 0))))
}

#[utoipa::path(
    get,
    path = "/v1/groups",
    tag = "groups",
    params(PageQuery),
    responses((status = 200, description = "OK", body = Page<GroupView>), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn list(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<GroupView>>, ApiError> {
    let limit = page.limit()?;
    let cursor = page.cursor(is_id)?;
    let page = state.contacts().groups(&customer, cursor, limit).await?;
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|(group, members)| view(group, members))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/groups/{id}",
    tag = "groups",
    params(("id" = String, Path, description = "the group")),
    responses((status = 200, description = "OK", body = GroupView), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn get(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<GroupView>, ApiError> {
    let (group, members) = existing(&state, &customer, &id).await?;
    Ok(Json(view(group, members)))
}

#[utoipa::path(
    patch,
    path = "/v1/groups/{id}",
    tag = "groups",
    params(("id" = String, Path, description = "the group")),
    request_body = GroupBody,
    responses((status = 200, description = "OK", body = GroupView), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn rename(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GroupBody>,
) -> Result<Json<GroupView>, ApiError> {
    let (mut group, members) = existing(&state, &customer, &id).await?;
    group.name = name(&body.name)?;
    group.updated_at_ms = rns_types::time::now_milliseconds();
    if !state.contacts().rename_group(&customer, &group).await? {
        return Err(ApiError::NotFound("group"));
    }
    Ok(Json(view(group, members)))
}

#[utoipa::path(
    delete,
    path = "/v1/groups/{id}",
    tag = "groups",
    params(("id" = String, Path, description = "the group")),
    responses((status = 204, description = "Done; no body"), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn delete(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !is_id(&id) || !state.contacts().delete_group(&customer, &id).await? {
        return Err(ApiError::NotFound("group"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/groups/{id}/members",
    tag = "groups",
    params(("id" = String, Path, description = "the group")),
    request_body = Members,
    responses((status = 200, description = "OK", body = MembersAdded), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn add_members(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Members>,
) -> Result<Json<MembersAdded>, ApiError> {
    if !is_id(&id) {
        return Err(ApiError::NotFound("group"));
    }
    if body.contact_ids.is_empty() || body.contact_ids.len() > MAX_MEMBERS_PER_CALL {
        return Err(ApiError::invalid(
            "invalid_contact_ids",
            format!("contact_ids must name 1 to {MAX_MEMBERS_PER_CALL} contacts"),
        ));
    }
    if let Some(bad) = body.contact_ids.iter().find(|contact| !is_id(contact)) {
        return Err(unknown_contacts(&bad.chars().take(40).collect::<String>()));
    }
    match state
        .contacts()
        .add_members(&customer, &id, &body.contact_ids)
        .await?
    {
        AddOutcome::Added(added) => {
            let (_, members) = existing(&state, &customer, &id).await?;
            Ok(Json(MembersAdded { added, members }))
        }
        AddOutcome::GroupNotFound => Err(ApiError::NotFound("group")),
        AddOutcome::UnknownContacts(missing) => Err(unknown_contacts(&missing.join(", "))),
    }
}

/// Contact ids in a body that are not the caller's contacts: the body is wrong (422),
/// the group it names exists (a 404 would say it did not).
fn unknown_contacts(ids: &str) -> ApiError {
    ApiError::invalid(
        "unknown_contacts",
        format!("not one of your contacts: {ids}"),
    )
}

#[utoipa::path(
    get,
    path = "/v1/groups/{id}/members",
    tag = "groups",
    params(("id" = String, Path, description = "the group"), PageQuery),
    responses((status = 200, description = "OK", body = Page<Contact>), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn list_members(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<Contact>>, ApiError> {
    existing(&state, &customer, &id).await?;
    let limit = page.limit()?;
    let cursor = page.cursor(is_id)?;
    let page = state
        .contacts()
        .list(&customer, Some(&id), None, cursor, limit)
        .await?;
    Ok(Json(page))
}

#[utoipa::path(
    delete,
    path = "/v1/groups/{id}/members/{contact_id}",
    tag = "groups",
    params(("id" = String, Path, description = "the group"), ("contact_id" = String, Path, description = "the contact")),
    responses((status = 204, description = "Done; no body"), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn remove_member(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path((id, contact)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !is_id(&id) {
        return Err(ApiError::NotFound("group"));
    }
    match state
        .contacts()
        .remove_member(&customer, &id, &contact)
        .await?
    {
        None => Err(ApiError::NotFound("group")),
        Some(false) => Err(ApiError::NotFound("group member")),
        Some(true) => Ok(StatusCode::NO_CONTENT),
    }
}
