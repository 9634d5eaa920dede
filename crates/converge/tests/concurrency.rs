//! Concurrency is input too: 50 clients registering, logging in, uploading filters, setting
//! profiles and account data and sending into one room at the same moment never get a 5xx
//! (on SQLite this used to answer `database is locked`).

mod common;

use common::{Api, TestServer, V3, enc};
use reqwest::StatusCode;
use serde_json::json;

const CLIENTS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_clients_at_once_never_get_a_server_error() {
    let t = TestServer::start().await;
    let owner = t.register("owner", "pw-owner-1").await;
    let (status, body) = t
        .post(
            &format!("{V3}/createRoom"),
            Some(&owner.token),
            json!({ "preset": "public_chat", "room_alias_name": "busy" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let room = body["room_id"].as_str().unwrap().to_owned();
    let t = &t;
    let room = &room;
    let clients = (0..CLIENTS).map(|n| async move {
        let mut seen = Vec::new();
        let name = format!("client{n}");
        let password = format!("pw-{name}-1");
        let (status, body) = t
            .post(
                &format!("{V3}/register"),
                None,
                json!({ "username": name, "password": password, "auth": { "type": "m.login.dummy" } }),
            )
            .await;
        seen.push(("register", status, body));
        let (status, body) = t.login(&name, &password).await;
        let token = body["access_token"].as_str().unwrap_or_default().to_owned();
        let user_id = body["user_id"].as_str().unwrap_or_default().to_owned();
        seen.push(("login", status, body));
        let token = Some(token.as_str());
        let user = enc(&user_id);
        // Every client uploads the same filter, as a burst of logins of one app does,
        // and one of its own.
        for filter in [json!({ "room": { "timeline": { "limit": 10 } } }), json!({ "n": n })] {
            let (status, body) = t
                .post(&format!("{V3}/user/{user}/filter"), token, filter)
                .await;
            seen.push(("filter", status, body));
        }
        let (status, body) = t
            .put(
                &format!("{V3}/profile/{user}/displayname"),
                token,
                json!({ "displayname": format!("Client {n}") }),
            )
            .await;
        seen.push(("displayname", status, body));
        let (status, body) = t
            .put(
                &format!("{V3}/user/{user}/account_data/org.example.settings"),
                token,
                json!({ "n": n }),
            )
            .await;
        seen.push(("account data", status, body));
        let (status, body) = t
            .post(&format!("{V3}/join/{}", enc(room)), token, json!({}))
            .await;
        seen.push(("join", status, body));
        let (status, body) = t
            .put(
                &format!("{V3}/rooms/{}/send/m.room.message/t{n}", enc(room)),
                token,
                json!({ "msgtype": "m.text", "body": format!("hello from {n}") }),
            )
            .await;
        seen.push(("send", status, body));
        seen
    });
    let results = futures_util::future::join_all(clients).await;
    let mut failures = Vec::new();
    for (what, status, body) in results.into_iter().flatten() {
        if status != StatusCode::OK {
            failures.push(format!("{what}: {status} {body}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} requests failed: {failures:#?}",
        failures.len()
    );
    // Every message arrived, once.
    let (status, body) = t
        .get(
            &format!("{V3}/rooms/{}/messages?dir=b&limit=100", enc(room)),
            Some(&owner.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let messages = body["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .count();
    assert_eq!(messages, CLIENTS);
}
