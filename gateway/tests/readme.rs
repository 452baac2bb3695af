//! The README's examples as a reader runs them: every `curl` that sends a body says
//! its content type (the API answers 415 without one), and the AlimTalk template
//! example is one the API takes.
mod common;

use axum::http::{Method, StatusCode};
use common::Api;
use serde_json::Value;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("the README is beside the gateway")
}

/// Every `curl` command of `text`, its continued lines and quoted newlines joined.
fn curl_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if !line.trim_start().starts_with("curl ") {
            continue;
        }
        let mut command = line.to_owned();
        while command.trim_end().ends_with('\\') || command.matches('\'').count() % 2 == 1 {
            match lines.next() {
                Some(next) => {
                    command.push('\n');
                    command.push_str(next);
                }
                None => break,
            }
        }
        commands.push(command);
    }
    commands
}

/// The body of `command`'s `-d '…'`.
fn body(command: &str) -> Option<&str> {
    let start = command.find("-d '")? + 4;
    let length = command[start..].find('\'')?;
    Some(&command[start..start + length])
}

#[test]
fn every_curl_that_sends_a_body_names_its_content_type() {
    let commands = curl_commands(&readme());
    assert!(commands.len() > 40, "the README's examples were found");
    let with_body: Vec<&String> = commands
        .iter()
        .filter(|command| command.contains(" -d ") || command.contains("--data"))
        .collect();
    assert!(with_body.len() > 10);
    for command in with_body {
        assert!(
            command.to_lowercase().contains("content-type:"),
            "sent without a content type, answered 415: {command}"
        );
    }
}

#[tokio::test]
async fn the_alimtalk_template_example_is_taken() {
    let commands = curl_commands(&readme());
    let example = commands
        .iter()
        .find(|command| command.contains("/v1/templates") && command.contains("\"alimtalk\":{"))
        .expect("the README has an AlimTalk template example");
    let template: Value =
        serde_json::from_str(body(example).expect("it sends a body")).expect("its body is JSON");
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let (status, reply) = api
        .call(Method::POST, "/v1/templates", Some(&key), Some(template))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
}
