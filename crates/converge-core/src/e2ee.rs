//! The rules of the server's part of end-to-end encryption, without I/O: checking the
//! ed25519 signatures on uploaded keys, reading key IDs, and which backed-up room key
//! session is better than another.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#end-to-end-encryption> and
//! <https://spec.matrix.org/v1.16/client-server-api/#server-side-key-backups>.

use ruma::CanonicalJsonObject;
use ruma::SigningKeyAlgorithm;
use ruma::serde::Base64;
use ruma::signatures::{to_canonical_json_string_for_signing, verify_canonical_json_bytes};
use serde_json::Value;

/// Whether `object` carries a valid ed25519 signature by `signer` under `key_id`
/// (`ed25519:<id>`) for the unpadded base64 `public_key`. The signature covers the
/// object's canonical JSON without `signatures` and `unsigned`.
pub fn signed_by(object: &Value, signer: &str, key_id: &str, public_key: &str) -> bool {
    let Some(signature) = object["signatures"][signer][key_id].as_str() else {
        return false;
    };
    verify(object, public_key, signature)
}

/// Whether `signature` (unpadded base64) over `object` verifies with `public_key`.
pub fn verify(object: &Value, public_key: &str, signature: &str) -> bool {
    let Ok(canonical) = serde_json::from_value::<CanonicalJsonObject>(object.clone()) else {
        return false;
    };
    let Ok(signed) = to_canonical_json_string_for_signing(&canonical) else {
        return false;
    };
    let (Ok(key), Ok(signature)) = (
        Base64::<ruma::serde::base64::Standard>::parse(public_key),
        Base64::<ruma::serde::base64::Standard>::parse(signature),
    ) else {
        return false;
    };
    verify_canonical_json_bytes(
        &SigningKeyAlgorithm::Ed25519,
        key.as_bytes(),
        signature.as_bytes(),
        signed.as_bytes(),
    )
    .is_ok()
}

/// The ed25519 public key an object of keys names for `id` (`keys["ed25519:<id>"]`).
pub fn ed25519_key<'a>(keys: &'a Value, id: &str) -> Option<&'a str> {
    keys["keys"][format!("ed25519:{id}")].as_str()
}

/// The only key of a cross-signing key object (`keys: {"ed25519:<pk>": "<pk>"}`): its ID
/// and the public key.
pub fn cross_signing_public_key(key: &Value) -> Option<(String, String)> {
    let keys = key["keys"].as_object()?;
    if keys.len() != 1 {
        return None;
    }
    let (id, public) = keys.iter().next()?;
    let public = public.as_str()?;
    let name = id.strip_prefix("ed25519:")?;
    (name == public).then(|| (id.clone(), public.to_owned()))
}

/// `algorithm:key_id` split in two.
pub fn split_key_id(id: &str) -> Option<(&str, &str)> {
    id.split_once(':')
        .filter(|(algorithm, key)| !algorithm.is_empty() && !key.is_empty())
}

/// The parts of a backed-up session that decide which copy is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupRank {
    pub is_verified: bool,
    pub first_message_index: i64,
    pub forwarded_count: i64,
}

