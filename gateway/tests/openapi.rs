//! The OpenAPI document against the API it describes: served as generated, every
//! operation it lists is a route (none answers "no such route" or 405), every route
//! the README calls is in it, and its docs page is served from the binary.
mod common;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use common::Api;
use serde_json::Value;

/// Each `(method, path)` the document lists.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"]
        .as_object()
        .expect("the document has paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item is an object")
                .keys()
                .filter(|method| {
                    ["get", "post", "put", "patch", "delete"].contains(&method.as_str())
                })
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// Whether `path` (`/v1/contacts/42`) is an instance of the document's `template`
/// (`/v1/contacts/{id}`).
fn instance_of(path: &str, template: &str) -> bool {
    let (path, template): (Vec<&str>, Vec<&str>) =
        (path.split('/').collect(), template.split('/').collect());
    path.len() == template.len()
        && path.iter().zip(&template).all(|(segment, pattern)| {
            pattern.starts_with('{') && !segment.is_empty() || segment == pattern
        })
}

#[tokio::test]
async fn the_served_document_lists_every_route_and_each_operation_is_one() {
    let api = Api::start().await;
    let (status, served) = api.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        served["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.1")),
        "{}",
        served["openapi"]
    );
    let generated = serde_json::to_value(rns_gateway::openapi_document()).unwrap();
    assert_eq!(served, generated, "served as generated");
    let listed = operations(&served);
    assert!(listed.len() >= 49, "{} operations listed", listed.len());

    for (method, template) in &listed {
        let path = template
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "x1"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = matches!(method, Method::POST | Method::PUT | Method::PATCH)
            .then(|| serde_json::json!({}));
        let (status, reply) = api.call(method.clone(), &path, None, body).await;
        let no_route = status == StatusCode::NOT_FOUND
            && reply["error"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("route"));
        assert!(
            !no_route && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}, listed as {template}, is no route: {status} {reply}"
        );
        assert!(
            reply["error"]["code"].is_string(),
            "{method} {path} without a key answers an error: {status} {reply}"
        );
    }
}

/// Every gateway path the README's examples call is in the document: a route the
/// document lacks would show here (the API's routes are registered only with their
/// entries, see `rns_gateway::app`).
#[test]
fn every_path_the_readme_calls_is_documented() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("the README is beside the gateway");
    let document = serde_json::to_value(rns_gateway::openapi_document()).unwrap();
    let templates: BTreeSet<String> = operations(&document)
        .into_iter()
        .map(|(_, path)| path)
        .collect();
    let mut called = BTreeSet::new();
    // `$RNS` is the gateway; the carriers' receipt intake and the simulators have
    // addresses of their own.
    for line in readme.lines().filter(|line| line.contains("curl ")) {
        let Some(start) = line.find("$RNS/v1/").map(|at| at + "$RNS".len()) else {
            continue;
        };
        let path: String = line[start..]
            .chars()
            .take_while(|c| !matches!(c, '?' | '\'' | '"' | ' ' | '\\'))
            .collect();
        called.insert(path);
    }
    assert!(
        called.len() >= 20,
        "the README's calls were found: {called:?}"
    );
    let undocumented: Vec<&String> = called
        .iter()
        .filter(|path| !path.starts_with("/v1/docs") && *path != "/v1/openapi.json")
        .filter(|path| !templates.iter().any(|template| instance_of(path, template)))
        .collect();
    assert!(
        undocumented.is_empty(),
        "the README calls routes the document lacks: {undocumented:?}"
    );
}

/// The docs page and everything it loads come from the gateway itself.
#[tokio::test]
async fn the_docs_page_is_served_with_its_assets() {
    let api = Api::start().await;
    for asset in [
        "/v1/docs/",
        "/v1/docs/swagger-ui-bundle.js",
        "/v1/docs/swagger-ui.css",
    ] {
        let (status, _, _) = api
            .call_with_headers(Method::GET, asset, None, &[], None)
            .await;
        assert_eq!(status, StatusCode::OK, "{asset}");
    }
}

/// Clients generated from the document key operations by their ids: one each.
#[test]
fn every_operation_has_its_own_id() {
    let document: Value =
        serde_json::from_str(&rns_gateway::openapi_document().to_json().unwrap()).unwrap();
    let mut seen = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(!id.is_empty(), "{method} {path} has no operationId");
            assert!(
                seen.insert(id.clone()),
                "{method} {path}: operationId {id} is taken"
            );
        }
    }
    assert!(
        seen.contains("post_sender_numbers_by_number_verification"),
        "{seen:?}"
    );
}
