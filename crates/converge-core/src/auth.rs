//! The Matrix room authorization rules for room versions 10 and 11, for a single server.
//!
//! Spec: <https://spec.matrix.org/latest/rooms/v10/#authorization-rules> and
//! <https://spec.matrix.org/latest/rooms/v11/#authorization-rules>. The two versions differ only
//! in the `m.room.create` rules and in who counts as the room creator.
//!
//! The rules are checked against the room state *before* the event. Converge hosts every room
//! alone, so the rules that exist to police other servers (signatures, duplicate or rejected
//! `auth_events`) are out of scope: the caller builds the auth events from its own state, using
//! [`auth_event_keys`]. Third-party invites are not supported and are refused. Restricted joins
//! (`restricted`, `knock_restricted`) follow the rules of room versions 8 and later: the join
//! names, in `join_authorised_via_users_server`, a joined user who may invite.

use std::collections::HashMap;

use serde_json::Value;
use thiserror::Error;

use crate::power_levels::{LEVEL_FIELDS, PowerLevels};
use crate::room_version::RoomVersion;

const CREATE: &str = "m.room.create";
const MEMBER: &str = "m.room.member";
const JOIN_RULES: &str = "m.room.join_rules";
const POWER_LEVELS: &str = "m.room.power_levels";
const THIRD_PARTY_INVITE: &str = "m.room.third_party_invite";

/// The room state an event is authorized against: the state before the event.
pub trait AuthState {
    /// The content and sender of the current state event (type, state_key), if any.
    fn state(&self, event_type: &str, state_key: &str) -> Option<StateRef<'_>>;
}

/// The parts of a current state event that the authorization rules read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateRef<'a> {
    pub sender: &'a str,
    pub content: &'a Value,
}

/// State keyed by `(type, state_key)`, holding `(sender, content)`.
impl AuthState for HashMap<(String, String), (String, Value)> {
    fn state(&self, event_type: &str, state_key: &str) -> Option<StateRef<'_>> {
        // Tuple keys of `String`s cannot be borrowed as `(&str, &str)`, so the lookup allocates.
        self.get(&(event_type.to_owned(), state_key.to_owned()))
            .map(|(sender, content)| StateRef { sender, content })
    }
}

/// The event being authorized.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub room_id: &'a str,
    pub event_type: &'a str,
    pub state_key: Option<&'a str>,
    pub sender: &'a str,
    pub content: &'a Value,
    /// True for the room's first event (no prev_events).
    pub is_first: bool,
}

/// Why an event was not authorized; the reason is meant for the client's `M_FORBIDDEN` error.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{reason}")]
pub struct AuthError {
    reason: String,
}

impl AuthError {
    pub fn new(reason: impl Into<String>) -> Self {
        AuthError {
            reason: reason.into(),
        }
    }

    /// The human-readable reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A user's membership of a room. A user with no member event has left (or never joined).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Membership {
    Join,
    Invite,
    Leave,
    Ban,
    Knock,
}

impl Membership {
    /// Parses `content.membership` of an `m.room.member` event.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "join" => Some(Membership::Join),
            "invite" => Some(Membership::Invite),
            "leave" => Some(Membership::Leave),
            "ban" => Some(Membership::Ban),
            "knock" => Some(Membership::Knock),
            _ => None,
        }
    }

    /// The value used in `content.membership`.
    pub fn as_str(self) -> &'static str {
        match self {
            Membership::Join => "join",
            Membership::Invite => "invite",
            Membership::Leave => "leave",
            Membership::Ban => "ban",
            Membership::Knock => "knock",
        }
    }
}

impl std::fmt::Display for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The current membership of `user`.
///
/// A missing member event, or one whose membership is unreadable, counts as `Leave`: state only
/// ever holds authorized member events, so the latter cannot happen for state Converge built.
pub fn membership(state: &impl AuthState, user: &str) -> Membership {
    state
        .state(MEMBER, user)
        .and_then(|s| s.content.get("membership")?.as_str())
        .and_then(Membership::parse)
        .unwrap_or(Membership::Leave)
}

