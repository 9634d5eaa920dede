//! End-to-end encryption scenarios: querying many users' device keys, claiming one-time
//! keys, and to-device messages reaching many devices. Keys are signed with real ed25519
//! keys, as clients sign them, so servers that check signatures accept them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use futures_util::future::join_all;
use serde_json::{Map, Value, json};

use crate::client::{Client, Result, Session};
use crate::stats::{ms, summary};

/// Unpadded standard base64, as Matrix writes keys and signatures.
fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// Canonical JSON: keys sorted, no whitespace (the objects here hold only ASCII strings,
/// integers and nested objects or arrays of them).
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// A device's signing key.
pub struct DeviceKey {
    key: SigningKey,
}

impl DeviceKey {
    fn new() -> Self {
        Self {
            key: SigningKey::from_bytes(&rand::random::<[u8; 32]>()),
        }
    }

    fn public(&self) -> String {
        b64(self.key.verifying_key().as_bytes())
    }

    /// Signs `object` (without `signatures` and `unsigned`) as `user`'s `device`.
    fn sign(&self, object: &mut Value, user: &str, device: &str) {
        let mut unsigned = object.clone();
        if let Some(map) = unsigned.as_object_mut() {
            map.remove("signatures");
            map.remove("unsigned");
        }
        let signature = b64(&self.key.sign(canonical(&unsigned).as_bytes()).to_bytes());
        object["signatures"][user][format!("ed25519:{device}")] = json!(signature);
    }

    /// The device's identity keys, self-signed.
    fn device_keys(&self, s: &Session) -> Value {
        let mut keys = json!({
            "user_id": s.user_id,
            "device_id": s.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                format!("ed25519:{}", s.device_id): self.public(),
                format!("curve25519:{}", s.device_id): b64(&rand::random::<[u8; 32]>()),
            },
        });
        self.sign(&mut keys, &s.user_id, &s.device_id);
        keys
    }

    /// `count` signed one-time keys with IDs from `start`.
    fn one_time_keys(&self, s: &Session, start: usize, count: usize) -> Value {
        let mut keys = Map::new();
        for n in start..start + count {
            let mut key = json!({ "key": b64(&rand::random::<[u8; 32]>()) });
            self.sign(&mut key, &s.user_id, &s.device_id);
            keys.insert(format!("signed_curve25519:K{n:06}"), key);
        }
        Value::Object(keys)
    }
}

/// Uploads each user's device keys, 32 at a time, with `otks` one-time keys for the first
/// `with_otks` users.
async fn upload_all(
    client: &Client,
    users: &[Session],
    with_otks: usize,
    otks: usize,
) -> Result<()> {
    for (chunk_index, chunk) in users.chunks(32).enumerate() {
        let uploads = chunk.iter().enumerate().map(|(i, s)| async move {
            let key = DeviceKey::new();
            let count = if chunk_index * 32 + i < with_otks {
                otks
            } else {
                0
            };
            let body = json!({
                "device_keys": key.device_keys(s),
                "one_time_keys": key.one_time_keys(s, 0, count),
            });
            client.post(s, "/keys/upload", &body).await
        });
        for result in join_all(uploads).await {
            result?;
        }
    }
    Ok(())
}

