//! Checks on a rule a client sends to `PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}`.
//!
//! Spec: "Push Rules: API" in the push module. Ruma's request types already refuse bodies of the
//! wrong shape (an `event_match` without a `pattern`, a malformed `room_member_count`); these
//! checks add what the spec and Converge's limits say on top. Each error is a sentence meant for
//! the client's `M_INVALID_PARAM` (or `M_BAD_JSON`) response.

use ruma::push::{Action, NewPushRule, PushCondition, RuleKind, Tweak};
use thiserror::Error;

use super::flatten::split_path;
use super::glob::{WholeGlob, WordGlob};

/// The longest rule ID; room and user IDs, which room and sender rules are named by, fit.
pub const MAX_RULE_ID_BYTES: usize = 255;
/// The longest glob pattern, for content rules and `event_match`.
pub const MAX_PATTERN_BYTES: usize = 512;
/// The longest condition `key`.
pub const MAX_KEY_BYTES: usize = 255;
/// The most conditions one rule may have; the server-default rules use at most three.
pub const MAX_CONDITIONS: usize = 16;
/// The most actions one rule may have.
pub const MAX_ACTIONS: usize = 16;
/// The longest string value for `event_property_is` and `event_property_contains`.
pub const MAX_VALUE_BYTES: usize = 1024;

/// Why a client's push rule was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{reason}")]
pub struct PushRuleError {
    reason: String,
}

impl PushRuleError {
    fn new(reason: impl Into<String>) -> Self {
        PushRuleError {
            reason: reason.into(),
        }
    }

    /// The human-readable reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Checks the `{kind}` and `{ruleId}` of the path, before the body is looked at.
///
/// User rule IDs must not start with `.` (reserved for server-default rules) and must not
/// contain `/` or `\`. Room rules are named by a room ID and sender rules by a user ID.
pub fn validate_rule_id(kind: &RuleKind, rule_id: &str) -> Result<(), PushRuleError> {
    match kind {
        RuleKind::Override
        | RuleKind::Underride
        | RuleKind::Content
        | RuleKind::Room
        | RuleKind::Sender => {}
        other => {
            return Err(PushRuleError::new(format!(
                "unknown push rule kind `{}`",
                other.as_str()
            )));
        }
    }
    if rule_id.is_empty() {
        return Err(PushRuleError::new("the rule ID must not be empty"));
    }
    if rule_id.len() > MAX_RULE_ID_BYTES {
        return Err(PushRuleError::new(format!(
            "the rule ID is longer than {MAX_RULE_ID_BYTES} bytes"
        )));
    }
    if rule_id.starts_with('.') {
        return Err(PushRuleError::new(
            "rule IDs starting with `.` are reserved for server-default rules",
        ));
    }
    if rule_id.contains('/') || rule_id.contains('\\') {
        return Err(PushRuleError::new(
            "the rule ID must not contain `/` or `\\`",
        ));
    }
    match kind {
        RuleKind::Room if <&ruma::RoomId>::try_from(rule_id).is_err() => Err(PushRuleError::new(
            "the rule ID of a room rule must be a room ID",
        )),
        RuleKind::Sender if <&ruma::UserId>::try_from(rule_id).is_err() => Err(PushRuleError::new(
            "the rule ID of a sender rule must be a user ID",
        )),
        _ => Ok(()),
    }
}

/// Checks a whole rule from the request: its ID for its kind, its conditions or pattern, and
/// its actions.
pub fn validate_new_rule(rule: &NewPushRule) -> Result<(), PushRuleError> {
    validate_rule_id(&rule.kind(), rule.rule_id())?;
    match rule {
        NewPushRule::Override(rule) | NewPushRule::Underride(rule) => {
            validate_conditions(&rule.conditions)?;
            validate_actions(&rule.actions)
        }
        NewPushRule::Content(rule) => {
            if rule.pattern.is_empty() {
                return Err(PushRuleError::new(
                    "a content rule's pattern must not be empty",
                ));
            }
            validate_pattern(&rule.pattern)?;
            validate_actions(&rule.actions)
        }
        NewPushRule::Room(rule) => validate_actions(&rule.actions),
        NewPushRule::Sender(rule) => validate_actions(&rule.actions),
        _ => Err(PushRuleError::new("unsupported push rule kind")),
    }
}

/// Checks the conditions of an override or underride rule.
///
/// Condition kinds the server does not know are accepted: the spec makes such a rule never
/// match rather than invalid, and refusing them would break clients that try newer kinds.
pub fn validate_conditions(conditions: &[PushCondition]) -> Result<(), PushRuleError> {
    if conditions.len() > MAX_CONDITIONS {
        return Err(PushRuleError::new(format!(
            "a rule may have at most {MAX_CONDITIONS} conditions"
        )));
    }
    for condition in conditions {
        #[allow(deprecated)]
        match condition {
            PushCondition::EventMatch(data) => {
                validate_key(&data.key, "event_match")?;
                validate_pattern(&data.pattern)?;
            }
            PushCondition::EventPropertyIs(data) => {
                validate_key(&data.key, "event_property_is")?;
                validate_value(&data.value, "event_property_is")?;
            }
            PushCondition::EventPropertyContains(data) => {
                validate_key(&data.key, "event_property_contains")?;
                validate_value(&data.value, "event_property_contains")?;
            }
            PushCondition::SenderNotificationPermission(data) => {
                let key = data.key.as_str();
                if key.is_empty() || key.len() > MAX_KEY_BYTES {
                    return Err(PushRuleError::new(format!(
                        "a sender_notification_permission key must be 1 to {MAX_KEY_BYTES} bytes"
                    )));
                }
            }
            // `room_member_count` was parsed by ruma; `contains_display_name` has no parameters.
            PushCondition::RoomMemberCount(_) | PushCondition::ContainsDisplayName => {}
            _ => {}
        }
    }
    Ok(())
}

/// Checks a glob pattern's length and that it compiles both as a whole-value and as a word
/// pattern, so a stored rule can always be compiled later.
pub fn validate_pattern(pattern: &str) -> Result<(), PushRuleError> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(PushRuleError::new(format!(
            "a pattern is longer than {MAX_PATTERN_BYTES} bytes"
        )));
    }
    WholeGlob::new(pattern).map_err(PushRuleError::new)?;
    WordGlob::new(pattern).map_err(PushRuleError::new)?;
    Ok(())
}

