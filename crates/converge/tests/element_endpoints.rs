//! The endpoints Element calls beyond chatting, driven in-process through the router: TURN
//! credentials, third-party networks and identifiers, OpenID, reports, room upgrades,
//! restricted joins, the space hierarchy, jumping to a date, and the thread list. Each
//! endpoint's happy path and its refusals.

mod common;

use std::time::Duration;

use base64::Engine;
use common::{Api, App, V3, assert_error, enc};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn turn_server_is_empty_without_configuration() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let (status, body) = t
        .get(&format!("{V3}/voip/turnServer"), Some(&alice.token))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_error(
        &t.get(&format!("{V3}/voip/turnServer"), None).await,
        401,
        "M_MISSING_TOKEN",
    );
    t.stop().await;
}

#[tokio::test]
async fn turn_server_hands_out_rest_api_credentials() {
    let t = App::start_with(|c| {
        c.calls.turn.external_uris = vec![
            "turn:turn.example.org:3478?transport=udp".into(),
            "turns:turn.example.org:5349?transport=tcp".into(),
        ];
        c.calls.turn.shared_secret = "shared-with-coturn".into();
        c.calls.turn.ttl = Duration::from_secs(7200);
    })
    .await;
    let alice = t.register("alice", "password-alice").await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (status, body) = t
        .get(&format!("{V3}/voip/turnServer"), Some(&alice.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ttl"], 7200);
    assert_eq!(body["uris"].as_array().unwrap().len(), 2);
    let username = body["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, alice.user_id);
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (before + 7200..=before + 7202).contains(&expiry),
        "{expiry}"
    );
    // The TURN server derives the same password from the shared secret.
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"shared-with-coturn").unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(body["password"], expected);
    t.stop().await;
}

#[tokio::test]
async fn third_party_networks_know_no_protocol() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let token = Some(alice.token.as_str());
    let (status, body) = t.get(&format!("{V3}/thirdparty/protocols"), token).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    for path in [
        "/thirdparty/protocol/irc",
        "/thirdparty/location/irc",
        "/thirdparty/user/irc",
        "/thirdparty/location?alias=%23room%3Alocalhost",
        "/thirdparty/user?userid=%40alice%3Alocalhost",
    ] {
        assert_error(
            &t.get(&format!("{V3}{path}"), token).await,
            404,
            "M_NOT_FOUND",
        );
        assert_error(
            &t.get(&format!("{V3}{path}"), None).await,
            401,
            "M_MISSING_TOKEN",
        );
    }
    // The lookups by alias and user ID need their query parameter.
    assert_error(
        &t.get(&format!("{V3}/thirdparty/location"), token).await,
        400,
        "M_INVALID_PARAM",
    );
    t.stop().await;
}

#[tokio::test]
async fn third_party_identifiers_are_listed_empty_and_refused() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let token = Some(alice.token.as_str());
    let (status, body) = t.get(&format!("{V3}/account/3pid"), token).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "threepids": [] })));
    assert_error(
        &t.get(&format!("{V3}/account/3pid"), None).await,
        401,
        "M_MISSING_TOKEN",
    );
    let request = json!({ "client_secret": "secret", "email": "a@example.org", "send_attempt": 1 });
    assert_error(
        &t.post(
            &format!("{V3}/account/3pid/email/requestToken"),
            None,
            request,
        )
        .await,
        403,
        "M_THREEPID_DENIED",
    );
    assert_error(
        &t.post(
            &format!("{V3}/account/3pid/msisdn/requestToken"),
            None,
            json!({ "client_secret": "secret", "country": "GB", "phone_number": "07700900001", "send_attempt": 1 }),
        )
        .await,
        403,
        "M_THREEPID_DENIED",
    );
    let session = json!({ "client_secret": "secret", "sid": "session1" });
    assert_error(
        &t.post(&format!("{V3}/account/3pid/add"), token, session.clone())
            .await,
        403,
        "M_THREEPID_AUTH_FAILED",
    );
    assert_error(
        &t.post(&format!("{V3}/account/3pid/add"), token, json!({}))
            .await,
        400,
        "M_BAD_JSON",
    );
    assert_error(
        &t.post(
            &format!("{V3}/account/3pid/bind"),
            token,
            json!({ "client_secret": "secret", "sid": "session1", "id_server": "id.example.org", "id_access_token": "x" }),
        )
        .await,
        400,
        "M_SERVER_NOT_TRUSTED",
    );
    for action in ["delete", "unbind"] {
        let (status, body) = t
            .post(
                &format!("{V3}/account/3pid/{action}"),
                token,
                json!({ "medium": "email", "address": "a@example.org" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
        assert_eq!(body, json!({ "id_server_unbind_result": "no-support" }));
        assert_error(
            &t.post(&format!("{V3}/account/3pid/{action}"), None, json!({}))
                .await,
            401,
            "M_MISSING_TOKEN",
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn openid_tokens_identify_their_user_to_third_parties() {
    let t = App::start().await;
    let alice = t.register("alice", "password-alice").await;
    let bob = t.register("bob", "password-bob").await;
    let path = format!("{V3}/user/{}/openid/request_token", enc(&alice.user_id));
    let (status, body) = t.post(&path, Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["matrix_server_name"], "localhost");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap().to_owned();

    let userinfo = |token: &str| {
        format!(
            "/_matrix/federation/v1/openid/userinfo?access_token={}",
            enc(token)
        )
    };
    let (status, body) = t.get(&userinfo(&token), None).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "sub": alice.user_id }))
    );
    // The access token itself is not an OpenID token.
    assert_error(
        &t.get(&userinfo(&alice.token), None).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(
        &t.get(&userinfo("nonsense"), None).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(
        &t.get("/_matrix/federation/v1/openid/userinfo", None).await,
        400,
        "M_MISSING_PARAM",
    );
    // Only for yourself, and only signed in.
    assert_error(
        &t.post(&path, Some(&bob.token), json!({})).await,
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        &t.post(&path, None, json!({})).await,
        401,
        "M_MISSING_TOKEN",
    );

    // A deactivated user's tokens identify nobody.
    let deactivate = format!("{V3}/account/deactivate");
    let (status, body) = t.post(&deactivate, Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let auth = common::password_auth("alice", "password-alice", &body["session"]);
    let (status, body) = t
        .post(&deactivate, Some(&alice.token), json!({ "auth": auth }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        &t.get(&userinfo(&token), None).await,
        401,
        "M_UNKNOWN_TOKEN",
    );
    t.stop().await;
}
