//! Building, hashing and signing room events (PDUs), and turning them into the form
//! clients see.
//!
//! Spec: <https://spec.matrix.org/v1.12/server-server-api/#pdus> for the format and
//! <https://spec.matrix.org/v1.12/server-server-api/#calculating-the-reference-hash-for-an-event>
//! for event IDs. Event IDs are reference hashes and every event carries a content hash and
//! the server's signature, so federation can be added without rewriting history.

use ruma::canonical_json::{CanonicalJsonObject, CanonicalJsonValue, redact};
use ruma::signatures::{Ed25519KeyPair, hash_and_sign_event, reference_hash};
use serde_json::Value;
use thiserror::Error;

use crate::RoomVersion;

/// The largest a PDU may be, in bytes of canonical JSON (the spec's limit).
pub const MAX_PDU_BYTES: usize = 65_536;

/// Fields of a PDU that clients never see.
const SERVER_ONLY_FIELDS: &[&str] = &[
    "auth_events",
    "prev_events",
    "depth",
    "hashes",
    "signatures",
    "origin",
    "prev_state",
];

#[derive(Debug, Error)]
pub enum PduError {
    #[error("the event is larger than {MAX_PDU_BYTES} bytes")]
    TooLarge,
    #[error("the event content is not a JSON object")]
    ContentNotObject,
    #[error("the event cannot be represented as canonical JSON: {0}")]
    NotCanonical(String),
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Everything that goes into a new event except what signing adds.
#[derive(Clone, Debug)]
pub struct EventDraft<'a> {
    pub room_id: &'a str,
    pub sender: &'a str,
    pub event_type: &'a str,
    pub state_key: Option<&'a str>,
    pub content: &'a Value,
    pub prev_events: &'a [String],
    pub auth_events: &'a [String],
    pub depth: i64,
    pub origin_server_ts: i64,
    /// For redactions: the event redacted.
    pub redacts: Option<&'a str>,
}

/// A hashed and signed event.
#[derive(Clone, Debug)]
pub struct SignedPdu {
    pub event_id: String,
    /// Canonical JSON of the whole PDU.
    pub json: String,
}

fn canonical(value: &Value) -> Result<CanonicalJsonValue, PduError> {
    CanonicalJsonValue::try_from(value.clone()).map_err(|e| PduError::NotCanonical(e.to_string()))
}

/// Builds the PDU for `draft`, adds its content hash and this server's signature, and
/// computes its event ID.
pub fn build(
    version: RoomVersion,
    draft: &EventDraft<'_>,
    server_name: &str,
    key: &Ed25519KeyPair,
) -> Result<SignedPdu, PduError> {
    if !draft.content.is_object() {
        return Err(PduError::ContentNotObject);
    }
    let mut content = draft.content.clone();
    // Room version 11 moved `redacts` into the content; older clients still read the
    // top-level key, which we keep too.
    if let (Some(redacts), RoomVersion::V11) = (draft.redacts, version) {
        content["redacts"] = Value::String(redacts.to_owned());
    }
    let ids = |ids: &[String]| {
        CanonicalJsonValue::Array(
            ids.iter()
                .cloned()
                .map(CanonicalJsonValue::String)
                .collect(),
        )
    };
    let mut object = CanonicalJsonObject::new();
    object.insert("auth_events".into(), ids(draft.auth_events));
    object.insert("content".into(), canonical(&content)?);
    let int = |n: i64| {
        ruma::Int::new(n)
            .map(CanonicalJsonValue::Integer)
            .ok_or_else(|| PduError::NotCanonical(format!("{n} is out of range")))
    };
    object.insert("depth".into(), int(draft.depth)?);
    object.insert("origin_server_ts".into(), int(draft.origin_server_ts)?);
    object.insert("prev_events".into(), ids(draft.prev_events));
    object.insert(
        "room_id".into(),
        CanonicalJsonValue::String(draft.room_id.to_owned()),
    );
    object.insert(
        "sender".into(),
        CanonicalJsonValue::String(draft.sender.to_owned()),
    );
    object.insert(
        "type".into(),
        CanonicalJsonValue::String(draft.event_type.to_owned()),
    );
    if let Some(state_key) = draft.state_key {
        object.insert(
            "state_key".into(),
            CanonicalJsonValue::String(state_key.to_owned()),
        );
    }
    if let Some(redacts) = draft.redacts {
        object.insert(
            "redacts".into(),
            CanonicalJsonValue::String(redacts.to_owned()),
        );
    }
    let rules = version.ruma_rules();
    hash_and_sign_event(server_name, key, &mut object, &rules.redaction).map_err(|e| match e {
        ruma::signatures::JsonError::PduTooLarge => PduError::TooLarge,
        other => PduError::Signing(other.to_string()),
    })?;
    let hash = reference_hash(&object, &rules).map_err(|_| PduError::TooLarge)?;
    let json = CanonicalJsonValue::Object(object).to_string();
    if json.len() > MAX_PDU_BYTES {
        return Err(PduError::TooLarge);
    }
    Ok(SignedPdu {
        event_id: format!("${hash}"),
        json,
    })
}

