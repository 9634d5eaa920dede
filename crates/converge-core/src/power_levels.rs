//! A room's power levels, parsed strictly from `m.room.power_levels` content with the spec's defaults.
//!
//! Spec: the `m.room.power_levels` event in the client-server API, and the integer-only rule that
//! room version 10 introduced. The raw, explicitly present values are kept alongside the
//! defaulted accessors because the authorization rules compare what an event *changes*, and a
//! value that is absent differs from one that is explicitly set to its default.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::auth::AuthError;

/// The level of every user when there is no `users` entry and no `users_default`.
pub const DEFAULT_USERS_DEFAULT: i64 = 0;
/// The level the room creator has while the room has no `m.room.power_levels` event.
pub const DEFAULT_CREATOR_LEVEL: i64 = 100;
/// The level needed to send a message event when neither `events` nor `events_default` says.
pub const DEFAULT_EVENTS_DEFAULT: i64 = 0;
/// The level needed to send a state event when neither `events` nor `state_default` says.
///
/// Older spec text said 0 when the room had no power levels event at all; the current spec
/// (and Synapse) use 50 in both cases, so this does too.
pub const DEFAULT_STATE_DEFAULT: i64 = 50;
/// The default `ban`, `kick` and `redact` levels.
pub const DEFAULT_MODERATION_LEVEL: i64 = 50;
/// The default `invite` level.
pub const DEFAULT_INVITE: i64 = 0;
/// The default level for any `notifications` key; the spec defines only `room`.
pub const DEFAULT_NOTIFICATION_LEVEL: i64 = 50;

/// Canonical JSON only allows integers in `[-(2**53)+1, (2**53)-1]`.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The top-level integer fields of power levels content, in the order the spec lists them.
pub(crate) const LEVEL_FIELDS: [&str; 7] = [
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
];

/// The power levels in force in a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PowerLevels {
    /// Whether these came from an `m.room.power_levels` event rather than the no-event defaults.
    pub(crate) from_event: bool,
    /// The explicitly present top-level fields, indexed like [`LEVEL_FIELDS`].
    pub(crate) fields: [Option<i64>; 7],
    pub(crate) users: BTreeMap<String, i64>,
    pub(crate) events: BTreeMap<String, i64>,
    pub(crate) notifications: BTreeMap<String, i64>,
}

impl PowerLevels {
    /// Builds the power levels from the current `m.room.power_levels` content, if the room has one.
    ///
    /// `creator` is the room creator, who has level 100 while the room has no power levels
    /// event. Content whose levels are not all JSON integers is an error, since room versions 10
    /// and up reject such events.
    pub fn from_content(content: Option<&Value>, creator: &str) -> Result<Self, AuthError> {
        let Some(content) = content else {
            return Ok(PowerLevels {
                from_event: false,
                fields: [None; 7],
                users: BTreeMap::from([(creator.to_owned(), DEFAULT_CREATOR_LEVEL)]),
                events: BTreeMap::new(),
                notifications: BTreeMap::new(),
            });
        };
        let object = content
            .as_object()
            .ok_or_else(|| AuthError::new("power levels content is not a JSON object"))?;

        let mut fields = [None; 7];
        for (slot, name) in fields.iter_mut().zip(LEVEL_FIELDS) {
            if let Some(value) = object.get(name) {
                *slot = Some(integer(value).ok_or_else(|| {
                    AuthError::new(format!("power level `{name}` is not an integer"))
                })?);
            }
        }
        let events = level_map(object, "events")?;
        let notifications = level_map(object, "notifications")?;
        let users = level_map(object, "users")?;
        if let Some(bad) = users
            .keys()
            .find(|user| <&ruma::UserId>::try_from(user.as_str()).is_err())
        {
            return Err(AuthError::new(format!(
                "power levels `users` key {bad:?} is not a valid user ID"
            )));
        }

        Ok(PowerLevels {
            from_event: true,
            fields,
            users,
            events,
            notifications,
        })
    }

    fn field(&self, name: &str) -> Option<i64> {
        let index = LEVEL_FIELDS.iter().position(|f| *f == name)?;
        self.fields[index]
    }

    /// The power level of `user`.
    pub fn user_level(&self, user: &str) -> i64 {
        self.users
            .get(user)
            .copied()
            .or(self.field("users_default"))
            .unwrap_or(DEFAULT_USERS_DEFAULT)
    }

    /// The level needed to send an event of `event_type`.
    ///
    /// The `events` map wins; otherwise state events need `state_default` and other events
    /// need `events_default`.
    pub fn event_level(&self, event_type: &str, is_state: bool) -> i64 {
        if let Some(&level) = self.events.get(event_type) {
            return level;
        }
        if is_state {
            self.field("state_default").unwrap_or(DEFAULT_STATE_DEFAULT)
        } else {
            self.field("events_default")
                .unwrap_or(DEFAULT_EVENTS_DEFAULT)
        }
    }

    /// The level needed to ban a user (and to lift a ban).
    pub fn ban(&self) -> i64 {
        self.field("ban").unwrap_or(DEFAULT_MODERATION_LEVEL)
    }

    /// The level needed to kick a user.
    pub fn kick(&self) -> i64 {
        self.field("kick").unwrap_or(DEFAULT_MODERATION_LEVEL)
    }

