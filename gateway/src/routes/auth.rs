//! Signing up, in and out (see [`crate::accounts`]): what the web console calls
//! before it can call the rest of the API with its session cookie.
//!
//! - `POST /v1/auth/signup`: a person and, without an invitation, a new customer
//!   with them as its owner; a code is texted to their phone at once. The answer
//!   sets the session cookie; until the phone is verified the session may only
//!   verify it, ask for another code, read itself and sign out.
//! - `POST /v1/auth/phone-verification` `{code}`, `…/phone-verification-code`.
//! - `POST /v1/auth/signin` `{email, password}`: 401 `wrong_credentials` for an
//!   unknown email or a wrong password alike; 5 attempts a minute per email and 30
//!   per client address, then 429.
//! - `GET /v1/auth/session`: who is signed in, and the CSRF token every change made
//!   with the session must carry in `X-CSRF-Token`.
//! - `POST /v1/auth/signout`.
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::StatusCode;
use axum::response::{AppendHeaders, IntoResponse};
use axum::Json;
use rns_types::account::{normalise_email, Person, Role};
use rns_types::{CustomerId, CustomerProfile, PhoneNumber};
use serde::{Deserialize, Serialize};

use crate::accounts::{hash_password, password_matches, Session, SESSION_COOKIE, SESSION_SECONDS};
use crate::error::ApiError;
use crate::extract::{ApiJson, SignedIn};
use crate::rate_limit::Rate;
use crate::verification_codes::{send_code, CodeCheck, Purpose};
use crate::AppState;

const MIN_PASSWORD_LENGTH: usize = 10;
const MAX_PASSWORD_LENGTH: usize = 128;
const MAX_NAME_LENGTH: usize = 100;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    email: String,
    /// 10 to 128 characters.
    password: String,
    name: String,
    /// A mobile number: a code is texted to it.
    phone: String,
    /// The company: a new customer of this name (needed without an invitation).
    company: Option<String>,
    /// An invitation's token: join its customer in its role instead.
    invitation: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PersonView {
    id: String,
    email: String,
    name: String,
    phone: PhoneNumber,
    phone_verified: bool,
    role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CompanyView {
    id: CustomerId,
    name: String,
}

/// Who is signed in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    person: PersonView,
    customer: CompanyView,
    /// Every change made with this session carries it in `X-CSRF-Token`.
    csrf_token: String,
    /// When the code texted at sign-up expires (only in that answer).
    code_expires_at: Option<String>,
}

async fn session_view(
    state: &AppState,
    person: Person,
    session: &Session,
) -> Result<SessionView, ApiError> {
    let company = state
        .directory()
        .profile_part(&person.customer, |profile| profile.name.clone())
        .await?
        .unwrap_or_default();
    Ok(SessionView {
        customer: CompanyView {
            id: person.customer.clone(),
            name: company,
        },
        person: PersonView {
            id: person.id,
            email: person.email,
            name: person.name,
            phone: person.phone,
            phone_verified: person.phone_verified,
            role: person.role,
        },
        csrf_token: session.csrf_token.clone(),
        code_expires_at: None,
    })
}

fn session_cookie(token: &str) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={SESSION_SECONDS}"
    )
}

fn holder(person: &Person) -> String {
    format!("person:{}", person.id)
}

/// The client's address, when the server knows it (rate limits per address).
fn client_address(extensions: &axum::http::Extensions) -> Option<String> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string())
}

fn checked_password(password: &str, email: &str) -> Result<(), ApiError> {
    let length = password.chars().count();
    if !(MIN_PASSWORD_LENGTH..=MAX_PASSWORD_LENGTH).contains(&length) {
        return Err(ApiError::invalid(
            "weak_password",
            format!("a password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"),
        ));
    }
    let first = password.chars().next();
    if password.to_lowercase() == email
        || password.chars().all(|character| Some(character) == first)
    {
        return Err(ApiError::invalid(
            "weak_password",
            "a password may not be the email or one character repeated",
        ));
    }
    Ok(())
}

fn checked_name(name: &str, what: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LENGTH * 2 {
        return Err(ApiError::invalid(
            "invalid_name",
            format!("{what} must be 1 to {} characters", MAX_NAME_LENGTH * 2),
        ));
    }
    Ok(name.to_owned())
}