/// Applies the room version's redaction algorithm to a stored PDU.
pub fn redact_pdu(version: RoomVersion, pdu_json: &str) -> Result<String, PduError> {
    let value: Value =
        serde_json::from_str(pdu_json).map_err(|e| PduError::NotCanonical(e.to_string()))?;
    let CanonicalJsonValue::Object(object) = canonical(&value)? else {
        return Err(PduError::ContentNotObject);
    };
    let redacted = redact(object, &version.ruma_rules().redaction, None)
        .map_err(|e| PduError::NotCanonical(e.to_string()))?;
    Ok(CanonicalJsonValue::Object(redacted).to_string())
}

/// The client-server form of a stored PDU: server-only fields removed, `event_id` added,
/// and `unsigned` set to what the caller computed (age, transaction ID, previous content,
/// redaction).
pub fn client_event(
    event_id: &str,
    pdu_json: &str,
    unsigned: Option<Value>,
) -> Result<Value, PduError> {
    let mut value: Value =
        serde_json::from_str(pdu_json).map_err(|e| PduError::NotCanonical(e.to_string()))?;
    let object = value.as_object_mut().ok_or(PduError::ContentNotObject)?;
    for field in SERVER_ONLY_FIELDS {
        object.remove(*field);
    }
    object.insert("event_id".into(), Value::String(event_id.to_owned()));
    match unsigned {
        Some(unsigned) if unsigned.as_object().is_some_and(|o| !o.is_empty()) => {
            object.insert("unsigned".into(), unsigned);
        }
        _ => {
            object.remove("unsigned");
        }
    }
    Ok(value)
}

