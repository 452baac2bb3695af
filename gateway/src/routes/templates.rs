//! Templates: `POST|GET /v1/templates`, `GET|PUT|DELETE /v1/templates/{id}`.
//!
//! SMS templates hold a text (and optional subject) with `#{variables}`; AlimTalk
//! templates also hold the AlimTalk content Kakao approved (template code, title,
//! buttons...). A customer's templates are one document in the `templates` KV bucket,
//! changed by compare-and-set, so concurrent edits never lose each other.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rns_types::alimtalk::AlimTalk;
use rns_types::content::{euc_kr_length, LMS_MAX_BYTES, SUBJECT_MAX_BYTES};
use rns_types::template::{variables_in, Template, TemplateBook};
use rns_types::{Channel, CustomerId};
use serde::{Deserialize, Serialize};

use crate::contacts::{is_id, new_id};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Customer};
use crate::pagination::PageQuery;
use crate::sending::find_template;
use crate::AppState;

/// Most templates a customer may keep (they are one document).
pub const MAX_TEMPLATES: usize = 200;
const MAX_NAME_CHARACTERS: usize = 100;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    /// Required when creating; when replacing, it must stay the same if given.
    #[serde(default)]
    channel: Option<Channel>,
    name: String,
    text: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    alimtalk: Option<AlimTalk>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TemplatesQuery {
    #[serde(default)]
    channel: Option<Channel>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// Checks a template's content for its channel; variables must be well formed, and
/// the literal text must fit even before anything is filled in.
fn check(
    channel: Channel,
    text: &str,
    subject: Option<&str>,
    alimtalk: Option<&AlimTalk>,
) -> Result<(), ApiError> {
    let invalid_text = |message: String| ApiError::invalid("invalid_text", message);
    variables_in(text).map_err(|error| invalid_text(format!("text: {error}")))?;
    if let Some(subject) = subject {
        variables_in(subject).map_err(|error| invalid_text(format!("subject: {error}")))?;
    }
    match channel {
        Channel::Sms => {
            if alimtalk.is_some() {
                return Err(ApiError::invalid(
                    "invalid_template",
                    "an sms template has no alimtalk content",
                ));
            }
            let bytes = euc_kr_length(text).map_err(|error| invalid_text(error.to_string()))?;
            if text.trim().is_empty() {
                return Err(invalid_text("text must not be empty".into()));
            }
            if bytes > LMS_MAX_BYTES {
                return Err(invalid_text(format!(
                    "text is {bytes} EUC-KR bytes, {} over the LMS limit of {LMS_MAX_BYTES}",
                    bytes - LMS_MAX_BYTES
                )));
            }
            if let Some(subject) = subject {
                let bytes =
                    euc_kr_length(subject).map_err(|error| invalid_text(error.to_string()))?;
                if bytes > SUBJECT_MAX_BYTES {
                    return Err(invalid_text(format!(
                        "subject is {bytes} EUC-KR bytes, over the limit of {SUBJECT_MAX_BYTES}"
                    )));
                }
            }
        }
        Channel::Alimtalk => {
            let Some(alimtalk) = alimtalk else {
                return Err(ApiError::invalid(
                    "invalid_template",
                    "an alimtalk template needs its alimtalk content (at least template_code)",
                ));
            };
            alimtalk
                .validate(text)
                .map_err(|error| ApiError::invalid("invalid_alimtalk", error.to_string()))?;
        }
    }
    Ok(())
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

/// A template as the API shows it, with the variables its text names.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TemplateView {
    #[serde(flatten)]
    template: Template,
    variables: Vec<String>,
}

impl TemplateView {
    fn of(template: &Template) -> Self {
        Self {
            variables: variables_in(&template.text).unwrap_or_default(),
            template: template.clone(),
        }
    }
}

/// A page of templates, in id (creation) order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TemplatePage {
    items: Vec<TemplateView>,
    next_cursor: Option<String>,
}

async fn change_book(
    state: &AppState,
    customer: &CustomerId,
    change: impl FnMut(&mut TemplateBook) -> Result<(), ApiError>,
) -> Result<TemplateBook, ApiError> {
    state
        .templates()
        .update(customer.as_str(), Some(TemplateBook::default), change)
        .await
        .map_err(|error| ApiError::unavailable("templates", error))?
}

