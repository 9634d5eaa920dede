//! End-to-end encryption, the server's part, over HTTP: device keys, one-time and fallback
//! keys, cross-signing and signatures, to-device messages and device lists in `/sync`, and
//! the key backup — each with the bad input it must refuse.

mod common;

use common::{Api, App, TestServer, User, V3, assert_error, create_room, enc, password_auth};
use reqwest::StatusCode;
use ruma::CanonicalJsonObject;
use ruma::serde::Base64;
use ruma::signatures::{Ed25519KeyPair, KeyPair, to_canonical_json_string_for_signing};
use serde_json::{Value, json};

/// An ed25519 key of a test client.
struct Key(Ed25519KeyPair);

impl Key {
    fn new() -> Self {
        let der = Ed25519KeyPair::generate();
        Self(Ed25519KeyPair::from_der(&der, "k".into()).unwrap())
    }

    fn public(&self) -> String {
        Base64::<ruma::serde::base64::Standard>::new(self.0.public_key().to_vec()).encode()
    }

    /// Signs `object` as `signer` under `key_id`, as a client does.
    fn sign(&self, object: &mut Value, signer: &str, key_id: &str) {
        let canonical: CanonicalJsonObject = serde_json::from_value(object.clone()).unwrap();
        let text = to_canonical_json_string_for_signing(&canonical).unwrap();
        let signature = Base64::<ruma::serde::base64::Standard>::new(
            self.0.sign(text.as_bytes()).as_bytes().to_vec(),
        )
        .encode();
        object["signatures"][signer][key_id] = json!(signature);
    }
}

/// A device's self-signed identity keys.
fn device_keys(user: &User, key: &Key) -> Value {
    let mut keys = json!({
        "user_id": user.user_id,
        "device_id": user.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            format!("ed25519:{}", user.device_id): key.public(),
            format!("curve25519:{}", user.device_id): "curve-key",
        },
    });
    key.sign(
        &mut keys,
        &user.user_id,
        &format!("ed25519:{}", user.device_id),
    );
    keys
}

async fn upload(t: &impl Api, user: &User, body: Value) -> (StatusCode, Value) {
    t.post(&format!("{V3}/keys/upload"), Some(&user.token), body)
        .await
}

