//! The stored form of a room event, and the stream position that orders everything.

use serde::{Deserialize, Serialize};

/// A position in the server's single ordered stream.
///
/// Every write a user can observe through `/sync` gets one, assigned by the store's ordered
/// writer; a sync token is a stream position. Positions only grow.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct StreamPos(pub i64);

/// A room event as it is persisted: the indexed fields plus the full signed JSON.
///
/// `json` is the canonical JSON of the signed PDU (after redaction, if it was redacted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PersistedEvent {
    pub event_id: String,
    pub room_id: String,
    pub sender: String,
    pub event_type: String,
    /// `Some` for state events, including the empty state key.
    pub state_key: Option<String>,
    /// Milliseconds since the Unix epoch, as chosen by the origin server.
    pub origin_server_ts: i64,
    pub json: String,
    /// Position in the room's DAG; one more than the deepest previous event.
    pub depth: i64,
    /// `unsigned` data fixed when the event was written (`prev_content`, `replaces_state`),
    /// as a JSON object.
    pub unsigned: Option<String>,
    /// The sending device and its transaction key, for idempotent sends.
    pub txn: Option<(String, String)>,
    /// The event this one relates to and how (`m.relates_to`), for `/relations`.
    pub relation: Option<(String, String)>,
    /// The client form of the redaction that redacted this event, if any.
    pub redacted_because: Option<String>,
}