/// The canonical JSON size of an arbitrary value, for size checks before building.
pub fn canonical_len(value: &Value) -> Result<usize, PduError> {
    Ok(canonical(value)?.to_string().len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> Ed25519KeyPair {
        let der = Ed25519KeyPair::generate();
        Ed25519KeyPair::from_der(&der, "test".into()).unwrap()
    }

    fn draft(content: &Value) -> EventDraft<'_> {
        EventDraft {
            room_id: "!r:localhost",
            sender: "@a:localhost",
            event_type: "m.room.message",
            state_key: None,
            content,
            prev_events: &[],
            auth_events: &[],
            depth: 1,
            origin_server_ts: 1_700_000_000_000,
            redacts: None,
        }
    }

    #[test]
    fn events_are_hashed_signed_and_named_by_their_reference_hash() {
        let key = key();
        let content = json!({ "msgtype": "m.text", "body": "hi" });
        let pdu = build(RoomVersion::V10, &draft(&content), "localhost", &key).unwrap();
        assert!(
            pdu.event_id.starts_with('$') && pdu.event_id.len() == 44,
            "{}",
            pdu.event_id
        );
        assert!(
            !pdu.event_id.contains('+') && !pdu.event_id.contains('/'),
            "URL-safe alphabet"
        );
        let value: Value = serde_json::from_str(&pdu.json).unwrap();
        assert!(value["hashes"]["sha256"].is_string());
        assert!(value["signatures"]["localhost"]["ed25519:test"].is_string());
        // The same draft built again (new signature, same content) has the same ID: the
        // reference hash covers the redacted event, not the signatures.
        let again = build(RoomVersion::V10, &draft(&content), "localhost", &key).unwrap();
        assert_eq!(again.event_id, pdu.event_id);
        let other = json!({ "msgtype": "m.text", "body": "ho" });
        assert_ne!(
            build(RoomVersion::V10, &draft(&other), "localhost", &key)
                .unwrap()
                .event_id,
            pdu.event_id
        );
    }

    #[test]
    fn oversized_and_malformed_content_is_refused() {
        let key = key();
        let big = json!({ "body": "x".repeat(MAX_PDU_BYTES) });
        assert!(matches!(
            build(RoomVersion::V10, &draft(&big), "localhost", &key),
            Err(PduError::TooLarge)
        ));
        let not_object = json!("text");
        assert!(matches!(
            build(RoomVersion::V10, &draft(&not_object), "localhost", &key),
            Err(PduError::ContentNotObject)
        ));
        let float = json!({ "n": 1.5 });
        assert!(matches!(
            build(RoomVersion::V10, &draft(&float), "localhost", &key),
            Err(PduError::NotCanonical(_))
        ));
    }

    #[test]
    fn v11_redactions_carry_redacts_in_content() {
        let key = key();
        let content = json!({});
        let mut d = draft(&content);
        d.event_type = "m.room.redaction";
        d.redacts = Some("$target");
        let v11: Value =
            serde_json::from_str(&build(RoomVersion::V11, &d, "localhost", &key).unwrap().json)
                .unwrap();
        assert_eq!(v11["content"]["redacts"], "$target");
        assert_eq!(v11["redacts"], "$target");
        let v10: Value =
            serde_json::from_str(&build(RoomVersion::V10, &d, "localhost", &key).unwrap().json)
                .unwrap();
        assert!(v10["content"].get("redacts").is_none());
        assert_eq!(v10["redacts"], "$target");
    }

    #[test]
    fn redaction_keeps_only_what_the_version_allows() {
        let key = key();
        let content = json!({ "msgtype": "m.text", "body": "secret" });
        let pdu = build(RoomVersion::V10, &draft(&content), "localhost", &key).unwrap();
        let redacted: Value =
            serde_json::from_str(&redact_pdu(RoomVersion::V10, &pdu.json).unwrap()).unwrap();
        assert_eq!(redacted["content"], json!({}));
        assert_eq!(redacted["sender"], "@a:localhost");
        let topic = json!({ "topic": "t" });
        let mut d = draft(&topic);
        d.event_type = "m.room.join_rules";
        let join_rules = json!({ "join_rule": "public", "extra": 1 });
        d.content = &join_rules;
        d.state_key = Some("");
        let pdu = build(RoomVersion::V10, &d, "localhost", &key).unwrap();
        let redacted: Value =
            serde_json::from_str(&redact_pdu(RoomVersion::V10, &pdu.json).unwrap()).unwrap();
        assert_eq!(redacted["content"], json!({ "join_rule": "public" }));
    }

    #[test]
    fn clients_see_no_server_fields() {
        let key = key();
        let content = json!({ "body": "hi" });
        let pdu = build(RoomVersion::V10, &draft(&content), "localhost", &key).unwrap();
        let event = client_event(&pdu.event_id, &pdu.json, Some(json!({ "age": 5 }))).unwrap();
        for field in SERVER_ONLY_FIELDS {
            assert!(event.get(*field).is_none(), "{field}");
        }
        assert_eq!(event["event_id"], pdu.event_id);
        assert_eq!(event["unsigned"]["age"], 5);
        assert_eq!(event["content"]["body"], "hi");
        let bare = client_event(&pdu.event_id, &pdu.json, Some(json!({}))).unwrap();
        assert!(bare.get("unsigned").is_none());
    }
}