#[tokio::test]
async fn device_keys_are_kept_as_signed_and_never_change() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let key = Key::new();
    let keys = device_keys(&alice, &key);
    let (status, body) = upload(&t, &alice, json!({ "device_keys": keys })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["one_time_key_counts"]["signed_curve25519"], 0);
    let (status, body) = t
        .put(
            &format!("{V3}/devices/{}", alice.device_id),
            Some(&alice.token),
            json!({ "display_name": "Alice's laptop" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = t
        .post(
            &format!("{V3}/keys/query"),
            Some(&bob.token),
            json!({ "device_keys": { alice.user_id.clone(): [] } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = &body["device_keys"][&alice.user_id][&alice.device_id];
    assert_eq!(got["keys"], keys["keys"]);
    assert_eq!(got["signatures"], keys["signatures"]);
    assert_eq!(got["unsigned"]["device_display_name"], "Alice's laptop");
    // Asking for another device of alice's gives nothing; a remote user is a failure.
    let (_, body) = t
        .post(
            &format!("{V3}/keys/query"),
            Some(&bob.token),
            json!({ "device_keys": { alice.user_id.clone(): ["NOPE"], "@x:elsewhere.org": [] } }),
        )
        .await;
    assert_eq!(body["device_keys"][&alice.user_id], json!({}));
    assert!(body["failures"]["elsewhere.org"].is_object());

    // The same keys again are fine; changed keys for the device are refused.
    assert_eq!(
        upload(&t, &alice, json!({ "device_keys": keys })).await.0,
        StatusCode::OK
    );
    let changed = device_keys(&alice, &Key::new());
    assert_error(
        &upload(&t, &alice, json!({ "device_keys": changed })).await,
        400,
        "M_INVALID_PARAM",
    );
    // A signature that does not verify, keys for another device or user: refused.
    let mut forged = device_keys(&bob, &Key::new());
    forged["keys"][format!("curve25519:{}", bob.device_id)] = json!("swapped");
    assert_error(
        &upload(&t, &bob, json!({ "device_keys": forged })).await,
        400,
        "M_INVALID_SIGNATURE",
    );
    assert_error(
        &upload(
            &t,
            &bob,
            json!({ "device_keys": device_keys(&alice, &Key::new()) }),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    t.stop().await;
}

#[tokio::test]
async fn one_time_keys_are_claimed_once_then_the_fallback() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let key = Key::new();
    let signed = |id: &str| {
        let mut otk = json!({ "key": format!("curve-{id}") });
        key.sign(
            &mut otk,
            &alice.user_id,
            &format!("ed25519:{}", alice.device_id),
        );
        otk
    };
    let (status, body) = upload(
        &t,
        &alice,
        json!({
            "device_keys": device_keys(&alice, &key),
            "one_time_keys": { "signed_curve25519:A1": signed("A1"), "signed_curve25519:A2": signed("A2") },
            "fallback_keys": { "signed_curve25519:FB": signed("FB") },
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["one_time_key_counts"]["signed_curve25519"], 2);
    // The same key ID with other content is refused; a key signed by someone else too.
    assert_error(
        &upload(
            &t,
            &alice,
            json!({ "one_time_keys": { "signed_curve25519:A1": signed("other") } }),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    let mut foreign = json!({ "key": "x" });
    Key::new().sign(
        &mut foreign,
        &alice.user_id,
        &format!("ed25519:{}", alice.device_id),
    );
    assert_error(
        &upload(
            &t,
            &alice,
            json!({ "one_time_keys": { "signed_curve25519:A3": foreign } }),
        )
        .await,
        400,
        "M_INVALID_SIGNATURE",
    );

    let claim = json!({ "one_time_keys": { alice.user_id.clone(): { alice.device_id.clone(): "signed_curve25519" } } });
    let mut claimed = Vec::new();
    for _ in 0..3 {
        let (status, body) = t
            .post(&format!("{V3}/keys/claim"), Some(&bob.token), claim.clone())
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let keys = body["one_time_keys"][&alice.user_id][&alice.device_id]
            .as_object()
            .unwrap()
            .clone();
        claimed.extend(keys.keys().cloned());
    }
    assert_eq!(
        claimed,
        [
            "signed_curve25519:A1",
            "signed_curve25519:A2",
            "signed_curve25519:FB"
        ],
        "each one-time key once, then the fallback key"
    );
    // The sync of alice's device shows the counts and that the fallback key was used.
    let (_, sync) = t
        .get(&format!("{V3}/sync?timeout=0"), Some(&alice.token))
        .await;
    assert_eq!(sync["device_one_time_keys_count"]["signed_curve25519"], 0);
    assert_eq!(sync["device_unused_fallback_key_types"], json!([]));

    // A claim for 10,000 devices is refused before anything is read.
    let many: serde_json::Map<String, Value> = (0..10_000)
        .map(|n| (format!("DEV{n}"), json!("signed_curve25519")))
        .collect();
    assert_error(
        &t.post(
            &format!("{V3}/keys/claim"),
            Some(&bob.token),
            json!({ "one_time_keys": { alice.user_id.clone(): many } }),
        )
        .await,
        400,
        "M_INVALID_PARAM",
    );
    t.stop().await;
}

/// A cross-signing key object of `user` of `kind`, signed by `signer` if given.
fn cross_key(user: &User, kind: &str, key: &Key, signer: Option<&Key>) -> Value {
    let mut object = json!({
        "user_id": user.user_id,
        "usage": [kind],
        "keys": { format!("ed25519:{}", key.public()): key.public() },
    });
    if let Some(signer) = signer {
        signer.sign(
            &mut object,
            &user.user_id,
            &format!("ed25519:{}", signer.public()),
        );
    }
    object
}

#[tokio::test]
async fn cross_signing_keys_and_signatures() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let device = Key::new();
    upload(
        &t,
        &alice,
        json!({ "device_keys": device_keys(&alice, &device) }),
    )
    .await;
    let (master, ssk, usk) = (Key::new(), Key::new(), Key::new());
    let path = format!("{V3}/keys/device_signing/upload");
    // Keys not signed by the master key are refused.
    assert_error(
        &t.post(
            &path,
            Some(&alice.token),
            json!({
                "master_key": cross_key(&alice, "master", &master, None),
                "self_signing_key": cross_key(&alice, "self_signing", &ssk, Some(&Key::new())),
            }),
        )
        .await,
        400,
        "M_INVALID_SIGNATURE",
    );
    // The first upload needs no password.
    let upload_all = json!({
        "master_key": cross_key(&alice, "master", &master, None),
        "self_signing_key": cross_key(&alice, "self_signing", &ssk, Some(&master)),
        "user_signing_key": cross_key(&alice, "user_signing", &usk, Some(&master)),
    });
    let (status, body) = t.post(&path, Some(&alice.token), upload_all.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Replacing them does: a 401 with the password flow, then it goes through.
    let other_master = Key::new();
    let replace = json!({ "master_key": cross_key(&alice, "master", &other_master, None) });
    let (status, challenge) = t.post(&path, Some(&alice.token), replace.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{challenge}");
    assert_eq!(challenge["flows"][0]["stages"][0], "m.login.password");
    let mut with_auth = upload_all.clone();
    with_auth["auth"] = password_auth(&alice.user_id, "pw-alice-1", &challenge["session"]);
    with_auth["master_key"] = cross_key(&alice, "master", &master, None);
    let (status, body) = t.post(&path, Some(&alice.token), with_auth).await;
    assert_eq!(status, StatusCode::OK, "same keys again: {body}");

    // Alice's self-signing key signs her device; bob sees the signature in the query.
    let mut signed_device = device_keys(&alice, &device);
    ssk.sign(
        &mut signed_device,
        &alice.user_id,
        &format!("ed25519:{}", ssk.public()),
    );
    let (status, body) = t
        .post(
            &format!("{V3}/keys/signatures/upload"),
            Some(&alice.token),
            json!({ alice.user_id.clone(): { alice.device_id.clone(): signed_device } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["failures"], json!({}));
    // A signature that does not verify ends up in `failures`.
    let mut bad = device_keys(&alice, &device);
    bad["signatures"][&alice.user_id][format!("ed25519:{}", ssk.public())] = json!("AAAA");
    let (_, body) = t
        .post(
            &format!("{V3}/keys/signatures/upload"),
            Some(&alice.token),
            json!({ alice.user_id.clone(): { alice.device_id.clone(): bad } }),
        )
        .await;
    assert_eq!(
        body["failures"][&alice.user_id][&alice.device_id]["errcode"],
        "M_INVALID_SIGNATURE"
    );
    let (_, body) = t
        .post(
            &format!("{V3}/keys/query"),
            Some(&bob.token),
            json!({ "device_keys": { alice.user_id.clone(): [] } }),
        )
        .await;
    let sigs = &body["device_keys"][&alice.user_id][&alice.device_id]["signatures"][&alice.user_id];
    assert!(
        sigs[format!("ed25519:{}", ssk.public())].is_string(),
        "{body}"
    );
    assert!(body["master_keys"][&alice.user_id].is_object());
    assert!(body["self_signing_keys"][&alice.user_id].is_object());
    assert!(
        body["user_signing_keys"].get(&alice.user_id).is_none(),
        "a user-signing key is only shown to its owner"
    );
    let (_, own) = t
        .post(
            &format!("{V3}/keys/query"),
            Some(&alice.token),
            json!({ "device_keys": { alice.user_id.clone(): [] } }),
        )
        .await;
    assert!(own["user_signing_keys"][&alice.user_id].is_object());
    t.stop().await;
}

/// An incremental sync as `user` from `since` that waits at most `timeout_ms`.
async fn sync(t: &TestServer, user: &User, since: Option<&str>, timeout_ms: u32) -> Value {
    let query = match since {
        Some(since) => format!("since={since}&timeout={timeout_ms}"),
        None => "timeout=0".into(),
    };
    let (status, body) = t
        .get(&format!("{V3}/sync?{query}"), Some(&user.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn to_device_messages_arrive_once_and_wake_the_device() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let first = sync(&t, &bob, None, 0).await;
    let since = first["next_batch"].as_str().unwrap().to_owned();
    let waiting = {
        let (t, bob, since) = (&t, &bob, since.clone());
        async move { sync(t, bob, Some(&since), 10_000).await }
    };
    let send = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let body = json!({ "messages": { bob.user_id.clone(): { "*": { "hello": "bob" } } } });
        let path = format!("{V3}/sendToDevice/m.test/t1");
        let (status, answer) = t.put(&path, Some(&alice.token), body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        // A retried transaction is not delivered twice.
        assert_eq!(
            t.put(&path, Some(&alice.token), body).await.0,
            StatusCode::OK
        );
    };
    let (woken, ()) = tokio::join!(waiting, send);
    let events = woken["to_device"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{woken}");
    assert_eq!(events[0]["sender"], alice.user_id.as_str());
    assert_eq!(events[0]["type"], "m.test");
    assert_eq!(events[0]["content"]["hello"], "bob");
    // The next sync from that token acknowledges it: it is gone.
    let next = woken["next_batch"].as_str().unwrap();
    let after = sync(&t, &bob, Some(next), 0).await;
    assert_eq!(after["to_device"]["events"], json!([]));
    // Acknowledged messages are deleted: syncing again from the old token does not repeat it.
    let again = sync(&t, &bob, Some(&since), 0).await;
    assert_eq!(again["to_device"]["events"], json!([]));

    // Over 64 KiB: refused; a flood to one device: refused past the queue limit.
    let big = json!({ "messages": { bob.user_id.clone(): { bob.device_id.clone(): { "x": "a".repeat(70_000) } } } });
    assert_error(
        &t.put(
            &format!("{V3}/sendToDevice/m.test/big"),
            Some(&alice.token),
            big,
        )
        .await,
        413,
        "M_TOO_LARGE",
    );
    let mut limited = None;
    for n in 0..1_100 {
        let body =
            json!({ "messages": { bob.user_id.clone(): { bob.device_id.clone(): { "n": n } } } });
        let result = t
            .put(
                &format!("{V3}/sendToDevice/m.test/flood{n}"),
                Some(&alice.token),
                body,
            )
            .await;
        if result.0 != StatusCode::OK {
            limited = Some((n, result));
            break;
        }
    }
    let (n, result) = limited.expect("the queue is bounded");
    assert!(n >= 1_000, "refused only past the queue limit ({n})");
    assert_error(&result, 429, "M_LIMIT_EXCEEDED");
    t.stop().await;
}

#[tokio::test]
async fn device_lists_follow_key_changes_of_co_members() {
    let t = TestServer::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let bob = t.register("bob", "pw-bob-1").await;
    let carol = t.register("carol", "pw-carol-1").await;
    let room = create_room(&t, &alice, json!({ "invite": [bob.user_id] })).await;
    t.post(
        &format!("{V3}/join/{}", enc(&room)),
        Some(&bob.token),
        json!({}),
    )
    .await;
    let since = sync(&t, &alice, None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    // Bob (who shares a room) and carol (who does not) upload keys.
    upload(
        &t,
        &bob,
        json!({ "device_keys": device_keys(&bob, &Key::new()) }),
    )
    .await;
    upload(
        &t,
        &carol,
        json!({ "device_keys": device_keys(&carol, &Key::new()) }),
    )
    .await;
    let body = sync(&t, &alice, Some(&since), 5_000).await;
    assert_eq!(
        body["device_lists"]["changed"],
        json!([bob.user_id]),
        "{body}"
    );
    let next = body["next_batch"].as_str().unwrap().to_owned();
    let (_, changes) = t
        .get(
            &format!("{V3}/keys/changes?from={since}&to={next}"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(changes["changed"], json!([bob.user_id]));

    // Bob leaves: alice no longer shares a room with him.
    t.post(
        &format!("{V3}/rooms/{}/leave", enc(&room)),
        Some(&bob.token),
        json!({}),
    )
    .await;
    let body = sync(&t, &alice, Some(&next), 5_000).await;
    assert_eq!(body["device_lists"]["left"], json!([bob.user_id]), "{body}");
    t.stop().await;
}

#[tokio::test]
async fn key_backup_versions_and_sessions() {
    let t = App::start().await;
    let alice = t.register("alice", "pw-alice-1").await;
    let path = format!("{V3}/room_keys/version");
    assert_error(&t.get(&path, Some(&alice.token)).await, 404, "M_NOT_FOUND");
    let algorithm = json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": { "public_key": "pk" } });
    let (status, body) = t.post(&path, Some(&alice.token), algorithm.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v1 = body["version"].as_str().unwrap().to_owned();
    let (_, body) = t.post(&path, Some(&alice.token), algorithm).await;
    let v2 = body["version"].as_str().unwrap().to_owned();
    let (_, current) = t.get(&path, Some(&alice.token)).await;
    assert_eq!(current["version"], v2.as_str());
    assert_eq!(current["count"], 0);

    let session = |index: u64, verified: bool, data: &str| json!({ "first_message_index": index, "forwarded_count": 0, "is_verified": verified, "session_data": { "ciphertext": data } });
    let keys = |version: &str| {
        format!(
            "{V3}/room_keys/keys/{}/s1?version={version}",
            enc("!room:localhost")
        )
    };
    let (status, body) = t
        .put(&keys(&v2), Some(&alice.token), session(3, false, "first"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 1);
    let etag = body["etag"].clone();
    // A worse copy is not kept (same etag); a better one is.
    let (_, body) = t
        .put(&keys(&v2), Some(&alice.token), session(9, false, "worse"))
        .await;
    assert_eq!(body["etag"], etag);
    let (_, body) = t
        .put(&keys(&v2), Some(&alice.token), session(9, true, "verified"))
        .await;
    assert_ne!(body["etag"], etag);
    let (_, got) = t.get(&keys(&v2), Some(&alice.token)).await;
    assert_eq!(got["session_data"]["ciphertext"], "verified");
    let (_, all) = t
        .get(
            &format!("{V3}/room_keys/keys?version={v2}"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(
        all["rooms"]["!room:localhost"]["sessions"]["s1"]["is_verified"],
        true
    );
    // Writing to a stale version is refused with the current one.
    let (status, stale) = t
        .put(&keys(&v1), Some(&alice.token), session(0, true, "x"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(stale["errcode"], "M_WRONG_ROOM_KEYS_VERSION");
    assert_eq!(stale["current_version"], v2.as_str());
    // Deleting the version leaves the older one current.
    assert_eq!(
        t.call(
            reqwest::Method::DELETE,
            &format!("{path}/{v2}"),
            Some(&alice.token),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    let (_, current) = t.get(&path, Some(&alice.token)).await;
    assert_eq!(current["version"], v1.as_str());
    assert_error(
        &t.get(&format!("{path}/{v2}"), Some(&alice.token)).await,
        404,
        "M_NOT_FOUND",
    );
    t.stop().await;
}