/// The room creator: the create event's sender in v11, its `content.creator` in v10.
///
/// Returns `None` when the state has no create event. A v10 create event without a string
/// `creator` cannot pass the create rules, but falls back to the sender rather than failing.
pub fn room_creator(version: RoomVersion, state: &impl AuthState) -> Option<&str> {
    state
        .state(CREATE, "")
        .map(|create| creator_of(version, create))
}

fn creator_of<'a>(version: RoomVersion, create: StateRef<'a>) -> &'a str {
    if version.creator_is_create_sender() {
        return create.sender;
    }
    create
        .content
        .get("creator")
        .and_then(Value::as_str)
        .unwrap_or(create.sender)
}

/// The power levels in force: from the current `m.room.power_levels` event, or the defaults.
pub fn current_power_levels(
    version: RoomVersion,
    state: &impl AuthState,
) -> Result<PowerLevels, AuthError> {
    let creator = room_creator(version, state)
        .ok_or_else(|| AuthError::new("the room has no m.room.create event"))?;
    PowerLevels::from_content(state.state(POWER_LEVELS, "").map(|s| s.content), creator)
}

/// Whether `redactor` may redact an event sent by `original_sender`.
///
/// Anyone may redact their own events; redacting someone else's needs the `redact` level.
/// Converge is the only server in its rooms, so the spec's same-domain case needs no check.
pub fn may_redact(
    version: RoomVersion,
    state: &impl AuthState,
    redactor: &str,
    original_sender: &str,
) -> bool {
    if redactor == original_sender {
        return true;
    }
    current_power_levels(version, state)
        .map(|pl| pl.user_level(redactor) >= pl.redact())
        .unwrap_or(false)
}

/// The `(type, state_key)` pairs whose current state events are `event`'s `auth_events`.
///
/// Spec: "Auth events selection" in the server-server API. The create event has none.
pub fn auth_event_keys(event: &Candidate) -> Vec<(String, String)> {
    if event.event_type == CREATE {
        return Vec::new();
    }
    let mut keys = Vec::new();
    let mut push = |event_type: &str, state_key: &str| {
        let key = (event_type.to_owned(), state_key.to_owned());
        if !keys.contains(&key) {
            keys.push(key);
        }
    };
    push(CREATE, "");
    push(POWER_LEVELS, "");
    push(MEMBER, event.sender);

    if event.event_type == MEMBER
        && let Some(target) = event.state_key
    {
        push(MEMBER, target);
        let membership = event
            .content
            .get("membership")
            .and_then(Value::as_str)
            .and_then(Membership::parse);
        if matches!(
            membership,
            Some(Membership::Join | Membership::Invite | Membership::Knock)
        ) {
            push(JOIN_RULES, "");
        }
        if membership == Some(Membership::Invite)
            && let Some(token) = event
                .content
                .pointer("/third_party_invite/signed/token")
                .and_then(Value::as_str)
        {
            push(THIRD_PARTY_INVITE, token);
        }
        if membership == Some(Membership::Join)
            && let Some(via) = event
                .content
                .get("join_authorised_via_users_server")
                .and_then(Value::as_str)
        {
            push(MEMBER, via);
        }
    }
    keys
}

