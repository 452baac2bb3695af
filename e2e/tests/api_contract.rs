//! The API against its own OpenAPI document, fuzzed by schemathesis (PyPI) against the
//! real binaries: every operation with generated valid and invalid input, and the
//! stateful phase chaining operations through their links (create → get → delete).
//! No answer may be a 5xx, every one must match the document (status, content type,
//! headers, schema — every error is `{"error":{"code","message"}}`), input the
//! document rules out is refused, an unknown method is 405, a resource just created
//! is found and one deleted is gone, and a request without the key is refused.
//! (Input the document allows may still be refused: a phone number or a cursor is a
//! string there, and only the API can tell a real one — so schemathesis's
//! `positive_data_acceptance` check is left out.) Bounded by `RNS_FUZZ_SECONDS`
//! (default 90) for the customer's operations and a third of it for the operator's.
use std::process::Stdio;

use rns_e2e::{System, ADMIN_KEY};

const INSTALL: &str = "python3 -m pip install schemathesis==4.32.5";

/// Runs schemathesis over the operations `filter` selects, with `key`; returns
/// whether it passed and what it printed.
async fn fuzz(system: &System, key: &str, seconds: u64, filter: &[&str]) -> (bool, String) {
    // Its example database goes to a directory of its own, not the checkout.
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let output = tokio::process::Command::new("st")
        .arg("run")
        .arg(format!("{}/v1/openapi.json", system.gateway_url()))
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--checks", "all"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-time", &seconds.to_string()])
        // One worker: hypothesis parsing in threads trips CPython 3.11 (`AST constructor
        // recursion depth mismatch`).
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        .args(["--suppress-health-check", "all"])
        .args(["--output-truncate", "false"])
        .args(filter)
        .env("NO_COLOR", "1")
        .current_dir(scratch.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|error| panic!("st did not run ({error}); install it with: {INSTALL}"));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_its_document_under_fuzzing() {
    rns_testkit::require_program("st", INSTALL);
    let system = System::start().await;
    let key = system.customer_with_points("acme", 1_000_000).await;
    let seconds: u64 = std::env::var("RNS_FUZZ_SECONDS")
        .ok()
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or(90);

    let (passed, printed) = fuzz(
        &system,
        &key,
        seconds,
        &["--exclude-tag", "customers", "--exclude-tag", "carriers"],
    )
    .await;
    assert!(
        printed.contains("operations"),
        "schemathesis ran: {printed}"
    );
    assert!(passed, "the customer API under fuzzing:\n{printed}");

    let (passed, printed) = fuzz(
        &system,
        ADMIN_KEY,
        (seconds / 3).max(1),
        &["--include-tag", "customers", "--include-tag", "carriers"],
    )
    .await;
    assert!(passed, "the operator API under fuzzing:\n{printed}");
}
