//! Contacts and groups through the API, against real nats-server and redis-server:
//! every operation, bad input, paging, search, CSV import, and another customer's ids.
mod common;

use axum::http::{Method, StatusCode};
use common::{error_code, Api};
use serde_json::{json, Value};

async fn create_contact(api: &Api, key: &str, body: Value) -> Value {
    let (status, contact) = api
        .call(Method::POST, "/v1/contacts", Some(key), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    contact
}

async fn create_group(api: &Api, key: &str, name: &str) -> String {
    let (status, group) = api
        .call(
            Method::POST,
            "/v1/groups",
            Some(key),
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    group["id"].as_str().unwrap().to_owned()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn contacts_are_created_normalised_edited_and_deleted() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let group = create_group(&api, &key, "VIP").await;
    let contact = create_contact(
        &api,
        &key,
        json!({"number": "+82 10-1111-2222", "memo": "단골", "group_ids": [group], "fields": {"name": "김철수"}}),
    )
    .await;
    let id = contact["id"].as_str().unwrap();
    assert_eq!(contact["number"], "01011112222");
    assert_eq!(contact["group_ids"], json!([group]));
    assert_eq!(contact["fields"]["name"], "김철수");

    // One contact per number.
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&key),
            Some(json!({"number": "010-1111-2222"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Foreign numbers are kept in E.164.
    let foreign = create_contact(&api, &key, json!({"number": "+1 202-555-0100"})).await;
    assert_eq!(foreign["number"], "+12025550100");

    let (status, edited) = api
        .call(
            Method::PATCH,
            &format!("/v1/contacts/{id}"),
            Some(&key),
            Some(json!({"number": "010-3333-4444", "memo": "moved", "group_ids": []})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["number"], "01033334444");
    assert_eq!(edited["memo"], "moved");
    assert_eq!(edited["fields"]["name"], "김철수", "fields untouched");
    assert_eq!(edited["group_ids"], json!([]));
    // The old number is free again.
    create_contact(&api, &key, json!({"number": "01011112222"})).await;

    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/contacts/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(Method::GET, &format!("/v1/contacts/{id}"), Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Its number can be used again.
    create_contact(&api, &key, json!({"number": "01033334444"})).await;
}

#[tokio::test]
async fn bad_contact_input_is_a_422_naming_the_problem() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let long_memo = "m".repeat(501);
    let many_fields: serde_json::Map<String, Value> = (0..21)
        .map(|index| (format!("f{index}"), json!("v")))
        .collect();
    for (body, code) in [
        (json!({"number": "12"}), "invalid_number"),
        (
            json!({"number": "010-1234-5678", "memo": long_memo}),
            "invalid_memo",
        ),
        (
            json!({"number": "010-1234-5678", "fields": {"bad name": "x"}}),
            "invalid_fields",
        ),
        (
            json!({"number": "010-1234-5678", "fields": many_fields}),
            "invalid_fields",
        ),
        (
            json!({"number": "010-1234-5678", "nickname": "x"}),
            "invalid_body",
        ),
        (json!({"memo": "no number"}), "invalid_body"),
    ] {
        let (status, answer) = api
            .call(Method::POST, "/v1/contacts", Some(&key), Some(body.clone()))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} → {answer}"
        );
        assert_eq!(error_code(&answer), code, "{body}");
    }
    let (status, _) = api
        .call(Method::GET, "/v1/contacts?limit=0", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = api
        .call(Method::GET, "/v1/contacts?cursor=../x", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = api
        .call(Method::GET, "/v1/contacts/not-an-id", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_customers_contacts_and_groups_are_404() {
    let api = Api::start().await;
    let acme = api.customer("acme").await;
    let rival = api.customer("rival").await;
    let group = create_group(&api, &acme, "acme group").await;
    let contact = create_contact(&api, &acme, json!({"number": "01011112222"})).await;
    let contact = contact["id"].as_str().unwrap();

    for (method, path, body) in [
        (Method::GET, format!("/v1/contacts/{contact}"), None),
        (
            Method::PATCH,
            format!("/v1/contacts/{contact}"),
            Some(json!({"memo": "mine"})),
        ),
        (Method::DELETE, format!("/v1/contacts/{contact}"), None),
        (Method::GET, format!("/v1/groups/{group}"), None),
        (
            Method::PATCH,
            format!("/v1/groups/{group}"),
            Some(json!({"name": "mine"})),
        ),
        (Method::DELETE, format!("/v1/groups/{group}"), None),
        (Method::GET, format!("/v1/groups/{group}/members"), None),
        (Method::GET, format!("/v1/contacts?group_id={group}"), None),
        (
            Method::DELETE,
            format!("/v1/groups/{group}/members/{contact}"),
            None,
        ),
        (
            Method::POST,
            "/v1/contacts".to_owned(),
            Some(json!({"number": "01099998888", "group_ids": [group]})),
        ),
    ] {
        let (status, body) = api.call(method.clone(), &path, Some(&rival), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
    }
    // The rival cannot put acme's contact into its own group either.
    let own = create_group(&api, &rival, "rival group").await;
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/v1/groups/{own}/members"),
            Some(&rival),
            Some(json!({"contact_ids": [contact]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "unknown_contacts", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(contact));
    // The same number is a separate contact for each customer.
    create_contact(&api, &rival, json!({"number": "01011112222"})).await;
    // And acme's data is untouched.
    let (status, mine) = api
        .call(
            Method::GET,
            &format!("/v1/contacts/{contact}"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["memo"], "");
}

#[tokio::test]
async fn lists_page_without_gaps_or_repeats_and_search_by_number_memo_and_group() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let vip = create_group(&api, &key, "VIP").await;
    let mut created = Vec::new();
    for index in 0..7 {
        let memo = if index % 2 == 0 {
            "VIP 고객"
        } else {
            "일반"
        };
        let groups = if index < 3 { json!([vip]) } else { json!([]) };
        let contact = create_contact(
            &api,
            &key,
            json!({"number": format!("010-5555-000{index}"), "memo": memo, "group_ids": groups}),
        )
        .await;
        created.push(contact["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/contacts?limit=3&cursor={cursor}"),
            None => "/v1/contacts?limit=3".to_owned(),
        };
        let (status, page) = api.call(Method::GET, &path, Some(&key), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, created, "every contact once, in creation order");

    let (_, page) = api
        .call(Method::GET, "/v1/contacts?q=vip", Some(&key), None)
        .await;
    assert_eq!(
        ids(&page),
        [
            created[0].clone(),
            created[2].clone(),
            created[4].clone(),
            created[6].clone()
        ]
    );
    let (_, page) = api
        .call(Method::GET, "/v1/contacts?q=5555-0003", Some(&key), None)
        .await;
    assert_eq!(ids(&page), [created[3].clone()]);
    let (_, page) = api
        .call(
            Method::GET,
            &format!("/v1/contacts?group_id={vip}&q=vip"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(ids(&page), [created[0].clone(), created[2].clone()]);
    let (_, page) = api
        .call(
            Method::GET,
            &format!("/v1/groups/{vip}/members?limit=2"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(ids(&page), [created[0].clone(), created[1].clone()]);
    assert!(page["next_cursor"].is_string());
}

#[tokio::test]
async fn groups_gain_and_lose_members_and_deleting_one_keeps_its_contacts() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let group = create_group(&api, &key, "Team").await;
    let first = create_contact(&api, &key, json!({"number": "01011110001"})).await;
    let second = create_contact(&api, &key, json!({"number": "01011110002"})).await;
    let first = first["id"].as_str().unwrap();
    let second = second["id"].as_str().unwrap();
    let (status, added) = api
        .call(
            Method::POST,
            &format!("/v1/groups/{group}/members"),
            Some(&key),
            Some(json!({"contact_ids": [first, second, first]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!(added["members"], 2);
    let (_, contact) = api
        .call(
            Method::GET,
            &format!("/v1/contacts/{first}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(contact["group_ids"], json!([group]));

    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/groups/{group}/members/{first}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/groups/{group}/members/{first}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no longer a member");

    let (status, renamed) = api
        .call(
            Method::PATCH,
            &format!("/v1/groups/{group}"),
            Some(&key),
            Some(json!({"name": "Crew"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (renamed["name"].as_str(), renamed["members"].as_u64()),
        (Some("Crew"), Some(1))
    );
    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({}),
    ] {
        let (status, _) = api
            .call(Method::POST, "/v1/groups", Some(&key), Some(bad.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/v1/groups/{group}/members"),
            Some(&key),
            Some(json!({"contact_ids": []})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    create_group(&api, &key, "Second").await;
    let (_, groups) = api
        .call(Method::GET, "/v1/groups?limit=1", Some(&key), None)
        .await;
    assert_eq!(groups["items"][0]["name"], "Crew");
    assert_eq!(groups["items"][0]["members"], 1);
    let cursor = groups["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = api
        .call(
            Method::GET,
            &format!("/v1/groups?cursor={cursor}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(rest["items"][0]["name"], "Second");
    assert!(rest["next_cursor"].is_null());
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/groups/{group}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, contact) = api
        .call(
            Method::GET,
            &format!("/v1/contacts/{second}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        contact["group_ids"],
        json!([]),
        "the contact stays, outside the group"
    );
    let (_, groups) = api.call(Method::GET, "/v1/groups", Some(&key), None).await;
    assert_eq!(
        groups["items"].as_array().unwrap().len(),
        1,
        "only Second is left"
    );
    assert_eq!(groups["items"][0]["name"], "Second");
}

#[tokio::test]
async fn a_csv_import_of_a_hundred_thousand_rows_reports_each_bad_row() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let group = create_group(&api, &key, "Imported").await;
    let mut csv = String::from("number,memo,name\n");
    for index in 0..100_000 {
        if index % 25_000 == 7 {
            csv.push_str("not-a-number,broken,x\n");
        } else {
            csv.push_str(&format!("010{index:08},row {index},고객{index}\n"));
        }
    }
    assert!(csv.len() > 1 << 20, "larger than the JSON body limit");
    let (status, _, report) = api
        .call_with_headers(
            Method::POST,
            &format!("/v1/contacts/import?group_id={group}"),
            Some(&key),
            &[("content-type", "text/csv")],
            Some(csv),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["rows"], 100_000);
    assert_eq!(report["created"], 99_996);
    assert_eq!(report["failed"], 4);
    let rows: Vec<u64> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [9, 25_009, 50_009, 75_009]);
    let (_, group_info) = api
        .call(
            Method::GET,
            &format!("/v1/groups/{group}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(group_info["members"], 99_996);

    // Importing again updates by number instead of duplicating.
    let (_, _, again) = api
        .call_with_headers(
            Method::POST,
            "/v1/contacts/import",
            Some(&key),
            &[("content-type", "text/csv")],
            Some("number,memo\n010-0000-0001,updated\n".to_owned()),
        )
        .await;
    assert_eq!(
        (again["created"].as_u64(), again["updated"].as_u64()),
        (Some(0), Some(1))
    );
    let (_, found) = api
        .call(Method::GET, "/v1/contacts?q=updated", Some(&key), None)
        .await;
    assert_eq!(found["items"][0]["number"], "01000000001");
    assert_eq!(
        found["items"][0]["fields"]["name"], "고객1",
        "empty cells keep stored fields"
    );

    let (status, _, _) = api
        .call_with_headers(
            Method::POST,
            "/v1/contacts/import",
            Some(&key),
            &[("content-type", "application/json")],
            Some("number\n01011112222\n".to_owned()),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _, body) = api
        .call_with_headers(
            Method::POST,
            "/v1/contacts/import",
            Some(&key),
            &[("content-type", "text/csv")],
            Some("phone\n01011112222\n".to_owned()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}
