//! The operator's tools: finding customers, suspending and resuming one, the audit
//! log of every admin and key action, and each queue's backlog and lag.
mod common;

use axum::http::{Method, StatusCode};
use common::{error_code, Api, ADMIN_KEY};
use serde_json::{json, Value};

async fn customers(api: &Api, query: &str) -> Vec<String> {
    let (status, page) = api
        .call(
            Method::GET,
            &format!("/v1/admin/customers?{query}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn suspend(api: &Api, customer: &str, reason: &str) -> (StatusCode, Value) {
    api.call(
        Method::PUT,
        &format!("/v1/admin/customers/{customer}/suspension"),
        Some(ADMIN_KEY),
        Some(json!({ "reason": reason })),
    )
    .await
}

#[tokio::test]
async fn the_operator_finds_customers_by_id_name_and_suspension() {
    let api = Api::start().await;
    for (id, name) in [
        ("acme", "Acme Corp"),
        ("beta", "Beta Mart"),
        ("gamma", "감마 마트"),
    ] {
        let (status, body) = api
            .call(
                Method::POST,
                "/v1/admin/customers",
                Some(ADMIN_KEY),
                Some(json!({"id": id, "name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(customers(&api, "q=MART").await, ["beta"]);
    assert_eq!(customers(&api, "q=마트").await, ["gamma"]);
    assert_eq!(customers(&api, "q=ac").await, ["acme"]);
    assert!(customers(&api, "q=nobody").await.is_empty());

    let (status, suspension) = suspend(&api, "gamma", "unpaid invoices").await;
    assert_eq!(status, StatusCode::OK, "{suspension}");
    assert_eq!(customers(&api, "suspended=true").await, ["gamma"]);
    assert_eq!(
        customers(&api, "suspended=false").await,
        ["acme", "beta", "rns"]
    );
    // A search pages like every list: one match a page.
    assert_eq!(customers(&api, "q=a&limit=1").await, ["acme"]);
    let (_, page) = api
        .call(
            Method::GET,
            "/v1/admin/customers?q=a&limit=1&cursor=acme",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(page["items"][0]["id"], json!("beta"), "{page}");
    let (_, page) = api
        .call(
            Method::GET,
            "/v1/admin/customers?suspended=true",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(
        page["items"][0]["suspension"]["reason"],
        json!("unpaid invoices")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_customer_reads_but_neither_sends_nor_changes_until_resumed() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let send = || async {
        api.call(
            Method::POST,
            "/v1/messages",
            Some(&key),
            Some(json!({"from": "0212345678", "to": ["01012345678"], "text": "안녕하세요"})),
        )
        .await
    };
    let (status, reply) = suspend(&api, "acme", " ").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    let (status, _) = suspend(&api, "nobody", "fraud").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = suspend(&api, "acme", "spam complaints").await;
    assert_eq!(status, StatusCode::OK);

    let queued_before = api.queued_sends().await.len();
    let (status, reply) = send().await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    assert_eq!(error_code(&reply), "customer_suspended");
    assert_eq!(
        api.queued_sends().await.len(),
        queued_before,
        "nothing queued"
    );
    let (status, reply) = api
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&key),
            Some(json!({"number": "01011112222"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    for read in ["/v1/points", "/v1/sender-numbers", "/v1/contacts"] {
        let (status, reply) = api.call(Method::GET, read, Some(&key), None).await;
        assert_eq!(status, StatusCode::OK, "{read}: {reply}");
    }

    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/admin/customers/acme/suspension",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, reply) = send().await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
}

async fn audit(api: &Api, query: &str) -> Value {
    let (status, page) = api
        .call(
            Method::GET,
            &format!("/v1/admin/audit?{query}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

fn actions(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| format!("{} {}", item["action"].as_str().unwrap(), item["status"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_key_actions_are_in_the_audit_log_with_who_and_when() {
    let api = Api::start().await;
    let started = rns_types::time::now_milliseconds();
    let key = api.customer("acme").await;
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/admin/customers/acme/limits",
            Some(ADMIN_KEY),
            Some(json!({"requests_per_second": 50})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, issued) = api
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&key),
            Some(json!({"name": "reader", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let reader = issued["key"].as_str().unwrap().to_owned();
    // Refused attempts are actions too; reads and sends are not recorded.
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/routing/sms",
            Some(&reader),
            Some(json!({"weights": {"kt": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    api.call(Method::GET, "/v1/api-keys", Some(&key), None)
        .await;
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/messages",
            Some(&key),
            Some(json!({"from": "0212345678", "to": ["01012345678"], "text": "hi"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{}", issued["id"].as_str().unwrap()),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let page = audit(&api, "customer=acme").await;
    assert_eq!(
        actions(&page),
        [
            "POST /v1/sender-numbers 201",
            "PUT /v1/admin/customers/{id}/sender-numbers/{number} 200",
            "POST /v1/admin/customers/{id}/points 200",
            "PUT /v1/admin/customers/{id}/limits 200",
            "POST /v1/api-keys 201",
            "PUT /v1/routing/{channel} 403",
            "DELETE /v1/api-keys/{id} 204",
        ],
        "{page}"
    );
    let items = page["items"].as_array().unwrap();
    assert_eq!(items[3]["actor"], json!({"kind": "operator"}));
    assert_eq!(items[3]["path"], json!("/v1/admin/customers/acme/limits"));
    assert_eq!(
        items[5]["actor"],
        json!({"kind": "key", "key_id": issued["id"]}),
        "the refused key is named"
    );
    let at = rns_types::time::parse_rfc3339(items[0]["at"].as_str().unwrap()).unwrap();
    assert!(at >= started, "{page}");

    // Everyone's: the customer's creation concerns no customer yet.
    let everyone = audit(&api, "").await;
    assert_eq!(actions(&everyone)[0], "POST /v1/admin/customers 201");
    assert_eq!(everyone["items"][0]["customer"], Value::Null);
    // A page at a time, from a cursor.
    let first = audit(&api, "customer=acme&limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = audit(&api, &format!("customer=acme&limit=2&cursor={cursor}")).await;
    assert_eq!(
        actions(&rest),
        actions(&page)[2..4],
        "the second page follows the first"
    );
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/admin/audit?since=yesterday",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let later = rns_types::time::rfc3339(rns_types::time::now_milliseconds() + 60_000);
    assert!(actions(&audit(&api, &format!("since={later}")).await).is_empty());
}

#[tokio::test]
async fn the_operator_sees_each_queue_with_its_backlog_and_lag() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let (status, _) = api
        .call(Method::GET, "/v1/admin/queues", Some(&key), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a customer key is no operator's"
    );

    let queue = |queues: &Value, name: &str| -> Value {
        queues["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|queue| queue["stream"] == name)
            .unwrap_or_else(|| panic!("{name} is listed: {queues}"))
            .clone()
    };
    let (status, before) = api
        .call(Method::GET, "/v1/admin/queues", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{before}");
    let carriers = ["KT", "SKT", "LGU"].map(|carrier| format!("CARRIER_{carrier}"));
    for stream in ["SEND", "SCHEDULES", "RESULTS"]
        .into_iter()
        .chain(carriers.iter().map(String::as_str))
    {
        queue(&before, stream);
    }
    let send = queue(&before, "SEND");
    assert_eq!(
        (send["messages"].as_u64(), send["lag_seconds"].as_u64()),
        (Some(0), None)
    );

    // Nothing dispatches here: a send waits in SEND, and a schedule in SCHEDULES,
    // whose oldest message is a future firing, not a lag.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    for body in [
        json!({"from": "0212345678", "to": ["010-1000-0001"], "text": "now"}),
        json!({"from": "0212345678", "to": ["010-1000-0001"], "text": "later",
               "scheduled_at": tomorrow}),
    ] {
        let (status, answer) = api
            .call(Method::POST, "/v1/messages", Some(&key), Some(body))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }
    let (_, after) = api
        .call(Method::GET, "/v1/admin/queues", Some(ADMIN_KEY), None)
        .await;
    let send = queue(&after, "SEND");
    assert_eq!(send["messages"], 1, "{after}");
    assert!(
        send["lag_seconds"].as_u64().is_some() && send["oldest_at"].is_string(),
        "{send}"
    );
    let schedules = queue(&after, "SCHEDULES");
    assert!(schedules["messages"].as_u64().unwrap() >= 1, "{schedules}");
    assert_eq!(schedules["lag_seconds"], Value::Null, "{schedules}");
    let audit = queue(&after, "AUDIT");
    assert!(
        audit["messages"].as_u64().unwrap() >= 1,
        "the top-up is audited: {audit}"
    );
    assert_eq!(
        audit["lag_seconds"],
        Value::Null,
        "a record is no queue: {audit}"
    );
}