#[utoipa::path(
    post,
    path = "/v1/auth/signup",
    tag = "console",
    request_body = SignUp,
    responses(
        (status = 201, description = "Signed up and in (the session cookie is set); a code was texted to the phone", body = SessionView),
        (status = 409, description = "The email has an account", body = crate::error::ErrorBody),
        crate::openapi::Errors,
    ),
)]
pub async fn signup(
    State(state): State<AppState>,
    request_parts: axum::http::request::Parts,
    ApiJson(body): ApiJson<SignUp>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(address) = client_address(&request_parts.extensions) {
        state
            .rate_limits()
            .take(
                &format!("rns:rate:signup:{address}"),
                Rate {
                    per_second: 20.0 / 3_600.0,
                    burst: 20.0,
                },
                "sign-ups from this address",
            )
            .await?;
    }
    let email = normalise_email(&body.email)
        .map_err(|error| ApiError::invalid("invalid_email", error.to_string()))?;
    checked_password(&body.password, &email)?;
    let name = checked_name(&body.name, "a name")?;
    let phone = PhoneNumber::parse_mobile(&body.phone)
        .map_err(|error| ApiError::invalid("invalid_phone", error.to_string()))?;
    let invitation = match &body.invitation {
        Some(token) => {
            let invitation =
                state
                    .accounts()
                    .take_invitation(token)
                    .await?
                    .ok_or(ApiError::invalid(
                        "invalid_invitation",
                        "the invitation is unknown, used or expired; ask for a new one",
                    ))?;
            if invitation.email != email {
                state
                    .accounts()
                    .restore_invitation(token, &invitation)
                    .await;
                return Err(ApiError::invalid(
                    "invalid_invitation",
                    "the invitation was made for another email",
                ));
            }
            Some((token.clone(), invitation))
        }
        None => None,
    };
    let now_ms = rns_types::time::now_milliseconds();
    // A customer of their own is stored only once the person is (which takes the
    // email): a sign-up refused, for a taken email or anything else, leaves none.
    let (customer, role, new_customer) = match &invitation {
        Some((_, invitation)) => (invitation.customer.clone(), invitation.role, None),
        None => {
            let company = checked_name(
                body.company.as_deref().unwrap_or_default(),
                "a company name",
            )?;
            let customer =
                CustomerId::parse(&format!("c{}", hex::encode(rand::random::<[u8; 6]>())))
                    .expect("c and hex digits are a customer id");
            let profile = CustomerProfile::new(customer.clone(), company, now_ms);
            (customer, Role::Owner, Some(profile))
        }
    };
    let person = Person {
        id: format!("p{}", ulid::Ulid::new().to_string().to_lowercase()),
        email,
        name,
        phone,
        phone_verified: false,
        password_hash: hash_password(body.password).await?,
        customer,
        role,
        created_at_ms: now_ms,
    };
    if let Err(error) = state.accounts().create(&person).await {
        if let Some((token, invitation)) = &invitation {
            state.accounts().restore_invitation(token, invitation).await;
        }
        return Err(error);
    }
    if let Some(profile) = &new_customer {
        if let Err(error) = state.directory().create_profile(profile).await {
            // The email is free again, for a sign-up that can finish.
            if let Err(removal) = state.accounts().remove(&person).await {
                tracing::warn!(person = %person.id, error = %removal, "a person without a customer was left");
            }
            return Err(error.into());
        }
    }
    tracing::info!(person = %person.id, customer = %person.customer, role = ?person.role, "person signed up");
    let code_expires_at =
        match send_code(&state, &holder(&person), &person.phone, Purpose::Person).await {
            Ok(expires_ms) => Some(rns_types::time::rfc3339(expires_ms)),
            Err(error) => {
                tracing::warn!(person = %person.id, %error, "no phone code sent at sign-up");
                None
            }
        };
    let (token, session) = state.accounts().start_session(&person.id).await?;
    let mut view = session_view(&state, person, &session).await?;
    view.code_expires_at = code_expires_at;
    Ok((
        StatusCode::CREATED,
        AppendHeaders([(SET_COOKIE, session_cookie(&token))]),
        Json(view),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    email: String,
    password: String,
}

#[utoipa::path(
    post,
    path = "/v1/auth/signin",
    tag = "console",
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in (the session cookie is set)", body = SessionView),
        (status = 401, description = "Unknown email or wrong password (`wrong_credentials`)", body = crate::error::ErrorBody),
        (status = 429, description = "Too many attempts for this email or address", body = crate::error::ErrorBody),
        crate::openapi::Errors,
    ),
)]
pub async fn signin(
    State(state): State<AppState>,
    request_parts: axum::http::request::Parts,
    ApiJson(body): ApiJson<SignIn>,
) -> Result<impl IntoResponse, ApiError> {
    let email = body.email.trim().to_lowercase();
    let per_minute = |count: f64| Rate {
        per_second: count / 60.0,
        burst: count,
    };
    state
        .rate_limits()
        .take(
            &format!("rns:rate:signin:{}", crate::extract::hash_api_key(&email)),
            per_minute(5.0),
            "sign-ins to this account",
        )
        .await?;
    if let Some(address) = client_address(&request_parts.extensions) {
        state
            .rate_limits()
            .take(
                &format!("rns:rate:signin-from:{address}"),
                per_minute(30.0),
                "sign-ins from this address",
            )
            .await?;
    }
    let person = state.accounts().person_by_email(&email).await?;
    let matches = match &person {
        Some(person) => password_matches(body.password, person.password_hash.clone()).await?,
        None => {
            // As long as a wrong password takes: the answer's time tells nothing.
            hash_password(body.password).await?;
            false
        }
    };
    let Some(person) = person.filter(|_| matches) else {
        return Err(ApiError::WrongCredentials);
    };
    let (token, session) = state.accounts().start_session(&person.id).await?;
    tracing::info!(person = %person.id, "person signed in");
    let view = session_view(&state, person, &session).await?;
    Ok((
        AppendHeaders([(SET_COOKIE, session_cookie(&token))]),
        Json(view),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/auth/session",
    tag = "console",
    responses((status = 200, description = "Who is signed in", body = SessionView), crate::openapi::Errors),
    security(("session" = [])),
)]
pub async fn session(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(
        session_view(&state, signed_in.person, &signed_in.session).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/auth/signout",
    tag = "console",
    responses((status = 204, description = "Signed out; the cookie is cleared"), crate::openapi::Errors),
    security(("session" = [])),
)]
pub async fn signout(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<impl IntoResponse, ApiError> {
    state.accounts().end_session(&signed_in.token).await?;
    Ok((
        StatusCode::NO_CONTENT,
        AppendHeaders([(
            SET_COOKIE,
            format!("{SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"),
        )]),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneCode {
    code: String,
}

#[utoipa::path(
    post,
    path = "/v1/auth/phone-verification",
    tag = "console",
    request_body = PhoneCode,
    responses(
        (status = 200, description = "The phone is verified", body = SessionView),
        (status = 422, description = "`wrong_code`, `no_code` or `too_many_attempts`", body = crate::error::ErrorBody),
        crate::openapi::Errors,
    ),
    security(("session" = [])),
)]
pub async fn verify_phone(
    State(state): State<AppState>,
    signed_in: SignedIn,
    ApiJson(body): ApiJson<PhoneCode>,
) -> Result<Json<SessionView>, ApiError> {
    let person = signed_in.person;
    if !person.phone_verified {
        match state
            .codes()
            .check_code(&holder(&person), &person.phone, &body.code)
            .await?
        {
            CodeCheck::Right => {}
            refused => return Err(crate::verification_codes::refusal(refused, &person.phone)),
        }
    }
    let person = state
        .accounts()
        .update(&person.id, |person| {
            person.phone_verified = true;
            Ok(())
        })
        .await?;
    Ok(Json(
        session_view(&state, person, &signed_in.session).await?,
    ))
}

/// When the code just texted expires.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PhoneCodeSent {
    code_expires_at: String,
}

#[utoipa::path(
    post,
    path = "/v1/auth/phone-verification-code",
    tag = "console",
    responses(
        (status = 202, description = "A new code is on its way", body = PhoneCodeSent),
        (status = 409, description = "The phone is verified already", body = crate::error::ErrorBody),
        crate::openapi::Errors,
    ),
    security(("session" = [])),
)]
pub async fn send_phone_code(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<(StatusCode, Json<PhoneCodeSent>), ApiError> {
    let person = signed_in.person;
    if person.phone_verified {
        return Err(ApiError::Conflict(
            "the phone is verified already".to_owned(),
        ));
    }
    let expires_ms = send_code(&state, &holder(&person), &person.phone, Purpose::Person).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(PhoneCodeSent {
            code_expires_at: rns_types::time::rfc3339(expires_ms),
        }),
    ))
}
