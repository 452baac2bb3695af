//! Trust between tenants, for every customer route at once: the routes come from the
//! OpenAPI document the gateway serves (which a gateway test keeps equal to the
//! routes it answers), so a new route is checked the day it exists.
//!
//! - Another customer's ids: every route that names a resource in its path is called
//!   with customer `rival`'s key (which may do everything) and customer `acme`'s ids;
//!   each answers 404, and afterwards acme's resources are all still there.
//! - Scopes: every customer route is called with an acme key that has every scope
//!   but the one the route needs; each answers 403.
//!
//! A path parameter this test does not know fails it, naming the route.
use reqwest::Method;
use rns_e2e::System;
use serde_json::{json, Value};

/// What one path parameter of acme's stands for.
#[derive(Debug, Default)]
struct Owned {
    contact: String,
    group: String,
    template: String,
    message: String,
    request: String,
    schedule: String,
    sender_number: String,
    recipient: String,
    blocklisted: String,
    api_key: String,
    person: String,
}

impl Owned {
    /// `path` with acme's ids filled in, or `None` for a parameter that names no
    /// customer's resource (a channel).
    fn fill(&self, path: &str) -> Option<String> {
        let mut filled = Vec::new();
        let segments: Vec<&str> = path.split('/').collect();
        for (index, segment) in segments.iter().enumerate() {
            let Some(parameter) = segment
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'))
            else {
                filled.push((*segment).to_owned());
                continue;
            };
            let resource = segments[index - 1];
            let value = match (resource, parameter) {
                ("contacts", "id") | ("members", "contact_id") => &self.contact,
                ("groups", "id") => &self.group,
                ("templates", "id") => &self.template,
                ("messages", "id") => &self.message,
                ("requests", "id") => &self.request,
                ("schedules", "id") => &self.schedule,
                ("api-keys", "id") => &self.api_key,
                ("members", "id") => &self.person,
                ("sender-numbers", "number") | ("opt-outs", "sender_number") => {
                    &self.sender_number
                }
                (_, "recipient") => &self.recipient,
                ("blocklist", "number") => &self.blocklisted,
                ("routing", "channel") => return None,
                _ => panic!(
                    "{path}: the tenancy test does not know what {{{parameter}}} after /{resource}/ names; teach Owned::fill"
                ),
            };
            filled.push(value.clone());
        }
        Some(filled.join("/"))
    }
}

/// A body the route accepts (so what it answers is about the ids, not the body).
fn body_for(method: &Method, path: &str, owned: &Owned) -> Option<Value> {
    let body = match (method.as_str(), path) {
        ("PATCH", "/v1/contacts/{id}") => json!({"memo": "changed"}),
        ("PATCH", "/v1/groups/{id}") => json!({"name": "renamed"}),
        ("POST", "/v1/groups/{id}/members") => json!({"contact_ids": [owned.contact]}),
        ("PUT", "/v1/templates/{id}") => json!({"name": "replaced", "text": "안녕하세요"}),
        ("POST", "/v1/sender-numbers/{number}/verification") => json!({"code": "000000"}),
        ("POST", "/v1/sender-numbers/{number}/verification-code") => return None,
        (_, _) if *method == Method::GET || *method == Method::DELETE => return None,
        (_, _) if path.ends_with("/rotate") => return None,
        _ => panic!("{method} {path}: the tenancy test has no body for it; add one to body_for"),
    };
    Some(body)
}

/// Every customer route (secured by an API key) of the served document.
async fn customer_routes(system: &System) -> Vec<(Method, String)> {
    let document: Value = reqwest::get(format!("{}/v1/openapi.json", system.gateway_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = Vec::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let by_key = operation["security"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|requirement| requirement.get("api_key").is_some());
            if by_key {
                routes.push((method.to_uppercase().parse().unwrap(), path.clone()));
            }
        }
    }
    assert!(routes.len() >= 45, "only {} customer routes", routes.len());
    routes
}

async fn created(system: &System, key: &str, path: &str, body: Value) -> Value {
    let (status, answer) = system.call(Method::POST, path, key, Some(body)).await;
    assert!((200..300).contains(&status), "{path}: {status} {answer}");
    answer
}

