//! The web console's files (`console/`, a TypeScript single-page app built with
//! Vite), served by the gateway under `/console/` from its own binary: a release
//! build embeds `console/dist` (a debug build reads it from disk). `/` leads there.
//! The console calls the same `/v1` API as every other client, signed in with its
//! session cookie ([`crate::accounts`]).
//!
//! Every answer forbids framing and sniffing and allows scripts, styles and
//! connections from this origin only. A path that names no file is the app's
//! `index.html` (its pages are addressed after `#`); a console that was not built
//! answers 503 saying how to build it.
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::AppState;

#[derive(rust_embed::RustEmbed)]
#[folder = "../console/dist"]
#[allow_missing = true]
struct Files;

/// Where the console is.
pub const CONSOLE_PATH: &str = "/console/";

const SECURITY_HEADERS: [(header::HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "same-origin"),
];

/// The console's routes: `/`, `/console` and everything under `/console/`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to(CONSOLE_PATH) }))
        .route("/console", get(|| async { Redirect::to(CONSOLE_PATH) }))
        .route("/console/", get(|| async { file("index.html") }))
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>| async move { file(&path) }),
        )
}

fn file(path: &str) -> Response {
    let (name, found) = match Files::get(path) {
        Some(found) => (path, found),
        None => match Files::get("index.html") {
            Some(index) => ("index.html", index),
            None => return not_built(),
        },
    };
    let mut response = found.data.into_owned().into_response();
    let headers = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(found.metadata.mimetype()) {
        headers.insert(header::CONTENT_TYPE, mime);
    }
    // Built assets carry their content's hash in their names: kept for a year.
    let caching = if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(caching));
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn not_built() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "The console was not built into this gateway: run `npm ci && npm run build` in console/ \
         (./scripts/up and ./scripts/test do), then build the gateway.",
    )
        .into_response()
}
