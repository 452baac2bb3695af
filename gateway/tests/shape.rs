//! The gateway's shape, kept by checks: route modules are thin and never reach into
//! one another — what two routes share lives outside `routes/` (the send use case in
//! `sending`, stores in their own modules) — and every body they answer is a type,
//! never JSON built by hand.
use std::path::Path;

/// Every line of code (comments left out) of every route module but `mod.rs`, as
/// `file:line: code`, once at least ten modules were read.
fn route_code() -> Vec<(String, String)> {
    let routes = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let mut lines = Vec::new();
    let mut read = 0;
    for entry in std::fs::read_dir(&routes).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "mod.rs" {
            continue;
        }
        read += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            lines.push((format!("{name}:{}", number + 1), code.to_owned()));
        }
    }
    assert!(read >= 10, "the route modules were read");
    lines
}

fn offences(matching: impl Fn(&str) -> bool) -> String {
    route_code()
        .into_iter()
        .filter(|(_, code)| matching(code))
        .map(|(place, code)| format!("{place}: {code}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_route_module_uses_another() {
    let found = offences(|code| {
        code != "use super::*;" && (code.contains("routes::") || code.contains("super::"))
    });
    assert!(
        found.is_empty(),
        "route modules using another route module:\n{found}"
    );
}

#[test]
fn no_route_answers_json_built_by_hand() {
    let found = offences(|code| {
        [
            "Json<Value>",
            "json!(",
            "serde_json::to_value",
            "Json<serde_json::Value>",
        ]
        .iter()
        .any(|built| code.contains(built))
    });
    assert!(
        found.is_empty(),
        "route modules building JSON by hand instead of answering a type:\n{found}"
    );
}

/// The gateway links the results queries (`rns-results`), never the analytics
/// service: no ingest and no webhook delivery in its build.
#[test]
fn the_gateway_links_no_ingest_or_webhook_delivery() {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--locked", "-p", "rns-gateway", "-e", "normal"])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(tree.contains("rns-results"), "the tree was read: {tree}");
    assert!(
        !tree.contains("rns-analytics"),
        "the gateway links the analytics service:\n{tree}"
    );
}