/// Checks `event` against the authorization rules of `version`, given the state before it.
pub fn check(
    version: RoomVersion,
    event: &Candidate,
    state: &impl AuthState,
) -> Result<(), AuthError> {
    // Rule 1.
    if event.event_type == CREATE {
        return check_create(version, event, state);
    }
    if event.is_first {
        return Err(AuthError::new(
            "the first event in a room must be m.room.create",
        ));
    }

    // Rule 2.4: the create event is always among the auth events when the state has one.
    let create = state
        .state(CREATE, "")
        .ok_or_else(|| AuthError::new("the room has no m.room.create event"))?;

    // Rule 3.
    if create.content.get("m.federate") == Some(&Value::Bool(false))
        && server_of(event.sender) != server_of(create.sender)
    {
        return Err(AuthError::new(
            "the room does not federate and the sender is on another server",
        ));
    }

    let creator = creator_of(version, create);
    let power =
        PowerLevels::from_content(state.state(POWER_LEVELS, "").map(|s| s.content), creator)?;

    // Rule 4.
    if event.event_type == MEMBER {
        return check_member(event, state, &power, creator);
    }

    // Rule 5.
    if membership(state, event.sender) != Membership::Join {
        return Err(AuthError::new("sender is not in the room"));
    }
    let sender_level = power.user_level(event.sender);

    // Rule 6.
    if event.event_type == THIRD_PARTY_INVITE {
        return require_level(sender_level, power.invite(), "invite users");
    }

    // Rule 7.
    let required = power.event_level(event.event_type, event.state_key.is_some());
    require_level(
        sender_level,
        required,
        &format!("send {}", event.event_type),
    )?;

    // Rule 8: user-keyed state belongs to that user alone.
    if let Some(state_key) = event.state_key
        && state_key.starts_with('@')
        && state_key != event.sender
    {
        return Err(AuthError::new(format!(
            "state key {state_key} is another user's ID"
        )));
    }

    // Rule 9.
    if event.event_type == POWER_LEVELS {
        return check_power_levels(event, &power, creator, sender_level);
    }

    // Rule 10.
    Ok(())
}

/// Rule 1: the create event.
fn check_create(
    version: RoomVersion,
    event: &Candidate,
    state: &impl AuthState,
) -> Result<(), AuthError> {
    if !event.is_first || state.state(CREATE, "").is_some() {
        return Err(AuthError::new(
            "m.room.create must be the first event in the room",
        ));
    }
    match (server_of(event.room_id), server_of(event.sender)) {
        (Some(room), Some(sender)) if room == sender => {}
        _ => {
            return Err(AuthError::new(
                "the room ID's domain does not match the sender's domain",
            ));
        }
    }
    if let Some(room_version) = event.content.get("room_version") {
        let parsed = room_version.as_str().and_then(RoomVersion::parse);
        match parsed {
            None => {
                return Err(AuthError::new(format!(
                    "unsupported room version {room_version}"
                )));
            }
            // The caller chose `version` from this content; a mismatch is a caller bug that
            // would otherwise apply one version's rules to another version's room.
            Some(parsed) if parsed != version => {
                return Err(AuthError::new(format!(
                    "room version {parsed} does not match the version {version} being checked"
                )));
            }
            Some(_) => {}
        }
    }
    if !version.creator_is_create_sender() && event.content.get("creator").is_none() {
        return Err(AuthError::new("m.room.create content has no creator"));
    }
    Ok(())
}

