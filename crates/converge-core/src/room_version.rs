//! The room versions Converge can create and host, and their link to ruma's per-version rules.
//!
//! Spec: <https://spec.matrix.org/latest/rooms/>. Only versions 10 and 11 are supported: both
//! require integer power levels and share one set of authorization rules apart from how the
//! room creator is found.

use ruma::RoomVersionId;
use ruma::room_version_rules::RoomVersionRules;

/// A room version whose rules Converge implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoomVersion {
    V10,
    V11,
}

impl RoomVersion {
    /// The version new rooms get when the client does not ask for one.
    pub const DEFAULT: RoomVersion = RoomVersion::V10;

    /// Every version Converge accepts, oldest first.
    pub const SUPPORTED: &[RoomVersion] = &[RoomVersion::V10, RoomVersion::V11];

    /// Parses the identifier used in `m.room.create` content and the client API.
    ///
    /// Returns `None` for any version Converge does not support, including valid older ones.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "10" => Some(RoomVersion::V10),
            "11" => Some(RoomVersion::V11),
            _ => None,
        }
    }

    /// The identifier as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomVersion::V10 => "10",
            RoomVersion::V11 => "11",
        }
    }

    /// The same version as ruma's identifier type.
    pub fn ruma_id(self) -> RoomVersionId {
        match self {
            RoomVersion::V10 => RoomVersionId::V10,
            RoomVersion::V11 => RoomVersionId::V11,
        }
    }

    /// Ruma's rules for this version, which drive redaction, hashing and event ID computation.
    pub fn ruma_rules(self) -> RoomVersionRules {
        match self {
            RoomVersion::V10 => RoomVersionRules::V10,
            RoomVersion::V11 => RoomVersionRules::V11,
        }
    }

    /// Whether the room creator is the create event's `sender` rather than `content.creator`.
    ///
    /// Room version 11 dropped `creator` from the create event's content.
    pub fn creator_is_create_sender(self) -> bool {
        matches!(self, RoomVersion::V11)
    }
}

impl std::fmt::Display for RoomVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_every_supported_version() {
        for &v in RoomVersion::SUPPORTED {
            assert_eq!(RoomVersion::parse(v.as_str()), Some(v));
            assert_eq!(v.ruma_id().as_str(), v.as_str());
        }
    }

    #[test]
    fn parse_rejects_unsupported_versions() {
        for s in ["1", "9", "12", "", "10 ", "v10"] {
            assert_eq!(RoomVersion::parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn default_is_supported() {
        assert!(RoomVersion::SUPPORTED.contains(&RoomVersion::DEFAULT));
    }

    #[test]
    fn ruma_rules_match_the_version() {
        // Version 11 keeps the whole create content on redaction; version 10 does not.
        assert!(
            !RoomVersion::V10
                .ruma_rules()
                .redaction
                .keep_room_create_content
        );
        assert!(
            RoomVersion::V11
                .ruma_rules()
                .redaction
                .keep_room_create_content
        );
        assert!(
            RoomVersion::V11
                .ruma_rules()
                .authorization
                .use_room_create_sender
        );
        assert!(
            !RoomVersion::V10
                .ruma_rules()
                .authorization
                .use_room_create_sender
        );
    }
}
