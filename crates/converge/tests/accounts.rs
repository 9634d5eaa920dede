//! Accounts over real HTTP: registration with user-interactive auth, login, tokens,
//! devices, passwords, deactivation, profiles and the admin API.

mod common;

use common::{Api, App, TestServer, assert_error, password_auth, user_from};
use converge_service::config::RegistrationMode;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const REGISTER: &str = "/_matrix/client/v3/register";
const WHOAMI: &str = "/_matrix/client/v3/account/whoami";

#[tokio::test]
async fn discovery_endpoints() {
    let t = TestServer::start().await;
    let (status, body) = t.get("/_matrix/client/versions", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["versions"]
            .as_array()
            .unwrap()
            .contains(&json!("v1.1"))
    );
    let (status, body) = t.get("/.well-known/matrix/client", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["m.homeserver"]["base_url"], format!("{}/", t.base));
    let (_, body) = t.get("/_matrix/client/v3/login", None).await;
    assert_eq!(
        body["flows"],
        json!([{ "type": "m.login.password" }, { "type": "m.login.application_service" }])
    );
    let alice = t.register("alice", "pw-alice-1").await;
    let (status, body) = t
        .get("/_matrix/client/v3/capabilities", Some(&alice.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Ruma leaves out capabilities at their default (enabled), as the spec allows.
    assert_ne!(body["capabilities"]["m.change_password"]["enabled"], false);
    assert_ne!(body["capabilities"]["m.set_displayname"]["enabled"], false);
    assert_eq!(body["capabilities"]["m.3pid_changes"]["enabled"], false);
    assert_error(
        &t.get("/_matrix/client/v3/capabilities", None).await,
        401,
        "M_MISSING_TOKEN",
    );
    t.stop().await;
}

#[tokio::test]
async fn open_registration_follows_user_interactive_auth() {
    let t = App::start().await;
    let (status, challenge) = t
        .post(
            REGISTER,
            None,
            json!({ "username": "alice", "password": "pw-alice-1" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge["flows"], json!([{ "stages": ["m.login.dummy"] }]));
    let session = challenge["session"].clone();
    assert!(session.is_string());
    // Nothing was created by the challenge.
    assert_eq!(
        t.get("/_matrix/client/v3/register/available?username=alice", None)
            .await
            .0,
        StatusCode::OK
    );

    let (status, body) = t
        .post(REGISTER, None, json!({
            "username": "alice", "password": "pw-alice-1", "initial_device_display_name": "Phone",
            "auth": { "type": "m.login.dummy", "session": session },
        }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let alice = user_from(&body);
    assert_eq!(alice.user_id, "@alice:localhost");
    assert!(alice.token.len() >= 43, "a token carries 256 bits");
    let (status, body) = t.get(WHOAMI, Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "user_id": "@alice:localhost", "device_id": alice.device_id })
    );
    let (_, device) = t
        .get(
            &format!("/_matrix/client/v3/devices/{}", alice.device_id),
            Some(&alice.token),
        )
        .await;
    assert_eq!(device["display_name"], "Phone");

    // The session is spent, and the name is taken.
    let again = t.post(REGISTER, None, json!({ "username": "bob", "password": "pw-bob-1", "auth": { "type": "m.login.dummy", "session": session } })).await;
    assert_error(&again, 404, "M_NOT_FOUND");
    assert_error(
        &t.get("/_matrix/client/v3/register/available?username=alice", None)
            .await,
        400,
        "M_USER_IN_USE",
    );
    let taken = t
        .post(
            REGISTER,
            None,
            json!({ "username": "alice", "password": "x-1", "auth": { "type": "m.login.dummy" } }),
        )
        .await;
    assert_error(&taken, 400, "M_USER_IN_USE");
    t.stop().await;
}

#[tokio::test]
async fn registration_without_a_name_or_a_login() {
    let t = App::start().await;
    let (status, body) = t
        .post(
            REGISTER,
            None,
            json!({ "password": "pw-1", "auth": { "type": "m.login.dummy" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["user_id"].as_str().unwrap().ends_with(":localhost"));
    let (status, body) = t
        .post(REGISTER, None, json!({ "username": "quiet", "password": "pw-1", "inhibit_login": true, "auth": { "type": "m.login.dummy" } }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user_id"], "@quiet:localhost");
    assert!(body.get("access_token").is_none());
    assert_eq!(t.login("quiet", "pw-1").await.0, StatusCode::OK);
    assert_error(
        &t.post(
            REGISTER,
            None,
            json!({ "username": "nopw", "auth": { "type": "m.login.dummy" } }),
        )
        .await,
        400,
        "M_MISSING_PARAM",
    );
    assert_error(
        &t.post("/_matrix/client/v3/register?kind=guest", None, json!({}))
            .await,
        403,
        "M_GUEST_ACCESS_FORBIDDEN",
    );
    t.stop().await;
}

#[tokio::test]
async fn token_registration_uses_tokens_up() {
    let t = TestServer::start_with(|c| c.registration.mode = RegistrationMode::Token).await;
    let token = t
        .server
        .state
        .services
        .registration
        .create_token(Some(1), None)
        .await
        .unwrap()
        .token;
    let validity = |tok: &str| {
        format!("/_matrix/client/v1/register/m.login.registration_token/validity?token={tok}")
    };
    assert_eq!(t.get(&validity(&token), None).await.1["valid"], true);
    assert_eq!(t.get(&validity("bogus"), None).await.1["valid"], false);

    // An `auth` object that attempts no stage is answered with the flows.
    let (status, challenge) = t
        .post(
            REGISTER,
            None,
            json!({ "username": "alice", "password": "pw-1", "auth": {} }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{challenge}");
    assert_eq!(
        challenge["flows"],
        json!([{ "stages": ["m.login.registration_token", "m.login.dummy"] }])
    );
    let session = &challenge["session"];
    let attempt = |auth: Value| {
        t.post(
            REGISTER,
            None,
            json!({ "username": "alice", "password": "pw-1", "auth": auth }),
        )
    };
    // A wrong token is refused within the session.
    let (status, body) = attempt(
        json!({ "type": "m.login.registration_token", "token": "bogus", "session": session }),
    )
    .await;
    assert_eq!(
        (status, &body["errcode"]),
        (StatusCode::UNAUTHORIZED, &json!("M_FORBIDDEN"))
    );
    assert_eq!(body["session"], *session);
    // The right token completes the first stage; the dummy stage finishes the flow.
    let (status, body) = attempt(
        json!({ "type": "m.login.registration_token", "token": token, "session": session }),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["completed"], json!(["m.login.registration_token"]));
    assert_eq!(
        t.get(&validity(&token), None).await.1["valid"],
        true,
        "not used up before the account exists"
    );
    let (status, body) = attempt(json!({ "type": "m.login.dummy", "session": session })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "@alice:localhost");
    // Used up.
    assert_eq!(t.get(&validity(&token), None).await.1["valid"], false);
    let (status, body) = t
        .post(REGISTER, None, json!({ "username": "bob", "password": "pw-1", "auth": { "type": "m.login.registration_token", "token": token } }))
        .await;
    assert_eq!(
        (status, &body["errcode"]),
        (StatusCode::UNAUTHORIZED, &json!("M_FORBIDDEN"))
    );
    // Skipping the token stage does not register either.
    let (status, body) = t
        .post(
            REGISTER,
            None,
            json!({ "username": "bob", "password": "pw-1", "auth": { "type": "m.login.dummy" } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        t.get("/_matrix/client/v3/register/available?username=bob", None)
            .await
            .0,
        StatusCode::OK
    );
    t.stop().await;
}

#[tokio::test]
async fn closed_registration_is_forbidden() {
    let t = TestServer::start_with(|c| c.registration.mode = RegistrationMode::Closed).await;
    let result = t
        .post(
            REGISTER,
            None,
            json!({ "username": "alice", "password": "pw-1", "auth": { "type": "m.login.dummy" } }),
        )
        .await;
    assert_error(&result, 403, "M_FORBIDDEN");
    // Admins can still add users.
    t.server
        .state
        .services
        .registration
        .create_user("alice", "pw-1".into(), false)
        .await
        .unwrap();
    assert_eq!(t.login("alice", "pw-1").await.0, StatusCode::OK);
    t.stop().await;
}

#[tokio::test]
async fn concurrent_registration_of_one_name_has_one_winner() {
    let t = App::start().await;
    let attempts = (0..8).map(|_| {
        t.post(REGISTER, None, json!({ "username": "popular", "password": "pw-1", "auth": { "type": "m.login.dummy" } }))
    });
    let results = futures_util::future::join_all(attempts).await;
    let wins = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(wins, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(
            (status.as_u16(), &body["errcode"]),
            (400, &json!("M_USER_IN_USE"))
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn login_variants_and_failures() {
    let t = App::start().await;
    t.register("alice", "pw-alice-1").await;
    for name in ["alice", "Alice", "@alice:localhost"] {
        let (status, body) = t.login(name, "pw-alice-1").await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert_eq!(body["user_id"], "@alice:localhost");
    }
    // The deprecated top-level `user` field.
    let (status, _) = t
        .post(
            "/_matrix/client/v3/login",
            None,
            json!({ "type": "m.login.password", "user": "alice", "password": "pw-alice-1" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A chosen device ID is kept, and logging in on it again replaces its token.
    let login_on =
        |device: &str| {
            t.post("/_matrix/client/v3/login", None, json!({
            "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" },
            "password": "pw-alice-1", "device_id": device,
        }))
        };
    let (_, first) = login_on("MYDEVICE").await;
    assert_eq!(first["device_id"], "MYDEVICE");
    let (_, second) = login_on("MYDEVICE").await;
    assert_error(
        &t.get(WHOAMI, first["access_token"].as_str()).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_eq!(
        t.get(WHOAMI, second["access_token"].as_str()).await.1["device_id"],
        "MYDEVICE"
    );
    assert_error(&login_on(&"D".repeat(300)).await, 400, "M_INVALID_PARAM");

    assert_error(&t.login("alice", "wrong").await, 403, "M_FORBIDDEN");
    assert_error(&t.login("nobody", "pw-alice-1").await, 403, "M_FORBIDDEN");
    assert_error(
        &t.login("@alice:elsewhere.org", "pw-alice-1").await,
        403,
        "M_FORBIDDEN",
    );
    let third_party = t.post("/_matrix/client/v3/login", None, json!({
        "type": "m.login.password", "identifier": { "type": "m.id.thirdparty", "medium": "email", "address": "a@b.c" }, "password": "x",
    })).await;
    assert_error(&third_party, 403, "M_FORBIDDEN");
    t.stop().await;
}

#[tokio::test]
async fn logout_ends_sessions() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let (_, second) = t.login("alice", "pw-alice-1").await;
    let (_, third) = t.login("alice", "pw-alice-1").await;
    let (status, _) = t
        .post("/_matrix/client/v3/logout", Some(&alice.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    // A token reused after logout is unknown, and its device is gone.
    assert_error(
        &t.get(WHOAMI, Some(&alice.token)).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    let (_, devices) = t
        .get(
            "/_matrix/client/v3/devices",
            second["access_token"].as_str(),
        )
        .await;
    assert_eq!(devices["devices"].as_array().unwrap().len(), 2);
    assert_error(
        &t.post("/_matrix/client/v3/logout", Some(&alice.token), json!({}))
            .await,
        401,
        "M_UNKNOWN_TOKEN",
    );

    let (status, _) = t
        .post(
            "/_matrix/client/v3/logout/all",
            second["access_token"].as_str(),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &t.get(WHOAMI, second["access_token"].as_str()).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(
        &t.get(WHOAMI, third["access_token"].as_str()).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    t.stop().await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_access_tokens_expire() {
    let t =
        App::start_with(|c| c.auth.refreshable_token_lifetime = std::time::Duration::from_secs(1))
            .await;
    t.register("alice", "pw-alice-1").await;
    let (status, login) = t
        .post(
            "/_matrix/client/v3/login",
            None,
            json!({
                "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" },
                "password": "pw-alice-1", "refresh_token": true,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(login["expires_in_ms"], 1000);
    let access = login["access_token"].as_str().unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();
    assert_eq!(t.get(WHOAMI, Some(access)).await.0, StatusCode::OK);

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let expired = t.get(WHOAMI, Some(access)).await;
    assert_error(&expired, 401, "M_UNKNOWN_TOKEN");
    assert_eq!(expired.1["soft_logout"], true);

    let (status, refreshed) = t
        .post(
            "/_matrix/client/v3/refresh",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(refreshed["expires_in_ms"], 1000);
    let (_, me) = t.get(WHOAMI, refreshed["access_token"].as_str()).await;
    assert_eq!(me["device_id"], login["device_id"]);
    let reused = t
        .post(
            "/_matrix/client/v3/refresh",
            None,
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_error(&reused, 401, "M_UNKNOWN_TOKEN");
    t.stop().await;
}

/// Runs a UIA-protected request: first without auth (expecting the password flow), then
/// with `password`. Returns the final answer.
async fn with_password_uia(
    t: &impl Api,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
    user: &str,
    password: &str,
) -> (StatusCode, Value) {
    let (status, challenge) = t
        .call(method.clone(), path, Some(token), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{challenge}");
    assert_eq!(
        challenge["flows"],
        json!([{ "stages": ["m.login.password"] }])
    );
    let mut body = body;
    body["auth"] = password_auth(user, password, &challenge["session"]);
    t.call(method, path, Some(token), Some(body)).await
}

#[tokio::test]
async fn devices_are_listed_renamed_and_deleted() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let (_, other) = t.login("alice", "pw-alice-1").await;
    let other_id = other["device_id"].as_str().unwrap();

    let (_, list) = t
        .get("/_matrix/client/v3/devices", Some(&alice.token))
        .await;
    let mut ids: Vec<_> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut want = vec![alice.device_id.clone(), other_id.to_owned()];
    want.sort();
    assert_eq!(ids, want);
    assert!(list["devices"][0]["last_seen_ts"].is_u64());

    let path = format!("/_matrix/client/v3/devices/{other_id}");
    assert_eq!(
        t.put(
            &path,
            Some(&alice.token),
            json!({ "display_name": "Tablet" })
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        t.get(&path, Some(&alice.token)).await.1["display_name"],
        "Tablet"
    );
    assert_error(
        &t.get("/_matrix/client/v3/devices/NOPE", Some(&alice.token))
            .await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &t.put(
            "/_matrix/client/v3/devices/NOPE",
            Some(&alice.token),
            json!({ "display_name": "x" }),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        &t.call(
            Method::DELETE,
            "/_matrix/client/v3/devices/NOPE",
            Some(&alice.token),
            Some(json!({})),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );

    // A wrong password is answered within the UIA session; the device survives.
    let (status, challenge) = t
        .call(Method::DELETE, &path, Some(&alice.token), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let wrong = json!({ "auth": password_auth("alice", "wrong", &challenge["session"]) });
    let (status, body) = t
        .call(Method::DELETE, &path, Some(&alice.token), Some(wrong))
        .await;
    assert_eq!(
        (status, &body["errcode"]),
        (StatusCode::UNAUTHORIZED, &json!("M_FORBIDDEN"))
    );
    assert_eq!(
        t.get(WHOAMI, other["access_token"].as_str()).await.0,
        StatusCode::OK
    );
    // Another user's password does not count either.
    t.register("mallory", "pw-mallory-1").await;
    let (status, _) = with_password_uia(
        &t,
        Method::DELETE,
        &path,
        &alice.token,
        json!({}),
        "mallory",
        "pw-mallory-1",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = with_password_uia(
        &t,
        Method::DELETE,
        &path,
        &alice.token,
        json!({}),
        "alice",
        "pw-alice-1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        &t.get(WHOAMI, other["access_token"].as_str()).await,
        401,
        "M_UNKNOWN_TOKEN",
    );

    let (_, third) = t.login("alice", "pw-alice-1").await;
    let body = json!({ "devices": [third["device_id"], "MISSING"] });
    let (status, _) = with_password_uia(
        &t,
        Method::POST,
        "/_matrix/client/v3/delete_devices",
        &alice.token,
        body,
        "alice",
        "pw-alice-1",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &t.get(WHOAMI, third["access_token"].as_str()).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_eq!(t.get(WHOAMI, Some(&alice.token)).await.0, StatusCode::OK);
    t.stop().await;
}

#[tokio::test]
async fn password_change_logs_out_other_devices() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let (_, other) = t.login("alice", "pw-alice-1").await;
    let path = "/_matrix/client/v3/account/password";
    let (status, body) = with_password_uia(
        &t,
        Method::POST,
        path,
        &alice.token,
        json!({ "new_password": "pw-alice-2" }),
        "alice",
        "pw-alice-1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(t.get(WHOAMI, Some(&alice.token)).await.0, StatusCode::OK);
    assert_error(
        &t.get(WHOAMI, other["access_token"].as_str()).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(&t.login("alice", "pw-alice-1").await, 403, "M_FORBIDDEN");
    let (_, kept) = t.login("alice", "pw-alice-2").await;
    // With logout_devices false, other sessions survive.
    let body = json!({ "new_password": "pw-alice-3", "logout_devices": false });
    let (status, _) = with_password_uia(
        &t,
        Method::POST,
        path,
        &alice.token,
        body,
        "alice",
        "pw-alice-2",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        t.get(WHOAMI, kept["access_token"].as_str()).await.0,
        StatusCode::OK
    );
    // A bad new password is refused before any password is asked for.
    assert_error(
        &t.post(path, Some(&alice.token), json!({ "new_password": "" }))
            .await,
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        &t.post(
            path,
            Some(&alice.token),
            json!({ "new_password": "x".repeat(2000) }),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    t.stop().await;
}

#[tokio::test]
async fn deactivated_accounts_cannot_log_in() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let (_, other) = t.login("alice", "pw-alice-1").await;
    let (status, body) = with_password_uia(
        &t,
        Method::POST,
        "/_matrix/client/v3/account/deactivate",
        &alice.token,
        json!({}),
        "alice",
        "pw-alice-1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id_server_unbind_result"], "no-support");
    assert_error(
        &t.get(WHOAMI, Some(&alice.token)).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(
        &t.get(WHOAMI, other["access_token"].as_str()).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(
        &t.login("alice", "pw-alice-1").await,
        403,
        "M_USER_DEACTIVATED",
    );
    assert_error(&t.login("alice", "wrong").await, 403, "M_FORBIDDEN");
    let again = t
        .post(
            REGISTER,
            None,
            json!({ "username": "alice", "password": "pw-1", "auth": { "type": "m.login.dummy" } }),
        )
        .await;
    assert_error(&again, 400, "M_USER_IN_USE");
    t.stop().await;
}

#[tokio::test]
async fn profiles_belong_to_their_owner() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let name = "/_matrix/client/v3/profile/@alice:localhost/displayname";
    let avatar = "/_matrix/client/v3/profile/@alice:localhost/avatar_url";
    assert_eq!(t.get(name, None).await.1["displayname"], "alice");
    assert_eq!(
        t.put(
            name,
            Some(&alice.token),
            json!({ "displayname": "Alice A." })
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        t.put(
            avatar,
            Some(&alice.token),
            json!({ "avatar_url": "mxc://localhost/abc123" })
        )
        .await
        .0,
        StatusCode::OK
    );
    let (_, profile) = t
        .get("/_matrix/client/v3/profile/@alice:localhost", None)
        .await;
    assert_eq!(
        profile,
        json!({ "displayname": "Alice A.", "avatar_url": "mxc://localhost/abc123" })
    );
    assert_eq!(
        t.get(avatar, None).await.1["avatar_url"],
        "mxc://localhost/abc123"
    );

    assert_error(
        &t.put(name, Some(&bob.token), json!({ "displayname": "Hacked" }))
            .await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &t.put(
            avatar,
            Some(&bob.token),
            json!({ "avatar_url": "mxc://x/y" }),
        )
        .await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &t.put(name, None, json!({ "displayname": "Anon" })).await,
        401,
        "M_MISSING_TOKEN",
    );
    assert_error(
        &t.put(
            avatar,
            Some(&alice.token),
            json!({ "avatar_url": "https://evil.example/x.png" }),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        &t.put(
            name,
            Some(&alice.token),
            json!({ "displayname": "x".repeat(300) }),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    assert_eq!(t.get(name, None).await.1["displayname"], "Alice A.");
    // Clearing.
    assert_eq!(
        t.put(avatar, Some(&alice.token), json!({ "avatar_url": "" }))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        t.get("/_matrix/client/v3/profile/@alice:localhost", None)
            .await
            .1,
        json!({ "displayname": "Alice A." })
    );
    t.stop().await;
}

#[tokio::test]
async fn admin_api_makes_registration_tokens() {
    let t = TestServer::start_with(|c| c.registration.mode = RegistrationMode::Token).await;
    t.server
        .state
        .services
        .registration
        .create_user("root", "pw-root-1".into(), true)
        .await
        .unwrap();
    t.server
        .state
        .services
        .registration
        .create_user("alice", "pw-alice-1".into(), false)
        .await
        .unwrap();
    let (_, root) = t.login("root", "pw-root-1").await;
    let (_, alice) = t.login("alice", "pw-alice-1").await;
    let path = "/_converge/admin/v1/registration_tokens";
    assert_error(
        &t.post(path, alice["access_token"].as_str(), json!({}))
            .await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(&t.post(path, None, json!({})).await, 401, "M_MISSING_TOKEN");
    let (status, token) = t
        .post(
            path,
            root["access_token"].as_str(),
            json!({ "uses_allowed": 2, "expires_in": "1d" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["uses_allowed"], 2);
    assert!(token["expiry_time"].as_i64().unwrap() > 0);
    let value = token["token"].as_str().unwrap();
    let (_, body) = t
        .post(REGISTER, None, json!({ "username": "carol", "password": "pw-1", "auth": { "type": "m.login.registration_token", "token": value } }))
        .await;
    let (status, _) = t
        .post(REGISTER, None, json!({ "username": "carol", "password": "pw-1", "auth": { "type": "m.login.dummy", "session": body["session"] } }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, info) = t
        .get(&format!("{path}/{value}"), root["access_token"].as_str())
        .await;
    assert_eq!(info["completed"], 1);
    assert_error(
        &t.get(&format!("{path}/nope"), root["access_token"].as_str())
            .await,
        404,
        "M_NOT_FOUND",
    );
    t.stop().await;
}

#[tokio::test]
async fn health_and_metrics() {
    let t = TestServer::start_with(|c| {
        c.metrics.enabled = true;
        c.metrics.listen = "127.0.0.1:0".parse().unwrap();
    })
    .await;
    let (status, health) = t.get("/_converge/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    t.register("alice", "pw-alice-1").await;
    t.login("alice", "wrong").await;
    let metrics_addr = t.server.metrics_addr.expect("metrics listener");
    let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#"converge_http_requests_total{method="POST",route="/_matrix/client/v3/register",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"converge_http_requests_total{method="POST",route="/_matrix/client/v3/login",status="403"} 1"#), "{text}");
    assert!(text.contains("converge_http_request_duration_seconds_bucket"));
    // Metrics are not on the client listener (whose `/metrics` is just a page of the web app).
    let page = reqwest::get(format!("{}/metrics", t.base)).await.unwrap();
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        !page
            .text()
            .await
            .unwrap()
            .contains("converge_http_requests_total")
    );
    t.stop().await;
}
