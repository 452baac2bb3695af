//! People of the web console: signing up (a customer of their own, or an invited
//! one), proving their phone by a texted code, sessions in a cookie with a CSRF
//! token on every change, signing in with wrong passwords refused alike and rate
//! limited, and what a member may not do.
mod common;

use axum::http::{Method, StatusCode};
use common::{error_code, Api, ADMIN_KEY};
use serde_json::{json, Value};

/// A browser's view of one person: their session cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

impl Browser {
    async fn call(
        &self,
        api: &Api,
        method: Method,
        uri: &str,
        body: Option<Value>,
        with_csrf: bool,
    ) -> (StatusCode, Value) {
        let mut headers = vec![("cookie", self.cookie.as_str())];
        if with_csrf {
            headers.push(("x-csrf-token", self.csrf.as_str()));
        }
        let (status, _, reply) = api
            .call_with_headers(
                method,
                uri,
                None,
                &headers,
                body.map(|body| body.to_string()),
            )
            .await;
        (status, reply)
    }
}

/// Signs up or in at `uri`; returns the status, the browser (if a cookie was set)
/// and the answer.
async fn enter(api: &Api, uri: &str, body: Value) -> (StatusCode, Option<Browser>, Value) {
    let (status, headers, reply) = api
        .call_with_headers(Method::POST, uri, None, &[], Some(body.to_string()))
        .await;
    let browser = headers.get("set-cookie").map(|set| {
        let set = set.to_str().unwrap();
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attribute), "{set} lacks {attribute}");
        }
        Browser {
            cookie: set.split(';').next().unwrap().to_owned(),
            csrf: reply["csrf_token"].as_str().unwrap_or_default().to_owned(),
        }
    });
    (status, browser, reply)
}

fn signup(email: &str, phone: &str) -> Value {
    json!({"email": email, "password": "correct horse battery", "name": "김민수",
           "phone": phone, "company": "민수 마트"})
}

/// The code in the last text queued for `number`.
async fn texted_code(api: &Api, number: &str) -> String {
    let text = api
        .queued_sends()
        .await
        .into_iter()
        .filter(|request| request.customer_id.as_str() == "rns")
        .rfind(|request| request.recipients[0].to.as_str() == number)
        .expect("a code was texted")
        .text;
    assert!(text.contains("휴대폰"), "{text}");
    text.split(|character: char| !character.is_ascii_digit())
        .find(|word| word.len() == 6)
        .unwrap()
        .to_owned()
}

