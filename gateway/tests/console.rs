//! The web console as the gateway serves it: built from the API's current document
//! (so a contract change breaks the console's build, not its users), reached from
//! `/`, served with headers that forbid framing, sniffing and foreign scripts, and
//! every path under `/console/` that names no file is the app.
mod common;

use axum::http::{Method, StatusCode};
use common::Api;

fn console_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../console")
        .join(name)
}

#[test]
fn the_console_is_built_from_the_current_api_document() {
    let committed = std::fs::read_to_string(console_file("openapi.json"))
        .expect("console/openapi.json is committed");
    let current = rns_gateway::openapi_document().to_pretty_json().unwrap();
    assert!(
        committed == current,
        "console/openapi.json is not the API's document: run `cargo run -p rns-gateway -- openapi > console/openapi.json`, then `npm run build` in console/ (its types come from it)"
    );
}

#[tokio::test]
async fn the_console_is_served_under_console_with_its_security_headers() {
    let api = Api::start().await;
    let (status, headers, _) = api
        .call_with_headers(Method::GET, "/", None, &[], None)
        .await;
    assert!(status.is_redirection(), "{status}");
    assert_eq!(headers["location"], "/console/");
    if !console_file("dist/index.html").is_file() {
        panic!("the console is not built: run `npm ci && npm run build` in console/ (./scripts/test does)");
    }
    for path in ["/console/", "/console/some/page"] {
        let (status, headers, _) = api
            .call_with_headers(Method::GET, path, None, &[], None)
            .await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(
            policy.contains("script-src 'self'") && !policy.contains("unsafe"),
            "{policy}"
        );
    }
    let index = std::fs::read_to_string(console_file("dist/index.html")).unwrap();
    let script = index
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the index names its script");
    let (status, headers, _) = api
        .call_with_headers(Method::GET, script, None, &[], None)
        .await;
    assert_eq!(status, StatusCode::OK, "{script}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    assert!(headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
}