    /// The level needed to redact another user's events.
    pub fn redact(&self) -> i64 {
        self.field("redact").unwrap_or(DEFAULT_MODERATION_LEVEL)
    }

    /// The level needed to invite a user.
    pub fn invite(&self) -> i64 {
        self.field("invite").unwrap_or(DEFAULT_INVITE)
    }

    /// The level needed to trigger the notification `key`, such as `room` for `@room`.
    pub fn notification_level(&self, key: &str) -> i64 {
        self.notifications
            .get(key)
            .copied()
            .unwrap_or(DEFAULT_NOTIFICATION_LEVEL)
    }

    /// Whether these levels came from an `m.room.power_levels` event.
    pub fn has_event(&self) -> bool {
        self.from_event
    }
}

/// The value as an integer, if it is a JSON integer within canonical JSON's range.
///
/// Strings such as `"50"` and floats such as `50.0` are refused: room version 10 removed the
/// old leniency.
fn integer(value: &Value) -> Option<i64> {
    let n = value.as_i64()?;
    (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER)
        .contains(&n)
        .then_some(n)
}

/// Parses an optional object of integer levels, such as `events`, `users` or `notifications`.
fn level_map(object: &Map<String, Value>, name: &str) -> Result<BTreeMap<String, i64>, AuthError> {
    let Some(value) = object.get(name) else {
        return Ok(BTreeMap::new());
    };
    let map = value
        .as_object()
        .ok_or_else(|| AuthError::new(format!("power levels `{name}` is not an object")))?;
    map.iter()
        .map(|(key, value)| {
            integer(value).map(|n| (key.clone(), n)).ok_or_else(|| {
                AuthError::new(format!("power levels `{name}.{key}` is not an integer"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CREATOR: &str = "@creator:example.org";

    #[test]
    fn no_event_gives_creator_100_and_spec_defaults() {
        let pl = PowerLevels::from_content(None, CREATOR).unwrap();
        assert!(!pl.has_event());
        assert_eq!(pl.user_level(CREATOR), 100);
        assert_eq!(pl.user_level("@other:example.org"), 0);
        assert_eq!(pl.event_level("m.room.name", true), 50);
        assert_eq!(pl.event_level("m.room.message", false), 0);
        assert_eq!(
            (pl.ban(), pl.kick(), pl.redact(), pl.invite()),
            (50, 50, 50, 0)
        );
        assert_eq!(pl.notification_level("room"), 50);
    }

    #[test]
    fn empty_event_gives_defaults_and_creator_loses_implicit_100() {
        let pl = PowerLevels::from_content(Some(&json!({})), CREATOR).unwrap();
        assert!(pl.has_event());
        assert_eq!(pl.user_level(CREATOR), 0);
        assert_eq!(pl.event_level("m.room.name", true), 50);
        assert_eq!(pl.event_level("m.room.message", false), 0);
        assert_eq!(
            (pl.ban(), pl.kick(), pl.redact(), pl.invite()),
            (50, 50, 50, 0)
        );
    }

    #[test]
    fn explicit_values_override_defaults() {
        let content = json!({
            "users": {"@a:example.org": 75},
            "users_default": 5,
            "events": {"m.room.name": 20, "m.reaction": 3},
            "events_default": 10,
            "state_default": 60,
            "ban": 1, "kick": 2, "redact": 3, "invite": 4,
            "notifications": {"room": 30},
        });
        let pl = PowerLevels::from_content(Some(&content), CREATOR).unwrap();
        assert_eq!(pl.user_level("@a:example.org"), 75);
        assert_eq!(pl.user_level(CREATOR), 5);
        assert_eq!(pl.event_level("m.room.name", true), 20);
        assert_eq!(pl.event_level("m.reaction", false), 3);
        assert_eq!(pl.event_level("m.room.topic", true), 60);
        assert_eq!(pl.event_level("m.room.message", false), 10);
        assert_eq!(
            (pl.ban(), pl.kick(), pl.redact(), pl.invite()),
            (1, 2, 3, 4)
        );
        assert_eq!(pl.notification_level("room"), 30);
    }

    #[test]
    fn non_integer_values_are_errors() {
        let bad = [
            json!({"ban": "50"}),
            json!({"state_default": 50.5}),
            json!({"kick": 50.0}),
            json!({"invite": null}),
            json!({"users_default": true}),
            json!({"events": {"m.room.name": "50"}}),
            json!({"events": []}),
            json!({"notifications": {"room": 1.5}}),
            json!({"users": {"@a:example.org": "100"}}),
            json!({"users": {"not-a-user": 100}}),
            json!({"users": {"@a:example.org": 9_007_199_254_740_992_i64}}),
            json!("not an object"),
        ];
        for content in bad {
            assert!(
                PowerLevels::from_content(Some(&content), CREATOR).is_err(),
                "{content} should be refused"
            );
        }
    }

    #[test]
    fn negative_and_boundary_integers_are_accepted() {
        let content = json!({"users": {"@a:example.org": -5}, "ban": 9_007_199_254_740_991_i64});
        let pl = PowerLevels::from_content(Some(&content), CREATOR).unwrap();
        assert_eq!(pl.user_level("@a:example.org"), -5);
        assert_eq!(pl.ban(), 9_007_199_254_740_991);
    }
}