/// Signs `email` up with `phone` and verifies the phone.
async fn verified_person(
    api: &Api,
    email: &str,
    phone: &str,
    invitation: Option<&str>,
) -> (Browser, Value) {
    let mut body = signup(email, phone);
    if let Some(token) = invitation {
        body["invitation"] = json!(token);
        body.as_object_mut().unwrap().remove("company");
    }
    let (status, browser, reply) = enter(api, "/v1/auth/signup", body).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let browser = browser.expect("signed in");
    let code = texted_code(api, &phone.replace('-', "")).await;
    let (status, verified) = browser
        .call(
            api,
            Method::POST,
            "/v1/auth/phone-verification",
            Some(json!({ "code": code })),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    (browser, verified)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_up_proves_their_phone_and_uses_the_api_with_the_session() {
    let api = Api::start().await;
    let (status, browser, me) = enter(
        &api,
        "/v1/auth/signup",
        signup("Kim@Example.com", "010-7777-1234"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{me}");
    let browser = browser.expect("the session cookie is set");
    assert_eq!(me["person"]["email"], json!("kim@example.com"));
    assert_eq!(me["person"]["role"], json!("owner"));
    assert_eq!(me["person"]["phone_verified"], json!(false));
    assert_eq!(me["customer"]["name"], json!("민수 마트"));
    assert!(me["code_expires_at"].is_string(), "{me}");
    assert!(
        !me.to_string().contains("argon2"),
        "no hash in the answer: {me}"
    );

    // Until the phone is proved, the session reaches nothing else.
    let (status, reply) = browser
        .call(&api, Method::GET, "/v1/points", None, false)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    let code = texted_code(&api, "01077771234").await;
    let (status, _) = browser
        .call(
            &api,
            Method::POST,
            "/v1/auth/phone-verification",
            Some(json!({"code": code})),
            false,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a change without the CSRF token"
    );
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, reply) = browser
        .call(
            &api,
            Method::POST,
            "/v1/auth/phone-verification",
            Some(json!({"code": wrong})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&reply), "wrong_code");
    let (status, me) = browser
        .call(
            &api,
            Method::POST,
            "/v1/auth/phone-verification",
            Some(json!({"code": code})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["person"]["phone_verified"], json!(true));

    // The session is the customer's key now: reads without, changes with the token.
    let (status, points) = browser
        .call(&api, Method::GET, "/v1/points", None, false)
        .await;
    assert_eq!(status, StatusCode::OK, "{points}");
    let contact = json!({"number": "01011112222"});
    let (status, _) = browser
        .call(
            &api,
            Method::POST,
            "/v1/contacts",
            Some(contact.clone()),
            false,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, reply) = browser
        .call(&api, Method::POST, "/v1/contacts", Some(contact), true)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    // What the person changed is in the audit log under their name.
    let (status, _) = browser
        .call(
            &api,
            Method::PUT,
            "/v1/routing/sms",
            Some(json!({"weights": {"kt": 1, "skt": 1, "lgu": 1}})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let customer = me["customer"]["id"].as_str().unwrap();
    let (_, audit) = api
        .call(
            Method::GET,
            &format!("/v1/admin/audit?customer={customer}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(
        audit["items"][0]["actor"],
        json!({"kind": "person", "person_id": me["person"]["id"]}),
        "{audit}"
    );

    let (status, _, reply) = enter(
        &api,
        "/v1/auth/signup",
        signup("kim@example.com", "010-7777-9999"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    // The refused sign-up left no customer behind: still one with the company's name.
    let (status, customers) = api
        .call(
            Method::GET,
            "/v1/admin/customers?q=%EB%AF%BC%EC%88%98%20%EB%A7%88%ED%8A%B8",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{customers}");
    assert_eq!(
        customers["items"].as_array().map(Vec::len),
        Some(1),
        "{customers}"
    );

    let (status, _) = browser
        .call(&api, Method::POST, "/v1/auth/signout", None, true)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = browser
        .call(&api, Method::GET, "/v1/auth/session", None, false)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_refuses_a_wrong_password_and_an_unknown_email_alike_and_is_rate_limited() {
    let api = Api::start().await;
    for (body, code) in [
        (
            json!({"email": "kim@example.com", "password": "short", "name": "김", "phone": "010-7777-1234", "company": "x"}),
            "weak_password",
        ),
        (
            json!({"email": "kim", "password": "correct horse battery", "name": "김", "phone": "010-7777-1234", "company": "x"}),
            "invalid_email",
        ),
        (
            json!({"email": "kim@example.com", "password": "correct horse battery", "name": "김", "phone": "02-1234-5678", "company": "x"}),
            "invalid_phone",
        ),
        (
            json!({"email": "kim@example.com", "password": "correct horse battery", "name": "김", "phone": "010-7777-1234"}),
            "invalid_name",
        ),
    ] {
        let (status, browser, reply) = enter(&api, "/v1/auth/signup", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
        assert_eq!(error_code(&reply), code);
        assert!(browser.is_none(), "no session for a refused sign-up");
    }
    let (status, _, _) = enter(
        &api,
        "/v1/auth/signup",
        signup("kim@example.com", "010-7777-1234"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, _, wrong) = enter(
        &api,
        "/v1/auth/signin",
        json!({"email": "kim@example.com", "password": "wrong horse battery"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, unknown) = enter(
        &api,
        "/v1/auth/signin",
        json!({"email": "lee@example.com", "password": "wrong horse battery"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown, "which of the two was wrong is not told");
    assert_eq!(error_code(&wrong), "wrong_credentials");
    let (status, browser, me) = enter(
        &api,
        "/v1/auth/signin",
        json!({"email": " KIM@example.com", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert!(browser.is_some());
    // Five attempts a minute for one account: the sixth is refused, right or wrong.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, _, _) = enter(
            &api,
            "/v1/auth/signin",
            json!({"email": "kim@example.com", "password": "wrong horse battery"}),
        )
        .await;
        statuses.push(status);
    }
    let (status, _, limited) = enter(
        &api,
        "/v1/auth/signin",
        json!({"email": "kim@example.com", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(
        statuses,
        [StatusCode::UNAUTHORIZED; 3]
            .iter()
            .copied()
            .chain([StatusCode::TOO_MANY_REQUESTS])
            .collect::<Vec<_>>()
    );
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{limited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_invites_a_member_who_may_not_manage_keys_or_people() {
    let api = Api::start().await;
    let (owner, me) = verified_person(&api, "owner@example.com", "010-7777-0001", None).await;
    let customer = me["customer"]["id"].as_str().unwrap().to_owned();
    let (status, invitation) = owner
        .call(
            &api,
            Method::POST,
            "/v1/members/invitations",
            Some(json!({"email": "Member@example.com", "role": "member"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invitation}");
    let token = invitation["token"].as_str().unwrap().to_owned();

    // Only for the email it names, and once.
    let mut elsewhere = signup("stranger@example.com", "010-7777-0003");
    elsewhere["invitation"] = json!(token);
    let (status, _, reply) = enter(&api, "/v1/auth/signup", elsewhere).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    let (member, joined) =
        verified_person(&api, "member@example.com", "010-7777-0002", Some(&token)).await;
    assert_eq!(joined["customer"]["id"], json!(customer));
    assert_eq!(joined["person"]["role"], json!("member"));
    let mut again = signup("member2@example.com", "010-7777-0004");
    again["invitation"] = json!(token);
    let (status, _, _) = enter(&api, "/v1/auth/signup", again).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an invitation is used once"
    );

    // A member works with the customer's data, not its keys or people.
    let (status, _) = member
        .call(
            &api,
            Method::POST,
            "/v1/contacts",
            Some(json!({"number": "01011112222"})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, reply) = member
        .call(
            &api,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "mine", "scopes": ["read"]})),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    let owner_id = me["person"]["id"].as_str().unwrap();
    let (status, _) = member
        .call(
            &api,
            Method::DELETE,
            &format!("/v1/members/{owner_id}"),
            None,
            true,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, people) = owner
        .call(&api, Method::GET, "/v1/members", None, false)
        .await;
    assert_eq!(people["items"].as_array().unwrap().len(), 2, "{people}");
    let (status, _) = owner
        .call(
            &api,
            Method::DELETE,
            &format!("/v1/members/{owner_id}"),
            None,
            true,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "nobody removes themselves");
    let member_id = joined["person"]["id"].as_str().unwrap();
    let (status, _) = owner
        .call(
            &api,
            Method::DELETE,
            &format!("/v1/members/{member_id}"),
            None,
            true,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = member
        .call(&api, Method::GET, "/v1/auth/session", None, false)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a removed person's session ends"
    );
    // Another customer's key finds nobody of this customer.
    let rival = api.customer("rival").await;
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/members/{owner_id}"),
            Some(&rival),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