/// One of every resource a path can name, made by acme.
async fn acme_resources(system: &System, acme: &str) -> Owned {
    let contact = created(
        system,
        acme,
        "/v1/contacts",
        json!({"number": "01012340001"}),
    )
    .await;
    let group = created(system, acme, "/v1/groups", json!({"name": "vip"})).await;
    let template = created(
        system,
        acme,
        "/v1/templates",
        json!({"channel": "sms", "name": "hello", "text": "안녕하세요"}),
    )
    .await;
    system.verified_sender("acme", acme, "031-111-2222").await;
    created(
        system,
        acme,
        "/v1/opt-outs",
        json!({"sender_number": "0311112222", "recipient": "01099990000"}),
    )
    .await;
    let sent = created(
        system,
        acme,
        "/v1/messages",
        json!({"from": "0311112222", "to": ["01012340002"], "text": "tenancy"}),
    )
    .await;
    // Its results are in ClickHouse before anyone asks for them by id.
    let request = sent["request_id"].as_str().unwrap();
    system
        .wait_for_request(
            acme,
            request,
            std::time::Duration::from_secs(30),
            |summary| summary["total"] == json!(1),
        )
        .await;
    let in_an_hour = rns_types::time::rfc3339(rns_types::time::now_milliseconds() + 3_600_000);
    let scheduled = created(
        system,
        acme,
        "/v1/messages",
        json!({"from": "0311112222", "to": ["01012340003"], "text": "later", "scheduled_at": in_an_hour}),
    )
    .await;
    created(
        system,
        acme,
        "/v1/blocklist",
        json!({"number": "01077770000"}),
    )
    .await;
    let key = created(
        system,
        acme,
        "/v1/api-keys",
        json!({"name": "spare", "scopes": ["read"]}),
    )
    .await;
    // A person of acme's: invited, and signed up with the invitation.
    let invitation = created(
        system,
        acme,
        "/v1/members/invitations",
        json!({"email": "member@acme.example", "role": "member"}),
    )
    .await;
    let (status, person) = system
        .call(
            Method::POST,
            "/v1/auth/signup",
            "",
            Some(json!({"email": "member@acme.example", "password": "correct horse battery",
                        "name": "member", "phone": "010-4444-0001", "invitation": invitation["token"]})),
        )
        .await;
    assert_eq!(status, 201, "{person}");
    Owned {
        person: person["person"]["id"].as_str().unwrap().to_owned(),
        contact: contact["id"].as_str().unwrap().to_owned(),
        group: group["id"].as_str().unwrap().to_owned(),
        template: template["id"].as_str().unwrap().to_owned(),
        message: sent["message_ids"][0].as_str().unwrap().to_owned(),
        request: sent["request_id"].as_str().unwrap().to_owned(),
        schedule: scheduled["schedule_id"].as_str().unwrap().to_owned(),
        sender_number: "0311112222".to_owned(),
        recipient: "01099990000".to_owned(),
        blocklisted: "01077770000".to_owned(),
        api_key: key["id"].as_str().unwrap().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_customer_route_refuses_another_customers_ids_and_a_key_without_its_scope() {
    let system = System::start().await;
    let acme = system.customer("acme").await;
    // A number one customer verified is refused to every other: rival has its own.
    let rival = system
        .customer_with_sender("rival", "02-9999-0000", 1_000_000_000)
        .await;
    let owned = acme_resources(&system, &acme).await;
    let routes = customer_routes(&system).await;

    // Another customer's ids are not found, whatever the method.
    let mut checked = Vec::new();
    for (method, path) in &routes {
        if !path.contains('{') {
            continue;
        }
        let Some(filled) = owned.fill(path) else {
            continue;
        };
        let (status, answer) = system
            .call(
                method.clone(),
                &filled,
                &rival,
                body_for(method, path, &owned),
            )
            .await;
        assert_eq!(
            status, 404,
            "{method} {path} with rival's key on acme's ids: {answer}"
        );
        checked.push(format!("{method} {path}"));
    }
    assert!(checked.len() >= 20, "only {checked:?}");
    // acme's resources are all still there, and were the right ids.
    for path in [
        "/v1/contacts/{id}",
        "/v1/groups/{id}",
        "/v1/templates/{id}",
        "/v1/schedules/{id}",
        "/v1/requests/{id}",
        "/v1/messages/{id}",
    ] {
        let filled = owned.fill(path).unwrap();
        let (status, answer) = system.call(Method::GET, &filled, &acme, None).await;
        assert_eq!(status, 200, "acme's own {filled}: {answer}");
    }
    let (_, keys) = system.call(Method::GET, "/v1/api-keys", &acme, None).await;
    assert!(keys.to_string().contains(&owned.api_key), "{keys}");

    // A key without the scope a route needs is refused before anything else.
    let mut keys_without = std::collections::HashMap::new();
    for (scope, others) in [
        ("read", json!(["send", "manage"])),
        ("send", json!(["read", "manage"])),
        ("manage", json!(["send", "read"])),
    ] {
        let key = created(
            &system,
            &acme,
            "/v1/api-keys",
            json!({"name": format!("without {scope}"), "scopes": others}),
        )
        .await;
        keys_without.insert(scope, key["key"].as_str().unwrap().to_owned());
    }
    for (method, path) in &routes {
        let needed = if *method == Method::GET {
            "read"
        } else if *method == Method::POST && path == "/v1/messages" {
            "send"
        } else {
            "manage"
        };
        let filled = owned
            .fill(path)
            .unwrap_or_else(|| path.replace("{channel}", "sms"));
        let (status, answer) = system
            .call(method.clone(), &filled, &keys_without[needed], None)
            .await;
        assert_eq!(status, 403, "{method} {path} without {needed}: {answer}");
        assert_eq!(answer["error"]["code"], json!("forbidden"), "{answer}");
    }
}
