//! The API's OpenAPI 3.1 document, generated from the handlers' own `#[utoipa::path]`
//! and the types they take and answer, and registered together with their routes
//! ([`crate::app`] adds every API route through `utoipa_axum::routes!`, so a route
//! cannot exist without its entry, nor an entry without its route).
//!
//! Why utoipa: the description lives beside each handler and is checked by the
//! compiler against the types it names (a renamed field or type changes the document
//! or fails the build), it writes OpenAPI 3.1, and `utoipa-axum` registers route and
//! document in one call; aide would infer more from extractors but does not see
//! through this API's own extractors (`ApiJson`, `ApiQuery`, `Customer`).
//!
//! Served at [`DOCUMENT_PATH`]; a Swagger UI page at [`DOCS_PATH`] with its assets
//! vendored into the binary (nothing from a CDN at run time).
use std::collections::BTreeMap;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/v1/openapi.json";
/// Where its docs page is served.
pub const DOCS_PATH: &str = "/v1/docs";

/// The document's fixed parts; [`crate::app`] adds the operations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "RNS",
        description = "Multi-carrier SMS/LMS/MMS and Kakao AlimTalk distribution: send, route by weight, \
                       follow every message to its final state. Every error answers \
                       `{\"error\":{\"code\",\"message\"}}`.",
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Keys),
    tags(
        (name = "messages", description = "Sending, and every message's and request's record"),
        (name = "statistics", description = "Counts by carrier, type and state"),
        (name = "routing", description = "Each channel's carrier ratio and what it became"),
        (name = "sender numbers", description = "The numbers messages are sent from"),
        (name = "contacts", description = "The customer's address book"),
        (name = "groups", description = "Contacts sent to together"),
        (name = "templates", description = "Texts with variables, AlimTalk templates"),
        (name = "schedules", description = "Sends due later, once or recurring"),
        (name = "opt-outs", description = "Recipients who asked for no advertisements"),
        (name = "inbound messages", description = "What handsets sent back"),
        (name = "points", description = "The prepaid balance and its ledger"),
        (name = "webhook", description = "Status events pushed to the customer"),
        (name = "customers", description = "Operator: customers and their points"),
        (name = "carriers", description = "Operator: carriers and their rates"),
        (name = "queues", description = "Operator: each stream's backlog and lag"),
    )
)]
pub struct ApiDoc;

/// The two keys: a customer's API key, and the operator's admin key; both sent as
/// `Authorization: Bearer <key>`.
struct Keys;

impl Modify for Keys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["api_key", "admin_key", "line_key"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
        // The console's session (every `api_key` route takes it too, with the
        // session's CSRF token in `X-CSRF-Token` on a change).
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::accounts::SESSION_COOKIE,
            ))),
        );
    }
}

/// The error answers every operation may give, in the one error shape.
pub struct Errors;

impl utoipa::IntoResponses for Errors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            (
                "4XX",
                "Refused: malformed (400), unauthorized (401), insufficient points (402), \
                 not found (404), method not allowed (405), conflict (409), too large (413), \
                 unsupported media type (415), invalid (422)",
            ),
            ("503", "A store RNS depends on does not answer; try again"),
        ]
        .into_iter()
        .map(|(status, description)| {
            let response = ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            (status.to_owned(), RefOr::T(response))
        })
        .collect()
    }
}

/// Names every operation after its method and path (`get_sender_numbers`,
/// `post_sender_numbers_by_number_verification`): the handlers' own names repeat
/// across modules (`list`, `create`), and clients generated from the document key
/// operations by these names, so each must be unique.
pub fn name_operations(document: &mut utoipa::openapi::OpenApi) {
    for (path, item) in document.paths.paths.iter_mut() {
        let words: Vec<String> = path
            .split('/')
            .filter(|segment| !segment.is_empty() && *segment != "v1")
            .map(|segment| {
                match segment
                    .strip_prefix('{')
                    .and_then(|rest| rest.strip_suffix('}'))
                {
                    Some(parameter) => format!("by_{parameter}"),
                    None => segment.replace('-', "_"),
                }
            })
            .collect();
        let name = words.join("_");
        for (method, operation) in [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
        ] {
            if let Some(operation) = operation {
                operation.operation_id = Some(format!("{method}_{name}"));
            }
        }
    }
}
