//! The server's part of end-to-end encryption: keeping devices' identity keys, one-time
//! and fallback keys, cross-signing keys and signatures, and carrying to-device messages.
//! The server never sees plaintext; it checks that what it keeps is signed by whom it
//! claims, hands every one-time key out once, and bounds what each user can store.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption>.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use converge_core::StreamPos;
use converge_core::e2ee::{self, ed25519_key, signed_by};
use converge_store::{CrossSigningKey, KeySignature, OneTimeKey, OneTimeKeysAdded, Store, WriteOp};
use ruma::api::client::uiaa::AuthData;
use serde_json::{Map, Value, json};

use crate::accounts::Interactive;
use crate::caller::Caller;
use crate::device_lists::{DeviceListDelta, DeviceLists};
use crate::error::{Error, Result};
use crate::notifier::Notifier;
use crate::token::SyncToken;

/// Most one-time (and fallback) keys one upload may carry.
const MAX_KEYS_PER_UPLOAD: usize = 1000;
/// Most users one key query may name.
const MAX_QUERY_USERS: usize = 5000;
/// Most devices one claim may name.
const MAX_CLAIM_DEVICES: usize = 1000;
/// The largest to-device message, serialised (the spec's limit for events).
pub const MAX_TO_DEVICE_BYTES: usize = 64 * 1024;
/// Most messages one `/sendToDevice` may carry, after `*` is expanded.
const MAX_TO_DEVICE_MESSAGES: usize = 10_000;
/// Most messages waiting for one device; past it, senders are told to slow down.
pub const MAX_TO_DEVICE_QUEUE: i64 = 1000;
/// To-device messages one sync carries at most.
const TO_DEVICE_PER_SYNC: u32 = 100;
/// Every cross-signing key type, in the order the spec lists them.
const CROSS_SIGNING_TYPES: [&str; 3] = ["master", "self_signing", "user_signing"];

pub struct E2ee {
    store: Store,
    server_name: String,
    device_lists: Arc<DeviceLists>,
    interactive: Arc<Interactive>,
    notifier: Arc<dyn Notifier>,
}

/// A user's cross-signing keys as stored, by type.
type CrossSigning = HashMap<String, CrossSigningKey>;

impl E2ee {
    pub fn new(
        store: Store,
        server_name: String,
        device_lists: Arc<DeviceLists>,
        interactive: Arc<Interactive>,
        notifier: Arc<dyn Notifier>,
    ) -> Self {
        Self {
            store,
            server_name,
            device_lists,
            interactive,
            notifier,
        }
    }

    fn is_local(&self, user_id: &str) -> bool {
        self.local_part(user_id).is_some()
    }