/// Checks the actions: `notify`, any `set_tweak`, and the historical `dont_notify` and
/// `coalesce` (which the spec says to accept and ignore) are allowed; anything else is refused,
/// as Synapse does.
pub fn validate_actions(actions: &[Action]) -> Result<(), PushRuleError> {
    if actions.len() > MAX_ACTIONS {
        return Err(PushRuleError::new(format!(
            "a rule may have at most {MAX_ACTIONS} actions"
        )));
    }
    for action in actions {
        match action {
            Action::Notify => {}
            Action::SetTweak(Tweak::Sound(sound)) if sound.as_str().len() > MAX_VALUE_BYTES => {
                return Err(PushRuleError::new(format!(
                    "a sound tweak is longer than {MAX_VALUE_BYTES} bytes"
                )));
            }
            Action::SetTweak(tweak) if tweak.set_tweak().is_empty() => {
                return Err(PushRuleError::new("a set_tweak name must not be empty"));
            }
            Action::SetTweak(_) => {}
            other if super::is_historical_action(other) => {}
            other => {
                let shown = serde_json::to_string(other).unwrap_or_else(|_| "?".to_owned());
                return Err(PushRuleError::new(format!("unknown action {shown}")));
            }
        }
    }
    Ok(())
}

/// Checks a condition's dot-separated `key`: present, bounded, and without empty property names
/// (`content..body` or a trailing `.` is a typo, never a real event property).
fn validate_key(key: &str, kind: &str) -> Result<(), PushRuleError> {
    if key.is_empty() {
        return Err(PushRuleError::new(format!(
            "an {kind} condition needs a non-empty key"
        )));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(PushRuleError::new(format!(
            "an {kind} key is longer than {MAX_KEY_BYTES} bytes"
        )));
    }
    if split_path(key).iter().any(String::is_empty) {
        return Err(PushRuleError::new(format!(
            "the {kind} key {key:?} has an empty property name"
        )));
    }
    Ok(())
}

fn validate_value(value: &ruma::push::ScalarJsonValue, kind: &str) -> Result<(), PushRuleError> {
    match value.as_str() {
        Some(s) if s.len() > MAX_VALUE_BYTES => Err(PushRuleError::new(format!(
            "an {kind} value is longer than {MAX_VALUE_BYTES} bytes"
        ))),
        _ => Ok(()),
    }
}