/// Rule 4: membership changes.
fn check_member(
    event: &Candidate,
    state: &impl AuthState,
    power: &PowerLevels,
    creator: &str,
) -> Result<(), AuthError> {
    let target = event
        .state_key
        .ok_or_else(|| AuthError::new("m.room.member event has no state key"))?;
    let wanted = event
        .content
        .get("membership")
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError::new("m.room.member event has no membership"))?;
    let sender = event.sender;
    let sender_membership = membership(state, sender);
    let target_membership = membership(state, target);
    let sender_level = power.user_level(sender);
    let target_level = power.user_level(target);

    // Rule 4.2: the event must be signed by the authorising user's server. Converge signs every
    // event with its own key only, and every sender is one of its users, so the signature is
    // valid exactly when the authorising user is on the sender's server.
    let authoriser = match event.content.get("join_authorised_via_users_server") {
        None => None,
        Some(Value::String(user)) if user.starts_with('@') && server_of(user).is_some() => {
            if server_of(user) != server_of(sender) {
                return Err(AuthError::new(format!(
                    "the join is not signed by the server of its authorising user {user}"
                )));
            }
            Some(user.as_str())
        }
        Some(other) => {
            return Err(AuthError::new(format!(
                "join_authorised_via_users_server {other} is not a user ID"
            )));
        }
    };

    match Membership::parse(wanted) {
        Some(Membership::Join) => {
            // Rule 4.3.1. The auth state does not expose prev_events, but on a single server
            // nothing but the create event can precede the creator's first join: every other
            // event needs a joined sender, and nobody can join before the join rules exist.
            if target == creator
                && state.state(MEMBER, target).is_none()
                && state.state(POWER_LEVELS, "").is_none()
                && state.state(JOIN_RULES, "").is_none()
            {
                return Ok(());
            }
            if sender != target {
                return Err(AuthError::new(format!(
                    "{sender} cannot join the room on behalf of {target}"
                )));
            }
            if sender_membership == Membership::Ban {
                return Err(AuthError::new("sender is banned from the room"));
            }
            let already_allowed =
                matches!(sender_membership, Membership::Join | Membership::Invite);
            match join_rule(state) {
                "public" => Ok(()),
                "invite" | "knock" if already_allowed => Ok(()),
                "invite" | "knock" => Err(AuthError::new(
                    "the room is invite-only and sender is not invited",
                )),
                // Rule 4.3.5: whoever is invited or joined gets in; anyone else needs a user
                // who is joined and may invite to vouch for the join. Whether the joiner meets
                // the `allow` conditions is the resident server's check, not an auth rule.
                "restricted" | "knock_restricted" if already_allowed => Ok(()),
                "restricted" | "knock_restricted" => {
                    let authoriser = authoriser.ok_or_else(|| {
                        AuthError::new(
                            "the room is restricted and the join names no authorising user",
                        )
                    })?;
                    if membership(state, authoriser) != Membership::Join {
                        return Err(AuthError::new(format!(
                            "the authorising user {authoriser} is not in the room"
                        )));
                    }
                    let level = power.user_level(authoriser);
                    if level < power.invite() {
                        return Err(AuthError::new(format!(
                            "the authorising user {authoriser} has power level {level}, below the {} needed to invite users",
                            power.invite()
                        )));
                    }
                    Ok(())
                }
                other => Err(AuthError::new(format!(
                    "join rule {other} does not allow joining"
                ))),
            }
        }
        Some(Membership::Invite) => {
            if event.content.get("third_party_invite").is_some() {
                return Err(AuthError::new("third-party invites are not supported"));
            }
            if sender_membership != Membership::Join {
                return Err(AuthError::new("sender is not in the room"));
            }
            match target_membership {
                Membership::Join => {
                    return Err(AuthError::new(format!("{target} is already in the room")));
                }
                Membership::Ban => {
                    return Err(AuthError::new(format!("{target} is banned from the room")));
                }
                _ => {}
            }
            require_level(sender_level, power.invite(), "invite users")
        }
        Some(Membership::Leave) => {
            if sender == target {
                return match sender_membership {
                    Membership::Invite | Membership::Join | Membership::Knock => Ok(()),
                    other => Err(AuthError::new(format!(
                        "sender cannot leave the room while their membership is {other}"
                    ))),
                };
            }
            if sender_membership != Membership::Join {
                return Err(AuthError::new("sender is not in the room"));
            }
            if target_membership == Membership::Ban {
                require_level(sender_level, power.ban(), "unban users")?;
            }
            require_level(sender_level, power.kick(), "kick users")?;
            require_above(sender_level, target, target_level)
        }
        Some(Membership::Ban) => {
            if sender_membership != Membership::Join {
                return Err(AuthError::new("sender is not in the room"));
            }
            require_level(sender_level, power.ban(), "ban users")?;
            require_above(sender_level, target, target_level)
        }
        Some(Membership::Knock) => {
            let rule = join_rule(state);
            if !matches!(rule, "knock" | "knock_restricted") {
                return Err(AuthError::new(format!(
                    "join rule {rule} does not allow knocking"
                )));
            }
            if sender != target {
                return Err(AuthError::new(format!(
                    "{sender} cannot knock on behalf of {target}"
                )));
            }
            match sender_membership {
                Membership::Ban | Membership::Invite | Membership::Join => Err(AuthError::new(
                    format!("sender cannot knock while their membership is {sender_membership}"),
                )),
                Membership::Leave | Membership::Knock => Ok(()),
            }
        }
        None => Err(AuthError::new(format!("unknown membership {wanted}"))),
    }
}