    /// The localpart of a user of this server; `None` for anyone else.
    fn local_part<'a>(&self, user_id: &'a str) -> Option<&'a str> {
        local_part(user_id, &self.server_name)
    }

    /// `POST /keys/upload`: the device's identity keys (once; they never change), one-time
    /// keys and fallback keys. Returns the counts of unclaimed one-time keys.
    pub async fn upload(
        &self,
        caller: &Caller,
        device_keys: Option<Value>,
        one_time_keys: Vec<(String, Value)>,
        fallback_keys: Vec<(String, Value)>,
    ) -> Result<BTreeMap<String, i64>> {
        let user = caller.user_id.as_str();
        let device = caller.device_id.as_str();
        if one_time_keys.len() + fallback_keys.len() > MAX_KEYS_PER_UPLOAD {
            return Err(Error::InvalidParam(format!(
                "at most {MAX_KEYS_PER_UPLOAD} one-time and fallback keys per upload"
            )));
        }
        let stored = self
            .store
            .device_keys(&[user.to_owned()])
            .await?
            .into_iter()
            .find(|(_, d, _)| d == device)
            .and_then(|(_, _, json)| serde_json::from_str::<Value>(&json).ok());
        let mut identity = stored.clone();
        if let Some(mut keys) = device_keys {
            if keys["user_id"] != user || keys["device_id"] != device {
                return Err(Error::InvalidParam(
                    "device_keys must name your user ID and this device".into(),
                ));
            }
            let Some(ed25519) = ed25519_key(&keys, device).map(str::to_owned) else {
                return Err(Error::InvalidParam(
                    "device_keys must hold the device's ed25519 key".into(),
                ));
            };
            if !signed_by(&keys, user, &format!("ed25519:{device}"), &ed25519) {
                return Err(Error::InvalidSignature(
                    "the device keys are not signed by the device's ed25519 key".into(),
                ));
            }
            if let Some(map) = keys.as_object_mut() {
                map.remove("unsigned");
            }
            match &stored {
                Some(old) if old["keys"] != keys["keys"] => {
                    return Err(Error::InvalidParam(
                        "this device's keys are already uploaded and cannot change; log in as a new device"
                            .into(),
                    ));
                }
                Some(old) if old["algorithms"] == keys["algorithms"] => {}
                _ => {
                    self.store
                        .set_device_keys(user, device, &keys.to_string())
                        .await?;
                    self.device_lists.changed(user).await?;
                }
            }
            identity = Some(keys);
        }
        let ed25519 = identity
            .as_ref()
            .and_then(|keys| ed25519_key(keys, device).map(str::to_owned));
        let checked = |id: &str, key: &Value| -> Result<OneTimeKey> {
            let (algorithm, key_id) = e2ee::split_key_id(id)
                .ok_or_else(|| Error::InvalidParam(format!("{id:?} is not a key ID")))?;
            if let (Some(public), true) = (&ed25519, key.get("signatures").is_some())
                && !signed_by(key, user, &format!("ed25519:{device}"), public)
            {
                return Err(Error::InvalidSignature(format!(
                    "the key {id} is not signed by this device"
                )));
            }
            Ok(OneTimeKey {
                algorithm: algorithm.to_owned(),
                key_id: key_id.to_owned(),
                json: key.to_string(),
            })
        };
        let one_time: Vec<OneTimeKey> = one_time_keys
            .iter()
            .map(|(id, key)| checked(id, key))
            .collect::<Result<_>>()?;
        let fallback: Vec<OneTimeKey> = fallback_keys
            .iter()
            .map(|(id, key)| checked(id, key))
            .collect::<Result<_>>()?;
        if !one_time.is_empty()
            && let OneTimeKeysAdded::Conflict(id) = self
                .store
                .add_one_time_keys(user, device, &one_time)
                .await?
        {
            return Err(Error::InvalidParam(format!(
                "the one-time key {id} was uploaded before with other content"
            )));
        }
        for key in &fallback {
            self.store.set_fallback_key(user, device, key).await?;
        }
        self.one_time_key_counts(user, device).await
    }

    /// Unclaimed one-time keys of a device, per algorithm (`signed_curve25519` always
    /// listed, as clients expect).
    pub async fn one_time_key_counts(
        &self,
        user: &str,
        device: &str,
    ) -> Result<BTreeMap<String, i64>> {
        let mut counts: BTreeMap<String, i64> = self
            .store
            .one_time_key_counts(user, device)
            .await?
            .into_iter()
            .collect();
        counts.entry("signed_curve25519".into()).or_insert(0);
        Ok(counts)
    }

    /// The algorithms of a device's fallback keys no claim used yet.
    pub async fn unused_fallback_key_types(&self, user: &str, device: &str) -> Result<Vec<String>> {
        Ok(self.store.unused_fallback_algorithms(user, device).await?)
    }

    /// `POST /keys/query`: device keys (all devices, or the listed ones) and cross-signing
    /// keys of the named users, with the signatures uploaded for them; a user's
    /// user-signing key only to that user.
    pub async fn query(
        &self,
        caller: &Caller,
        wanted: Vec<(String, Vec<String>)>,
    ) -> Result<Value> {
        if wanted.len() > MAX_QUERY_USERS {
            return Err(Error::InvalidParam(format!(
                "at most {MAX_QUERY_USERS} users per key query"
            )));
        }
        let mut failures = Map::new();
        let mut local = Vec::new();
        for (user, devices) in wanted {
            if self.is_local(&user) {
                local.push((user, devices));
            } else {
                not_federated(&mut failures, &user);
            }
        }
        let users: Vec<String> = local.iter().map(|(u, _)| u.clone()).collect();
        let signatures = self.signatures_by_target(&users).await?;
        // Every user's devices (for display names; keys of a deleted device are not served)
        // and keys, each in one batched read.
        let localparts: Vec<&str> = users.iter().filter_map(|u| self.local_part(u)).collect();
        let devices = self.store.devices_of(&localparts).await?;
        let names: HashMap<(&str, &str), Option<&str>> = devices
            .iter()
            .map(|(localpart, d)| {
                (
                    (localpart.as_str(), d.device_id.as_str()),
                    d.display_name.as_deref(),
                )
            })
            .collect();
        let mut keys_of: HashMap<&str, Vec<(&String, &String)>> = HashMap::new();
        let rows = self.store.device_keys(&users).await?;
        for (user, device, json) in &rows {
            keys_of
                .entry(user.as_str())
                .or_default()
                .push((device, json));
        }
        let mut device_keys = Map::new();
        for (user, devices) in &local {
            // Every user here is local.
            let localpart = self.local_part(user).unwrap_or_default();
            let mut of_user = Map::new();
            for &(device, json) in keys_of.get(user.as_str()).into_iter().flatten() {
                let Some(name) = names.get(&(localpart, device.as_str())) else {
                    continue;
                };
                if !devices.is_empty() && !devices.contains(device) {
                    continue;
                }
                let Ok(mut keys) = serde_json::from_str::<Value>(json) else {
                    continue;
                };
                merge_signatures(&mut keys, signatures.get(&(user.clone(), device.clone())));
                if let Some(name) = name {
                    keys["unsigned"] = json!({ "device_display_name": name });
                }
                of_user.insert(device.clone(), keys);
            }
            device_keys.insert(user.clone(), Value::Object(of_user));
        }
        let mut by_type: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        for key in self.store.cross_signing_keys(&users).await? {
            if key.key_type == "user_signing" && key.user_id != caller.user_id.as_str() {
                continue;
            }
            let Ok(mut json) = serde_json::from_str::<Value>(&key.json) else {
                continue;
            };
            merge_signatures(
                &mut json,
                signatures.get(&(key.user_id.clone(), key.public_key.clone())),
            );
            let Some(kind) = CROSS_SIGNING_TYPES.iter().find(|t| **t == key.key_type) else {
                continue;
            };
            by_type
                .entry(kind)
                .or_default()
                .insert(key.user_id.clone(), json);
        }
        Ok(json!({
            "device_keys": device_keys,
            "master_keys": by_type.remove("master").unwrap_or_default(),
            "self_signing_keys": by_type.remove("self_signing").unwrap_or_default(),
            "user_signing_keys": by_type.remove("user_signing").unwrap_or_default(),
            "failures": failures,
        }))
    }

    /// Signatures uploaded for keys of `users`, by (target user, target key).
    async fn signatures_by_target(
        &self,
        users: &[String],
    ) -> Result<HashMap<(String, String), Vec<KeySignature>>> {
        let mut out: HashMap<(String, String), Vec<KeySignature>> = HashMap::new();
        for signature in self.store.key_signatures(users).await? {
            out.entry((signature.target_user.clone(), signature.target_key.clone()))
                .or_default()
                .push(signature);
        }
        Ok(out)
    }

    /// `POST /keys/claim`: one key per named device and algorithm, a one-time key if any
    /// is left (never the same to two claimers), else the device's fallback key.
    pub async fn claim(&self, wanted: Vec<(String, String, String)>) -> Result<Value> {
        if wanted.len() > MAX_CLAIM_DEVICES {
            return Err(Error::InvalidParam(format!(
                "at most {MAX_CLAIM_DEVICES} devices per claim"
            )));
        }
        let mut failures = Map::new();
        let (local, remote): (Vec<_>, Vec<_>) = wanted
            .into_iter()
            .partition(|(user, _, _)| self.is_local(user));
        for (user, _, _) in remote {
            not_federated(&mut failures, &user);
        }
        // All in one transaction: a claim of 100 devices is one commit, not 100.
        let keys = self.store.claim_keys(&local).await?;
        let mut claimed: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        for ((user, device, _), key) in local.into_iter().zip(keys) {
            if let Some(key) = key {
                let value: Value = serde_json::from_str(&key.json).unwrap_or(Value::Null);
                claimed.entry(user).or_default().insert(
                    device,
                    json!({ format!("{}:{}", key.algorithm, key.key_id): value }),
                );
            }
        }
        Ok(json!({ "one_time_keys": claimed, "failures": failures }))
    }

    /// `GET /keys/changes`: whose device lists changed between two sync tokens, and with
    /// whom the caller stopped sharing a room.
    pub async fn changes(
        &self,
        caller: &Caller,
        from: SyncToken,
        to: SyncToken,
        joined: &[Vec<String>],
        left: &[Vec<String>],
    ) -> Result<DeviceListDelta> {
        self.device_lists
            .delta(caller.user_id.as_str(), from.pos, to.pos, joined, left)
            .await
    }

    /// `POST /keys/device_signing/upload`: the caller's cross-signing keys. The first
    /// upload needs no confirmation; replacing existing keys needs the password.
    pub async fn upload_signing_keys(
        &self,
        caller: &Caller,
        master: Option<Value>,
        self_signing: Option<Value>,
        user_signing: Option<Value>,
        auth: Option<AuthData>,
    ) -> Result<()> {
        let user = caller.user_id.as_str();
        let existing: CrossSigning = self
            .store
            .cross_signing_keys(&[user.to_owned()])
            .await?
            .into_iter()
            .map(|k| (k.key_type.clone(), k))
            .collect();
        let mut new = Vec::new();
        for (kind, key) in [
            ("master", master),
            ("self_signing", self_signing),
            ("user_signing", user_signing),
        ] {
            let Some(mut key) = key else { continue };
            if key["user_id"] != user {
                return Err(Error::InvalidParam(format!(
                    "the {kind} key must name your user ID"
                )));
            }
            if !key["usage"]
                .as_array()
                .is_some_and(|usage| usage.iter().any(|u| u == kind))
            {
                return Err(Error::InvalidParam(format!(
                    "the {kind} key's usage must include {kind:?}"
                )));
            }
            let (_, public) = e2ee::cross_signing_public_key(&key).ok_or_else(|| {
                Error::InvalidParam(format!(
                    "the {kind} key must hold exactly one ed25519 key named after itself"
                ))
            })?;
            if let Some(map) = key.as_object_mut() {
                map.remove("unsigned");
            }
            new.push(CrossSigningKey {
                user_id: user.to_owned(),
                key_type: kind.to_owned(),
                public_key: public,
                json: key.to_string(),
            });
        }
        if new.is_empty() {
            return Ok(());
        }
        let unchanged = new.iter().all(|key| {
            existing
                .get(&key.key_type)
                .is_some_and(|old| old.json == key.json)
        });
        if unchanged {
            return Ok(());
        }
        let session = if existing.contains_key("master") {
            Some(
                self.interactive
                    .confirm_password(caller, "device_signing", auth)
                    .await?,
            )
        } else {
            None
        };
        // The self-signing and user-signing keys must carry the master key's signature.
        let master = new
            .iter()
            .find(|k| k.key_type == "master")
            .or_else(|| existing.get("master"))
            .ok_or_else(|| Error::InvalidParam("upload the master key first".into()))?
            .public_key
            .clone();
        for key in new.iter().filter(|k| k.key_type != "master") {
            let json: Value = serde_json::from_str(&key.json).map_err(Error::internal)?;
            if !signed_by(&json, user, &format!("ed25519:{master}"), &master) {
                return Err(Error::InvalidSignature(format!(
                    "the {} key is not signed by the master key",
                    key.key_type
                )));
            }
        }
        self.store.set_cross_signing_keys(&new).await?;
        if let Some(session) = session {
            self.interactive.complete(&session);
        }
        self.device_lists.changed(user).await
    }

    /// `POST /keys/signatures/upload`: signatures by the caller's keys for their own
    /// devices and master key, or (with their user-signing key) for others' master keys.
    /// Each one is checked against the stored key; bad ones are listed in `failures`.
    pub async fn upload_signatures(
        &self,
        caller: &Caller,
        signed: Vec<(String, String, Value)>,
    ) -> Result<Value> {
        let me = caller.user_id.as_str();
        let mut users: BTreeSet<String> = signed.iter().map(|(u, _, _)| u.clone()).collect();
        users.insert(me.to_owned());
        let users: Vec<String> = users.into_iter().collect();
        let cross: HashMap<(String, String), CrossSigningKey> = self
            .store
            .cross_signing_keys(&users)
            .await?
            .into_iter()
            .map(|k| ((k.user_id.clone(), k.key_type.clone()), k))
            .collect();
        let devices: HashMap<(String, String), Value> = self
            .store
            .device_keys(&users)
            .await?
            .into_iter()
            .filter_map(|(u, d, json)| Some(((u, d), serde_json::from_str(&json).ok()?)))
            .collect();
        let my_key = |kind: &str| cross.get(&(me.to_owned(), kind.to_owned()));
        let mut accepted = Vec::new();
        let mut failures: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        let mut changed: BTreeSet<String> = BTreeSet::new();
        for (user, key_id, object) in signed {
            let outcome = (|| -> std::result::Result<Vec<KeySignature>, (&str, String)> {
                // What is signed, as stored, and which of the caller's keys may sign it.
                let (stored, signers): (Value, Vec<(String, String)>) = if user == me {
                    if let Some(device) = devices.get(&(user.clone(), key_id.clone())) {
                        let ssk = my_key("self_signing").ok_or((
                            "M_INVALID_SIGNATURE",
                            "you have no self-signing key".into(),
                        ))?;
                        (
                            device.clone(),
                            vec![(
                                format!("ed25519:{}", ssk.public_key),
                                ssk.public_key.clone(),
                            )],
                        )
                    } else if let Some(master) = my_key("master").filter(|m| m.public_key == key_id)
                    {
                        // A master key is signed by the user's devices.
                        let signers = devices
                            .iter()
                            .filter(|((u, _), _)| u == me)
                            .filter_map(|((_, d), keys)| {
                                Some((format!("ed25519:{d}"), ed25519_key(keys, d)?.to_owned()))
                            })
                            .collect();
                        (
                            serde_json::from_str(&master.json).unwrap_or(Value::Null),
                            signers,
                        )
                    } else {
                        return Err(("M_NOT_FOUND", format!("you have no key {key_id}")));
                    }
                } else {
                    let master = cross
                        .get(&(user.clone(), "master".to_owned()))
                        .filter(|m| m.public_key == key_id)
                        .ok_or(("M_NOT_FOUND", format!("{user} has no master key {key_id}")))?;
                    let usk = my_key("user_signing")
                        .ok_or(("M_INVALID_SIGNATURE", "you have no user-signing key".into()))?;
                    (
                        serde_json::from_str(&master.json).unwrap_or(Value::Null),
                        vec![(
                            format!("ed25519:{}", usk.public_key),
                            usk.public_key.clone(),
                        )],
                    )
                };
                let offered = object["signatures"][me]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                let mut good = Vec::new();
                for (signer_key_id, public) in &signers {
                    let Some(signature) = offered.get(signer_key_id).and_then(Value::as_str) else {
                        continue;
                    };
                    if !e2ee::verify(&stored, public, signature) {
                        return Err((
                            "M_INVALID_SIGNATURE",
                            format!("the signature by {signer_key_id} does not verify"),
                        ));
                    }
                    good.push(KeySignature {
                        target_user: user.clone(),
                        target_key: key_id.clone(),
                        signer_user: me.to_owned(),
                        signer_key_id: signer_key_id.clone(),
                        signature: signature.to_owned(),
                    });
                }
                if good.is_empty() {
                    return Err((
                        "M_INVALID_SIGNATURE",
                        "no signature by a key that may sign this".into(),
                    ));
                }
                Ok(good)
            })();
            match outcome {
                Ok(good) => {
                    changed.insert(user.clone());
                    accepted.extend(good);
                }
                Err((errcode, error)) => {
                    failures
                        .entry(user)
                        .or_default()
                        .insert(key_id, json!({ "errcode": errcode, "error": error }));
                }
            }
        }
        if !accepted.is_empty() {
            self.store.add_key_signatures(&accepted).await?;
        }
        for user in changed {
            self.device_lists.changed(&user).await?;
        }
        Ok(json!({ "failures": failures }))
    }

    /// `PUT /sendToDevice/{eventType}/{txnId}`: queues each message for its device (`*`:
    /// every device of the user). A transaction the sending device already used is not
    /// delivered again.
    pub async fn send_to_device(
        &self,
        caller: &Caller,
        event_type: &str,
        txn_id: &str,
        messages: Vec<(String, String, Value)>,
    ) -> Result<()> {
        let mut queued = Vec::new();
        let mut recipients = BTreeSet::new();
        for (user, device, content) in messages {
            let content = content.to_string();
            if content.len() > MAX_TO_DEVICE_BYTES {
                return Err(Error::TooLarge {
                    limit: MAX_TO_DEVICE_BYTES as u64,
                });
            }
            let Some(localpart) = self.local_part(&user) else {
                continue;
            };
            let known: Vec<String> = self
                .store
                .devices(localpart)
                .await?
                .into_iter()
                .map(|d| d.device_id)
                .collect();
            let targets: Vec<String> = if device == "*" {
                known
            } else if known.contains(&device) {
                vec![device]
            } else {
                Vec::new()
            };
            for target in targets {
                if self.store.to_device_pending(&user, &target).await? >= MAX_TO_DEVICE_QUEUE {
                    return Err(Error::LimitExceeded {
                        retry_after_ms: 5_000,
                    });
                }
                queued.push((user.clone(), target, content.clone()));
            }
            recipients.insert(user);
            if queued.len() > MAX_TO_DEVICE_MESSAGES {
                return Err(Error::InvalidParam(format!(
                    "at most {MAX_TO_DEVICE_MESSAGES} to-device messages per request"
                )));
            }
        }
        self.store
            .append(WriteOp::ToDevice {
                sender: caller.user_id.to_string(),
                event_type: event_type.to_owned(),
                messages: queued,
                txn: Some((caller.device_id.to_string(), txn_id.to_owned())),
            })
            .await?;
        self.notifier
            .notify(&mut recipients.iter().map(String::as_str));
        Ok(())
    }

    /// The caller's device's to-device messages for a sync: those its last token did not
    /// acknowledge are deleted, then up to a batch of newer ones (up to `until`) are
    /// returned with the position the next token acknowledges.
    pub async fn inbox(
        &self,
        caller: &Caller,
        acknowledged: StreamPos,
        until: StreamPos,
    ) -> Result<(Vec<Value>, StreamPos)> {
        let user = caller.user_id.as_str();
        let device = caller.device_id.as_str();
        self.store
            .delete_to_device(user, device, acknowledged)
            .await?;
        let messages = self
            .store
            .to_device_messages(user, device, acknowledged, until, TO_DEVICE_PER_SYNC)
            .await?;
        let delivered = if messages.len() == TO_DEVICE_PER_SYNC as usize {
            messages.last().map_or(until, |m| m.stream_pos)
        } else {
            until
        };
        let events = messages
            .into_iter()
            .map(|m| {
                json!({
                    "sender": m.sender,
                    "type": m.event_type,
                    "content": serde_json::from_str::<Value>(&m.content).unwrap_or(Value::Null),
                })
            })
            .collect();
        Ok((events, delivered))
    }
}