/// Whether a newly uploaded session replaces the stored one: a verified one beats an
/// unverified one; then the lower first message index wins (it decrypts more); then the
/// lower forwarded count. Equal ones keep what is stored.
pub fn backup_replaces(new: BackupRank, stored: BackupRank) -> bool {
    if new.is_verified != stored.is_verified {
        return new.is_verified;
    }
    if new.first_message_index != stored.first_message_index {
        return new.first_message_index < stored.first_message_index;
    }
    new.forwarded_count < stored.forwarded_count
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::signatures::{Ed25519KeyPair, KeyPair};
    use serde_json::json;

    /// Signs `object` as `signer` with `key_id`, as a client would.
    fn sign(object: &mut Value, pair: &Ed25519KeyPair, signer: &str, key_id: &str) {
        let canonical: CanonicalJsonObject = serde_json::from_value(object.clone()).unwrap();
        let text = to_canonical_json_string_for_signing(&canonical).unwrap();
        let signature = pair.sign(text.as_bytes());
        let encoded =
            Base64::<ruma::serde::base64::Standard>::new(signature.as_bytes().to_vec()).encode();
        object["signatures"][signer][key_id] = json!(encoded);
    }

    fn pair() -> Ed25519KeyPair {
        let document = Ed25519KeyPair::generate();
        Ed25519KeyPair::from_der(&document, "1".into()).unwrap()
    }

    fn public(pair: &Ed25519KeyPair) -> String {
        Base64::<ruma::serde::base64::Standard>::new(pair.public_key().to_vec()).encode()
    }

    #[test]
    fn signatures_verify_only_for_their_key_and_content() {
        let (alice, mallory) = (pair(), pair());
        let mut keys = json!({
            "user_id": "@a:x", "device_id": "DEV",
            "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
            "keys": { "ed25519:DEV": public(&alice), "curve25519:DEV": "c" },
            "unsigned": { "device_display_name": "ignored by the signature" },
        });
        sign(&mut keys, &alice, "@a:x", "ed25519:DEV");
        let key = ed25519_key(&keys, "DEV").unwrap().to_owned();
        assert!(signed_by(&keys, "@a:x", "ed25519:DEV", &key));
        assert!(
            !signed_by(&keys, "@a:x", "ed25519:DEV", &public(&mallory)),
            "another key"
        );
        assert!(
            !signed_by(&keys, "@b:x", "ed25519:DEV", &key),
            "another signer"
        );
        let mut changed = keys.clone();
        changed["keys"]["curve25519:DEV"] = json!("d");
        assert!(
            !signed_by(&changed, "@a:x", "ed25519:DEV", &key),
            "content changed"
        );
        let mut unsigned = keys.clone();
        unsigned["unsigned"] = json!({ "x": 1 });
        assert!(
            signed_by(&unsigned, "@a:x", "ed25519:DEV", &key),
            "unsigned is not signed"
        );
        assert!(!verify(&keys, "not base64!", "AAAA"));
        assert!(!verify(&json!([1, 2]), &key, "AAAA"), "not an object");
    }

    #[test]
    fn cross_signing_keys_name_their_one_key() {
        let ok = json!({ "keys": { "ed25519:PK": "PK" }, "usage": ["master"], "user_id": "@a:x" });
        assert_eq!(
            cross_signing_public_key(&ok),
            Some(("ed25519:PK".into(), "PK".into()))
        );
        for bad in [
            json!({ "keys": {} }),
            json!({ "keys": { "ed25519:PK": "OTHER" } }),
            json!({ "keys": { "curve25519:PK": "PK" } }),
            json!({ "keys": { "ed25519:A": "A", "ed25519:B": "B" } }),
        ] {
            assert_eq!(cross_signing_public_key(&bad), None, "{bad}");
        }
        assert_eq!(
            split_key_id("signed_curve25519:AAAQ"),
            Some(("signed_curve25519", "AAAQ"))
        );
        assert_eq!(split_key_id("nocolon"), None);
        assert_eq!(split_key_id(":x"), None);
    }

    #[test]
    fn backup_keeps_the_better_session() {
        let rank = |v, i, f| BackupRank {
            is_verified: v,
            first_message_index: i,
            forwarded_count: f,
        };
        let cases = [
            (
                rank(true, 9, 9),
                rank(false, 0, 0),
                true,
                "verified beats unverified",
            ),
            (
                rank(false, 0, 0),
                rank(true, 9, 9),
                false,
                "unverified never beats verified",
            ),
            (
                rank(false, 1, 5),
                rank(false, 2, 0),
                true,
                "lower index wins",
            ),
            (
                rank(false, 3, 0),
                rank(false, 2, 0),
                false,
                "higher index loses",
            ),
            (
                rank(true, 2, 1),
                rank(true, 2, 2),
                true,
                "same index: fewer forwards win",
            ),
            (
                rank(true, 2, 2),
                rank(true, 2, 2),
                false,
                "equal keeps the stored",
            ),
        ];
        for (new, stored, replaces, why) in cases {
            assert_eq!(backup_replaces(new, stored), replaces, "{why}");
        }
    }
}