/// Rule 9: changes to the power levels themselves.
fn check_power_levels(
    event: &Candidate,
    current: &PowerLevels,
    creator: &str,
    sender_level: i64,
) -> Result<(), AuthError> {
    // Rules 9.1 to 9.3: parsing refuses anything but integers and user IDs.
    let new = PowerLevels::from_content(Some(event.content), creator)?;

    // Rule 9.4.
    if !current.has_event() {
        return Ok(());
    }

    // Rule 9.5.
    for (name, (old, new)) in LEVEL_FIELDS
        .iter()
        .zip(current.fields.iter().zip(new.fields.iter()))
    {
        if old != new {
            check_old_not_above(sender_level, name, *old)?;
            check_new_not_above(sender_level, name, *new)?;
        }
    }

    // Rules 9.6 and 9.7.
    for (section, old_map, new_map) in [
        ("events", &current.events, &new.events),
        ("notifications", &current.notifications, &new.notifications),
    ] {
        for (key, old, _) in changed_entries(old_map, new_map) {
            check_old_not_above(sender_level, &format!("{section}.{key}"), old)?;
        }
        for (key, _, new) in changed_entries(old_map, new_map) {
            check_new_not_above(sender_level, &format!("{section}.{key}"), new)?;
        }
    }

    // Rule 9.8: nobody may change the level of a user at or above their own, except their own.
    for (user, old, _) in changed_entries(&current.users, &new.users) {
        if let Some(old) = old
            && user != event.sender
            && old >= sender_level
        {
            return Err(AuthError::new(format!(
                "cannot change the power level of {user} ({old}), which is not below sender's power level {sender_level}"
            )));
        }
    }

    // Rule 9.9.
    for (user, _, new) in changed_entries(&current.users, &new.users) {
        if let Some(new) = new
            && new > sender_level
        {
            return Err(AuthError::new(format!(
                "cannot set the power level of {user} to {new}, above sender's power level {sender_level}"
            )));
        }
    }

    // Rule 9.10.
    Ok(())
}

/// Entries added, changed or removed between two level maps, as `(key, old, new)`.
fn changed_entries<'a>(
    old: &'a std::collections::BTreeMap<String, i64>,
    new: &'a std::collections::BTreeMap<String, i64>,
) -> impl Iterator<Item = (&'a str, Option<i64>, Option<i64>)> {
    let removed_or_changed = old.iter().filter_map(move |(key, &o)| {
        let n = new.get(key).copied();
        (n != Some(o)).then_some((key.as_str(), Some(o), n))
    });
    let added = new
        .iter()
        .filter(move |(key, _)| !old.contains_key(*key))
        .map(|(key, &n)| (key.as_str(), None, Some(n)));
    removed_or_changed.chain(added)
}

fn check_old_not_above(sender_level: i64, what: &str, old: Option<i64>) -> Result<(), AuthError> {
    match old {
        Some(old) if old > sender_level => Err(AuthError::new(format!(
            "cannot change {what} from {old}, above sender's power level {sender_level}"
        ))),
        _ => Ok(()),
    }
}

fn check_new_not_above(sender_level: i64, what: &str, new: Option<i64>) -> Result<(), AuthError> {
    match new {
        Some(new) if new > sender_level => Err(AuthError::new(format!(
            "cannot set {what} to {new}, above sender's power level {sender_level}"
        ))),
        _ => Ok(()),
    }
}

fn require_level(level: i64, needed: i64, action: &str) -> Result<(), AuthError> {
    if level >= needed {
        Ok(())
    } else {
        Err(AuthError::new(format!(
            "power level {level} is below the {needed} needed to {action}"
        )))
    }
}

fn require_above(sender_level: i64, target: &str, target_level: i64) -> Result<(), AuthError> {
    if target_level < sender_level {
        Ok(())
    } else {
        Err(AuthError::new(format!(
            "power level {sender_level} is not above {target}'s power level {target_level}"
        )))
    }
}

/// The room's join rule; a room without an `m.room.join_rules` event is invite-only.
fn join_rule(state: &impl AuthState) -> &str {
    state
        .state(JOIN_RULES, "")
        .and_then(|s| s.content.get("join_rule")?.as_str())
        .unwrap_or("invite")
}

/// The server name of a user or room ID: everything after the first colon.
fn server_of(id: &str) -> Option<&str> {
    id.split_once(':').map(|(_, server)| server)
}

#[cfg(test)]
mod tests;