/// `/keys/query` for `query_users` users' devices, and `/keys/claim` of one key from each
/// of `claim_users` devices (medians of five).
pub async fn keys(
    client: &Client,
    users: &[Session],
    query_users: usize,
    claim_users: usize,
) -> Result<Value> {
    let queried = &users[..query_users.min(users.len())];
    let claimed = &users[..claim_users.min(users.len())];
    let uploaded = &users[..queried.len().max(claimed.len())];
    upload_all(client, uploaded, claimed.len(), 5).await?;
    let asker = &users[users.len() - 1];
    let wanted: Map<String, Value> = queried
        .iter()
        .map(|s| (s.user_id.clone(), json!([])))
        .collect();
    let mut query_samples = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let answer = client
            .post(asker, "/keys/query", &json!({ "device_keys": wanted }))
            .await?;
        query_samples.push(started.elapsed());
        let found = answer["device_keys"].as_object().map_or(0, |users| {
            users
                .values()
                .filter(|d| d.as_object().is_some_and(|d| !d.is_empty()))
                .count()
        });
        if found < queried.len() {
            return Err(format!(
                "/keys/query returned devices of {found} of {} users",
                queried.len()
            ));
        }
    }
    let claim: Map<String, Value> = claimed
        .iter()
        .map(|s| {
            (
                s.user_id.clone(),
                json!({ s.device_id.clone(): "signed_curve25519" }),
            )
        })
        .collect();
    let mut claim_samples = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let answer = client
            .post(asker, "/keys/claim", &json!({ "one_time_keys": claim }))
            .await?;
        claim_samples.push(started.elapsed());
        let got = answer["one_time_keys"].as_object().map_or(0, |u| u.len());
        if got < claimed.len() {
            return Err(format!(
                "/keys/claim returned keys of {got} of {} users",
                claimed.len()
            ));
        }
    }
    query_samples.sort();
    claim_samples.sort();
    Ok(json!({
        "query_users": queried.len(),
        "query_ms": ms(query_samples[2]),
        "claim_devices": claimed.len(),
        "claim_ms": ms(claim_samples[2]),
    }))
}

/// One sender sends a to-device message to `listeners` devices (one request), `rounds`
/// times; each device long-polls. Latency from the send to its arrival in each sync.
pub async fn to_device(
    client: &Client,
    sender: &Session,
    listeners: &[Session],
    rounds: usize,
    deadline: Duration,
) -> Result<Value> {
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let stop_at = Instant::now() + deadline;
    let filter = r#"{"room":{"rooms":[]},"presence":{"types":[]},"account_data":{"types":[]}}"#;
    let mut tokens = Vec::with_capacity(listeners.len());
    for chunk in listeners.chunks(64) {
        let syncs = chunk.iter().map(|s| client.sync(s, None, 0, Some(filter)));
        for result in join_all(syncs).await {
            tokens.push(
                result?["next_batch"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    let tasks: Vec<_> = listeners
        .iter()
        .cloned()
        .zip(tokens)
        .map(|(s, token)| {
            let (client, sent_at, latencies) = (client.clone(), sent_at.clone(), latencies.clone());
            tokio::spawn(async move {
                let mut since = token;
                let mut seen = 0;
                while seen < rounds && Instant::now() < stop_at {
                    let Ok(response) = client.sync(&s, Some(&since), 10_000, Some(filter)).await
                    else {
                        break;
                    };
                    let arrived = Instant::now();
                    since = response["next_batch"].as_str().unwrap_or(&since).to_owned();
                    for event in response["to_device"]["events"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        if let Some(id) = event["content"]["bench_id"].as_str()
                            && let Some(at) = sent_at.lock().expect("not poisoned").get(id)
                        {
                            latencies.lock().expect("not poisoned").push(arrived - *at);
                            seen += 1;
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for round in 0..rounds {
        let id = format!("td{round}");
        let messages: Map<String, Value> = listeners
            .iter()
            .map(|s| {
                (
                    s.user_id.clone(),
                    json!({ s.device_id.clone(): { "bench_id": id } }),
                )
            })
            .collect();
        sent_at
            .lock()
            .expect("not poisoned")
            .insert(id.clone(), Instant::now());
        client
            .put(
                sender,
                &format!(
                    "/sendToDevice/org.example.bench/{}{round}",
                    rand::random::<u32>()
                ),
                &json!({ "messages": messages }),
            )
            .await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut samples = latencies.lock().expect("not poisoned").clone();
    let mut result = summary(&mut samples);
    result["devices"] = json!(listeners.len());
    result["rounds"] = json!(rounds);
    result["expected"] = json!(listeners.len() * rounds);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_without_spaces() {
        let value = json!({ "b": 1, "a": { "d": [1, "x"], "c": "y" } });
        assert_eq!(canonical(&value), r#"{"a":{"c":"y","d":[1,"x"]},"b":1}"#);
    }
}