/// The localpart of a user of `server_name` (`@alice:example.org:8448` → `alice`: a
/// localpart has no colon, a server name may); `None` for anyone else.
fn local_part<'a>(user_id: &'a str, server_name: &str) -> Option<&'a str> {
    let (localpart, server) = user_id.strip_prefix('@')?.split_once(':')?;
    (server == server_name).then_some(localpart)
}

/// Records, under the user's server name, that keys of users on other servers cannot be
/// had: Converge does not federate.
fn not_federated(failures: &mut Map<String, Value>, user_id: &str) {
    if let Some((_, server)) = user_id.split_once(':') {
        failures.insert(
            server.to_owned(),
            json!({ "errcode": "M_NOT_FOUND", "error": "this server does not federate" }),
        );
    }
}

/// Adds signatures uploaded later to a key's own `signatures`.
fn merge_signatures(key: &mut Value, extra: Option<&Vec<KeySignature>>) {
    let Some(extra) = extra else { return };
    if !key["signatures"].is_object() {
        key["signatures"] = json!({});
    }
    for signature in extra {
        if !key["signatures"][&signature.signer_user].is_object() {
            key["signatures"][&signature.signer_user] = json!({});
        }
        key["signatures"][&signature.signer_user][&signature.signer_key_id] =
            json!(signature.signature);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_users_are_found_with_a_port_in_the_server_name() {
        assert_eq!(
            local_part("@alice:example.org:8448", "example.org:8448"),
            Some("alice")
        );
        assert_eq!(
            local_part("@alice:example.org", "example.org"),
            Some("alice")
        );
        assert_eq!(local_part("@alice:example.org", "example.org:8448"), None);
        assert_eq!(
            local_part("@alice:other.org:8448", "example.org:8448"),
            None
        );
        assert_eq!(local_part("alice", "example.org"), None);
        let mut failures = Map::new();
        not_federated(&mut failures, "@bob:other.org:8448");
        assert!(failures.contains_key("other.org:8448"), "{failures:?}");
    }
}