#[utoipa::path(
    post,
    path = "/v1/templates",
    tag = "templates",
    request_body = TemplateBody,
    responses((status = 201, description = "Created", body = TemplateView), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn create(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<(StatusCode, Json<TemplateView>), ApiError> {
    let Some(channel) = body.channel else {
        return Err(ApiError::invalid(
            "invalid_body",
            "channel is required: \"sms\" or \"alimtalk\"",
        ));
    };
    check(
        channel,
        &body.text,
        body.subject.as_deref(),
        body.alimtalk.as_ref(),
    )?;
    let now_ms = rns_types::time::now_milliseconds();
    let template = Template {
        id: new_id(),
        channel,
        name: name(&body.name)?,
        text: body.text,
        subject: body.subject.filter(|subject| !subject.trim().is_empty()),
        alimtalk: body.alimtalk,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
    };
    change_book(&state, &customer, |book| {
        if book.templates.len() >= MAX_TEMPLATES {
            return Err(ApiError::invalid(
                "too_many_templates",
                format!("a customer may keep at most {MAX_TEMPLATES} templates"),
            ));
        }
        book.templates.insert(template.id.clone(), template.clone());
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(TemplateView::of(&template))))
}

#[utoipa::path(
    get,
    path = "/v1/templates",
    tag = "templates",
    params(TemplatesQuery, PageQuery),
    responses((status = 200, description = "OK", body = TemplatePage), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn list(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<TemplatesQuery>,
) -> Result<Json<TemplatePage>, ApiError> {
    let limit = query.page.limit()?;
    let cursor = query.page.cursor(is_id)?;
    let book = state
        .templates()
        .get(customer.as_str())
        .await
        .map_err(|error| ApiError::unavailable("templates", error))?
        .unwrap_or_default();
    let mut items: Vec<TemplateView> = book
        .templates
        .values()
        .filter(|template| cursor.is_none_or(|cursor| template.id.as_str() > cursor))
        .filter(|template| {
            query
                .channel
                .is_none_or(|channel| template.channel == channel)
        })
        .take(limit + 1)
        .map(TemplateView::of)
        .collect();
    let next_cursor = (items.len() > limit).then(|| {
        items.truncate(limit);
        items[limit - 1].template.id.clone()
    });
    Ok(Json(TemplatePage { items, next_cursor }))
}

#[utoipa::path(
    get,
    path = "/v1/templates/{id}",
    tag = "templates",
    params(("id" = String, Path, description = "the template")),
    responses((status = 200, description = "OK", body = TemplateView), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn get(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TemplateView>, ApiError> {
    let template = find_template(&state, &customer, &id)
        .await?
        .ok_or(ApiError::NotFound("template"))?;
    Ok(Json(TemplateView::of(&template)))
}

#[utoipa::path(
    put,
    path = "/v1/templates/{id}",
    tag = "templates",
    params(("id" = String, Path, description = "the template")),
    request_body = TemplateBody,
    responses((status = 200, description = "OK", body = TemplateView), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn replace(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<Json<TemplateView>, ApiError> {
    let current = find_template(&state, &customer, &id)
        .await?
        .ok_or(ApiError::NotFound("template"))?;
    if body
        .channel
        .is_some_and(|channel| channel != current.channel)
    {
        return Err(ApiError::invalid(
            "invalid_template",
            "a template's channel cannot change; create a new template",
        ));
    }
    check(
        current.channel,
        &body.text,
        body.subject.as_deref(),
        body.alimtalk.as_ref(),
    )?;
    let name = name(&body.name)?;
    let book = change_book(&state, &customer, |book| {
        let template = book
            .templates
            .get_mut(&id)
            .ok_or(ApiError::NotFound("template"))?;
        template.name = name.clone();
        template.text = body.text.clone();
        template.subject = body
            .subject
            .clone()
            .filter(|subject| !subject.trim().is_empty());
        template.alimtalk = body.alimtalk.clone();
        template.updated_at_ms = rns_types::time::now_milliseconds();
        Ok(())
    })
    .await?;
    Ok(Json(TemplateView::of(&book.templates[&id])))
}

#[utoipa::path(
    delete,
    path = "/v1/templates/{id}",
    tag = "templates",
    params(("id" = String, Path, description = "the template")),
    responses((status = 204, description = "Done; no body"), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn delete(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if find_template(&state, &customer, &id).await?.is_none() {
        return Err(ApiError::NotFound("template"));
    }
    change_book(&state, &customer, |book| {
        book.templates
            .remove(&id)
            .map(|_| ())
            .ok_or(ApiError::NotFound("template"))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
