//! Contacts: `POST /v1/contacts`, `GET /v1/contacts?q=&group_id=&cursor=&limit=`,
//! `GET|PATCH|DELETE /v1/contacts/{id}` and `POST /v1/contacts/import` (CSV).
//!
//! Numbers are normalised (Korean numbers to national digits, others to E.164), and a
//! customer has at most one contact per number. Fields are named values a template
//! fills (`#{name}`). Another customer's contact ids are 404, exactly like ids that
//! never existed.
use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use rns_types::phone::normalise_contact_number;
use rns_types::template::is_variable_name;
use rns_types::CustomerId;
use serde::Deserialize;
use serde::Serialize;

use crate::contacts::{
    check_field, is_id, new_id, Contact, ContactRecord, GroupsChange, Page, PutMode, PutOutcome,
    Query,
};
use crate::csv_rows::{require_csv, CsvTable, RowError};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Customer};
use crate::pagination::PageQuery;
use crate::AppState;

pub const MAX_MEMO_CHARACTERS: usize = 500;
pub const MAX_FIELDS: usize = 20;
/// Most rows of one CSV import.
/// The largest CSV import body.
pub const MAX_IMPORT_BYTES: usize = 16 << 20;
const IMPORT_CHUNK: usize = 1_000;
const MAX_GROUPS_PER_CONTACT: usize = 100;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    number: String,
    #[serde(default)]
    memo: String,
    #[serde(default)]
    group_ids: Vec<String>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactChange {
    number: Option<String>,
    memo: Option<String>,
    group_ids: Option<Vec<String>>,
    fields: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ContactsQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    group_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

fn number(raw: &str) -> Result<String, ApiError> {
    normalise_contact_number(raw)
        .map_err(|error| ApiError::invalid("invalid_number", error.to_string()))
}

fn check_memo(memo: &str) -> Result<(), ApiError> {
    if memo.chars().count() > MAX_MEMO_CHARACTERS {
        return Err(ApiError::invalid(
            "invalid_memo",
            format!("memo must be at most {MAX_MEMO_CHARACTERS} characters"),
        ));
    }
    Ok(())
}

/// Field names are template variable names; values are bounded.
pub fn check_fields(fields: &BTreeMap<String, String>) -> Result<(), String> {
    if fields.len() > MAX_FIELDS {
        return Err(format!("at most {MAX_FIELDS} fields are allowed"));
    }
    fields
        .iter()
        .try_for_each(|(name, value)| check_field(name, value))
}

fn check_group_ids(group_ids: &[String]) -> Result<Vec<String>, ApiError> {
    if group_ids.len() > MAX_GROUPS_PER_CONTACT {
        return Err(ApiError::invalid(
            "too_many_groups",
            format!("a contact may be in at most {MAX_GROUPS_PER_CONTACT} groups"),
        ));
    }
    let mut ids: Vec<String> = Vec::with_capacity(group_ids.len());
    for id in group_ids {
        if !is_id(id) {
            return Err(ApiError::NotFound("group"));
        }
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    Ok(ids)
}

fn put_result(outcome: PutOutcome) -> Result<String, ApiError> {
    match outcome {
        PutOutcome::Created(id) | PutOutcome::Updated(id) => Ok(id),
        PutOutcome::NotFound => Err(ApiError::NotFound("contact")),
        PutOutcome::DuplicateNumber { existing } => Err(ApiError::Conflict(format!(
            "contact {existing} already has this number"
        ))),
        PutOutcome::UnknownGroup(_) => Err(ApiError::NotFound("group")),
        PutOutcome::Full => Err(ApiError::invalid(
            "too_many_contacts",
            format!(
                "a customer may keep at most {} contacts",
                crate::contacts::MAX_CONTACTS
            ),
        )),
    }
}

async fn stored_contact(
    state: &AppState,
    customer: &CustomerId,
    id: &str,
) -> Result<Contact, ApiError> {
    state
        .contacts()
        .contact(customer, id)
        .await?
        .ok_or(ApiError::NotFound("contact"))
}

#[utoipa::path(
    post,
    path = "/v1/contacts",
    tag = "contacts",
    request_body = NewContact,
    responses((status = 201, description = "Created", body = Contact), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn create(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewContact>,
) -> Result<(StatusCode, Json<Contact>), ApiError> {
    let number = number(&body.number)?;
    check_memo(&body.memo)?;
    check_fields(&body.fields).map_err(|message| ApiError::invalid("invalid_fields", message))?;
    let group_ids = check_group_ids(&body.group_ids)?;
    let now_ms = rns_types::time::now_milliseconds();
    let record = ContactRecord {
        id: new_id(),
        number,
        memo: body.memo,
        fields: body.fields,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
    };
    let outcome = state
        .contacts()
        .put(
            &customer,
            &record,
            PutMode::Create,
            GroupsChange::Replace,
            &group_ids,
        )
        .await?;
    let id = put_result(outcome)?;
    Ok((
        StatusCode::CREATED,
        Json(stored_contact(&state, &customer, &id).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/contacts/{id}",
    tag = "contacts",
    params(("id" = String, Path, description = "the contact")),
    responses((status = 200, description = "OK", body = Contact), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn get(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Contact>, ApiError> {
    if !is_id(&id) {
        return Err(ApiError::NotFound("contact"));
    }
    Ok(Json(stored_contact(&state, &customer, &id).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/contacts/{id}",
    tag = "contacts",
    params(("id" = String, Path, description = "the contact")),
    request_body = ContactChange,
    responses((status = 200, description = "OK", body = Contact), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn update(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<ContactChange>,
) -> Result<Json<Contact>, ApiError> {
    if !is_id(&id) {
        return Err(ApiError::NotFound("contact"));
    }
    let current = state
        .contacts()
        .contact(&customer, &id)
        .await?
        .ok_or(ApiError::NotFound("contact"))?;
    let mut record = current.record;
    if let Some(raw) = &change.number {
        record.number = number(raw)?;
    }
    if let Some(memo) = change.memo {
        check_memo(&memo)?;
        record.memo = memo;
    }
    if let Some(fields) = change.fields {
        check_fields(&fields).map_err(|message| ApiError::invalid("invalid_fields", message))?;
        record.fields = fields;
    }
    record.updated_at_ms = rns_types::time::now_milliseconds();
    let (groups, group_ids) = match &change.group_ids {
        Some(group_ids) => (GroupsChange::Replace, check_group_ids(group_ids)?),
        None => (GroupsChange::Keep, Vec::new()),
    };
    let outcome = state
        .contacts()
        .put(&customer, &record, PutMode::Update, groups, &group_ids)
        .await?;
    put_result(outcome)?;
    Ok(Json(stored_contact(&state, &customer, &id).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/contacts/{id}",
    tag = "contacts",
    params(("id" = String, Path, description = "the contact")),
    responses((status = 204, description = "Done; no body"), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn delete(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !is_id(&id) || !state.contacts().delete(&customer, &id).await? {
        return Err(ApiError::NotFound("contact"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/contacts",
    tag = "contacts",
    params(ContactsQuery, PageQuery),
    responses((status = 200, description = "OK", body = Page<Contact>), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn list(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ContactsQuery>,
) -> Result<Json<Page<Contact>>, ApiError> {
    let limit = query.page.limit()?;
    let cursor = query.page.cursor(is_id)?;
    if let Some(group) = query.group_id.as_deref() {
        let exists = is_id(group) && state.contacts().group(&customer, group).await?.is_some();
        if !exists {
            return Err(ApiError::NotFound("group"));
        }
    }
    let search = query.q.as_deref().and_then(Query::new);
    let page = state
        .contacts()
        .list(
            &customer,
            query.group_id.as_deref(),
            search.as_ref(),
            cursor,
            limit,
        )
        .await?;
    Ok(Json(page))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    #[serde(default)]
    group_id: Option<String>,
}

/// What an import did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Rows read, the header not counted.
    rows: usize,
    created: usize,
    updated: usize,
    failed: usize,
    errors: Vec<RowError>,
}

/// `POST /v1/contacts/import`: a CSV body (`content-type: text/csv`) with a header
/// row naming `number` and optionally `memo`; every other column is a field. Rows are
/// upserted by number; every row that cannot be imported is reported with its row
/// number and why, and the others are imported.
#[utoipa::path(
    post,
    path = "/v1/contacts/import",
    tag = "contacts",
    params(ImportQuery),
    request_body(content = String, content_type = "text/csv", description = "`name,number` rows, with a header row"),
    responses((status = 200, description = "OK", body = ImportReport), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn import(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ImportQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ImportReport>, ApiError> {
    require_csv(&headers)?;
    let group_ids = match query.group_id {
        Some(group) => {
            if !is_id(&group) || state.contacts().group(&customer, &group).await?.is_none() {
                return Err(ApiError::NotFound("group"));
            }
            vec![group]
        }
        None => Vec::new(),
    };
    let parsed = parse_csv(&body, rns_types::time::now_milliseconds())?;
    let mut errors = parsed.errors;
    let mut created = 0;
    let mut updated = 0;
    for chunk in parsed.rows.chunks(IMPORT_CHUNK) {
        let records: Vec<ContactRecord> = chunk.iter().map(|(_, record)| record.clone()).collect();
        let outcomes = state
            .contacts()
            .put_many(&customer, &records, &group_ids)
            .await?;
        for ((row, _), outcome) in chunk.iter().zip(outcomes) {
            match outcome {
                PutOutcome::Created(_) => created += 1,
                PutOutcome::Updated(_) => updated += 1,
                other => errors.push(RowError {
                    row: *row,
                    error: put_result(other)
                        .err()
                        .map(|error| error.to_string())
                        .unwrap_or_default(),
                }),
            }
        }
    }
    errors.sort_by_key(|error| error.row);
    tracing::info!(customer = %customer, created, updated, failed = errors.len(), "contacts imported");
    Ok(Json(ImportReport {
        rows: parsed.row_count,
        created,
        updated,
        failed: errors.len(),
        errors,
    }))
}

struct ParsedCsv {
    row_count: usize,
    rows: Vec<(usize, ContactRecord)>,
    errors: Vec<RowError>,
}

fn parse_csv(body: &[u8], now_ms: u64) -> Result<ParsedCsv, ApiError> {
    let table = CsvTable::read(body)?;
    let number_column = table.column("number")?;
    let row_count = table.row_count();
    let CsvTable {
        columns,
        rows,
        errors,
    } = table;
    let memo_column = columns.iter().position(|name| name == "memo");
    for (index, name) in columns.iter().enumerate() {
        if index != number_column && Some(index) != memo_column && !is_variable_name(name) {
            return Err(ApiError::invalid(
                "invalid_csv",
                format!("column {} ({name:?}) is not a valid field name", index + 1),
            ));
        }
    }
    let mut parsed = ParsedCsv {
        row_count,
        rows: Vec::new(),
        errors,
    };
    for (row, record) in rows {
        let number = match normalise_contact_number(&record[number_column]) {
            Ok(number) => number,
            Err(error) => {
                parsed.errors.push(RowError {
                    row,
                    error: error.to_string(),
                });
                continue;
            }
        };
        let memo = memo_column
            .map(|column| record[column].to_owned())
            .unwrap_or_default();
        let fields: BTreeMap<String, String> = columns
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != number_column && Some(*index) != memo_column)
            .filter(|(index, _)| !record[*index].is_empty())
            .map(|(index, name)| (name.clone(), record[index].to_owned()))
            .collect();
        let checked = if memo.chars().count() > MAX_MEMO_CHARACTERS {
            Err(format!(
                "memo is longer than {MAX_MEMO_CHARACTERS} characters"
            ))
        } else {
            check_fields(&fields)
        };
        if let Err(error) = checked {
            parsed.errors.push(RowError { row, error });
            continue;
        }
        parsed.rows.push((
            row,
            ContactRecord {
                id: new_id(),
                number,
                memo,
                fields,
                created_at_ms: now_ms,
                updated_at_ms: now_ms,
            },
        ));
    }
    parsed.errors.sort_by_key(|error| error.row);
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_contacts_and_bad_rows_are_reported_by_row_number() {
        let csv = "number,memo,name\n010-1111-2222,vip,김철수\nnot a number,x,y\n+1 202 555 0100,,Bob\n01033334444,only two\n";
        let parsed = parse_csv(csv.as_bytes(), 1).unwrap();
        assert_eq!(parsed.row_count, 4);
        assert_eq!(parsed.rows.len(), 2);
        assert_eq!(parsed.rows[0].1.number, "01011112222");
        assert_eq!(parsed.rows[0].1.fields["name"], "김철수");
        assert_eq!(parsed.rows[1].1.number, "+12025550100");
        let rows: Vec<usize> = parsed.errors.iter().map(|error| error.row).collect();
        assert_eq!(rows, [3, 5]);
    }

    #[test]
    fn a_header_without_number_or_with_bad_field_names_is_refused() {
        assert!(parse_csv(b"phone,memo\n01011112222,x\n", 1).is_err());
        assert!(parse_csv(b"number,my field\n01011112222,x\n", 1).is_err());
    }
}
