//! Push-rule evaluation: a user's ruleset compiled once, then evaluated against many events.
//!
//! Spec: "Push Notifications" in the client-server API (v1.16): push rules, conditions,
//! predefined rules and actions. The wire types are ruma's ([`Ruleset`], [`PushCondition`],
//! [`Action`]); the evaluator is Converge's own, so that a ruleset is turned once into a flat
//! list of rules in evaluation order with its patterns already compiled, and an event is
//! flattened once and read by every recipient.
//!
//! The intended use: the service compiles each user's rules when first needed and keeps the
//! [`CompiledRules`] until the user changes their rules; for each new event it builds one
//! [`FlattenedEvent`] and one [`PushContext`] per room, then sets the display name per user and
//! calls [`CompiledRules::evaluate`] for every member.

mod flatten;
mod glob;
mod validate;

#[cfg(test)]
mod tests;

use std::borrow::Cow;

use ruma::UserId;
use ruma::push::{
    Action, ComparisonOperator, ConditionalPushRule, ConditionalPushRuleInit,
    EventMatchConditionData, HighlightTweakValue, PatternedPushRule, PatternedPushRuleInit,
    PushCondition, Ruleset, SenderNotificationPermissionConditionData, SoundTweakValue, Tweak,
};

use crate::power_levels::PowerLevels;

pub use flatten::{FlatValue, FlattenedEvent, Scalar};
pub use validate::{
    MAX_ACTIONS, MAX_CONDITIONS, MAX_KEY_BYTES, MAX_PATTERN_BYTES, MAX_RULE_ID_BYTES,
    MAX_VALUE_BYTES, PushRuleError, validate_actions, validate_conditions, validate_new_rule,
    validate_pattern, validate_rule_id,
};

use flatten::{PathRef, canonical_path};
use glob::{WholeGlob, WordGlob, contains_word, has_wildcards};

/// The legacy mention rules that, since spec v1.7, apply only to events without `m.mentions`.
const CONTAINS_DISPLAY_NAME: &str = ".m.rule.contains_display_name";
const ROOM_NOTIF: &str = ".m.rule.roomnotif";
const CONTAINS_USER_NAME: &str = ".m.rule.contains_user_name";

/// What the room says about an event, for the conditions that look beyond the event itself.
///
/// Everything but `display_name` is the same for every recipient, so the service builds one with
/// [`PushContext::new`] per event and sets the display name per user with
/// [`PushContext::with_display_name`]; it is `Copy` and borrows, so that costs nothing.
#[derive(Clone, Copy, Debug)]
pub struct PushContext<'a> {
    /// The recipient's display name in this room (from their `m.room.member` event), for
    /// `contains_display_name`. `None`, empty or blank never matches.
    pub display_name: Option<&'a str>,
    /// The room's joined member count, for `room_member_count`.
    pub member_count: u64,
    /// The sender's power level, for `sender_notification_permission`.
    pub sender_power_level: i64,
    /// The room's power levels, whose `notifications` say what each notification key needs.
    pub power_levels: &'a PowerLevels,
}

impl<'a> PushContext<'a> {
    /// The context of an event from `sender` in a room with these power levels and this many
    /// joined members.
    pub fn new(power_levels: &'a PowerLevels, sender: &str, member_count: u64) -> Self {
        PushContext {
            display_name: None,
            member_count,
            sender_power_level: power_levels.user_level(sender),
            power_levels,
        }
    }

    /// The same context for a recipient with this display name in the room.
    pub fn with_display_name(self, display_name: Option<&'a str>) -> Self {
        PushContext {
            display_name,
            ..self
        }
    }
}

/// What a user's rules decided for one event.
#[derive(Clone, Copy, Debug)]
pub struct PushOutcome<'r> {
    /// Whether the event notifies the user (counts as a notification, goes to pushers).
    pub notify: bool,
    /// Whether the notification is highlighted; only ever true when `notify` is, because a
    /// highlight tweak on a rule that does not notify produces no notification to highlight.
    pub highlight: bool,
    /// The `sound` tweak of a notifying rule, such as `default` or `ring`.
    pub sound: Option<&'r str>,
    /// The rule that matched, if any; an event no rule matches does not notify.
    pub rule_id: Option<&'r str>,
    /// The matched rule's actions for pushers, without the historical `dont_notify` and
    /// `coalesce`, which the spec says to ignore.
    pub actions: &'r [Action],
    /// `actions` as JSON, serialised once when the rules were compiled.
    pub actions_json: &'r str,
}

impl PushOutcome<'_> {
    /// The outcome when no rule matched.
    pub const NONE: PushOutcome<'static> = PushOutcome {
        notify: false,
        highlight: false,
        sound: None,
        rule_id: None,
        actions: &[],
        actions_json: "[]",
    };
}

/// A user's push rules, compiled for evaluation.
///
/// Build it once per user with [`CompiledRules::new`] and keep it (it is `Send + Sync`, so an
/// `Arc` in a cache works) until the user's ruleset changes.
#[derive(Clone, Debug)]
pub struct CompiledRules {
    user_id: String,
    /// The enabled rules that can match, in the spec's order: override, content, room, sender,
    /// underride, each kind in the ruleset's order.
    rules: Vec<CompiledRule>,
    /// Rules left out because they can never match, with the reason: for the service's logs.
    skipped: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
struct CompiledRule {
    rule_id: String,
    /// All must hold; none means the rule always matches (as `.m.rule.master` does).
    conditions: Vec<Condition>,
    /// True for the legacy mention rules, which stand down when the event has `m.mentions`.
    yields_to_mentions: bool,
    /// Whether a condition depends on the recipient (see [`Condition::is_personal`]).
    personal: bool,
    /// The actions for pushers, historical ones removed.
    actions: Vec<Action>,
    /// `actions` as JSON.
    actions_json: String,
    notify: bool,
    highlight: bool,
    sound: Option<String>,
}

#[derive(Clone, Debug)]
enum Condition {
    /// `event_match` on any key but `content.body`: the whole string value.
    EventMatch {
        path: PathRef,
        glob: WholeGlob,
    },
    /// `event_match` on `content.body`, and content rules: words in the body.
    BodyMatch(WordGlob),
    EventPropertyIs {
        path: PathRef,
        value: Scalar,
    },
    EventPropertyContains {
        path: PathRef,
        value: Scalar,
    },
    ContainsDisplayName,
    RoomMemberCount {
        op: ComparisonOperator,
        count: u64,
    },
    SenderNotificationPermission {
        key: String,
    },
    /// The string at `path` is the recipient's user ID (an `event_match` whose pattern was the
    /// owner's ID, such as `.m.rule.invite_for_me`'s `state_key`), ignoring ASCII case.
    IsRecipient {
        path: PathRef,
    },
    /// The value at `path` is exactly the recipient's user ID (an `event_property_is`).
    PropertyIsRecipient {
        path: PathRef,
    },
    /// The array at `path` holds the recipient's user ID (`.m.rule.is_user_mention`).
    ContainsRecipient {
        path: PathRef,
    },
    /// The body holds the recipient's localpart as a word (`.m.rule.contains_user_name`).
    BodyHasRecipientLocalpart,
    /// A room rule: the event's room ID is exactly the rule's ID.
    RoomIs(String),
    /// A sender rule: the event's sender is exactly the rule's ID.
    SenderIs(String),
}

impl CompiledRules {
    /// Compiles `user_id`'s ruleset.
    ///
    /// Disabled rules are dropped, and so are rules that can never match: those with a
    /// condition kind this server does not know (the spec says they never match) and those
    /// whose pattern does not compile (only possible for rules that bypassed validation).
    pub fn new(ruleset: &Ruleset, user_id: &UserId) -> Self {
        let mut compiled = CompiledRules {
            user_id: user_id.as_str().to_owned(),
            rules: Vec::new(),
            skipped: Vec::new(),
        };
        for rule in &ruleset.override_ {
            compiled.add_conditional(rule);
        }
        for rule in &ruleset.content {
            compiled.add_patterned(rule);
        }
        for rule in &ruleset.room {
            if rule.enabled {
                compiled.push(
                    rule.rule_id.as_str(),
                    vec![Condition::RoomIs(rule.rule_id.to_string())],
                    &rule.actions,
                );
            }
        }
        for rule in &ruleset.sender {
            if rule.enabled {
                compiled.push(
                    rule.rule_id.as_str(),
                    vec![Condition::SenderIs(rule.rule_id.to_string())],
                    &rule.actions,
                );
            }
        }
        for rule in &ruleset.underride {
            compiled.add_conditional(rule);
        }
        compiled
    }

    fn add_conditional(&mut self, rule: &ConditionalPushRule) {
        if !rule.enabled {
            return;
        }
        let owner = self.user_id.clone();
        match rule
            .conditions
            .iter()
            .map(|c| compile_condition(c, &owner))
            .collect()
        {
            Ok(conditions) => self.push(&rule.rule_id, conditions, &rule.actions),
            Err(reason) => self.skipped.push((rule.rule_id.clone(), reason)),
        }
    }

    fn add_patterned(&mut self, rule: &PatternedPushRule) {
        if !rule.enabled {
            return;
        }
        if is_owner_localpart(&rule.pattern, &self.user_id) {
            return self.push(
                &rule.rule_id,
                vec![Condition::BodyHasRecipientLocalpart],
                &rule.actions,
            );
        }
        match WordGlob::new(&rule.pattern) {
            Ok(glob) => self.push(
                &rule.rule_id,
                vec![Condition::BodyMatch(glob)],
                &rule.actions,
            ),
            Err(reason) => self.skipped.push((rule.rule_id.clone(), reason)),
        }
    }

    fn push(&mut self, rule_id: &str, conditions: Vec<Condition>, actions: &[Action]) {
        let mut rule = CompiledRule {
            rule_id: rule_id.to_owned(),
            conditions,
            yields_to_mentions: [CONTAINS_DISPLAY_NAME, ROOM_NOTIF, CONTAINS_USER_NAME]
                .contains(&rule_id),
            actions: Vec::with_capacity(actions.len()),
            actions_json: String::new(),
            personal: false,
            notify: false,
            highlight: false,
            sound: None,
        };
        let (mut highlight, mut sound) = (None, None);
        for action in actions {
            match action {
                Action::Notify => rule.notify = true,
                // The first of each tweak wins, as in Synapse.
                Action::SetTweak(Tweak::Highlight(value)) => {
                    highlight.get_or_insert(*value == HighlightTweakValue::Yes);
                }
                Action::SetTweak(Tweak::Sound(value)) => {
                    sound.get_or_insert_with(|| value.as_str().to_owned());
                }
                _ => {}
            }
            if !is_historical_action(action) {
                rule.actions.push(action.clone());
            }
        }
        rule.actions_json = serde_json::to_string(&rule.actions).unwrap_or_else(|_| "[]".into());
        rule.personal = rule.conditions.iter().any(Condition::is_personal);
        rule.highlight = rule.notify && highlight.unwrap_or(false);
        rule.sound = sound.filter(|_| rule.notify);
        self.rules.push(rule);
    }

    /// Evaluates the rules against one event for their owner: the first matching rule
    /// decides.
    ///
    /// The user's own events never notify them (spec: homeservers must not notify for events
    /// the user sent), so those return [`PushOutcome::NONE`] without looking at any rule.
    pub fn evaluate<'r>(
        &'r self,
        event: &FlattenedEvent,
        ctx: &PushContext<'_>,
    ) -> PushOutcome<'r> {
        self.plan(event, ctx).outcome(event, ctx, &self.user_id)
    }

    /// Evaluates everything about one event that is the same for every recipient, once: the
    /// result says, for any recipient these rules apply to, which rule decides.
    ///
    /// The rules hold the owner's user ID and localpart as "the recipient" (see
    /// [`CompiledRules::new`]), so one set compiled from the server defaults serves every user
    /// who never changed theirs, and one plan per event serves all of them.
    pub fn plan<'r>(&'r self, event: &FlattenedEvent, ctx: &PushContext<'_>) -> EventPlan<'r> {
        let has_mentions = event.has_mentions();
        let mut steps = Vec::new();
        for rule in &self.rules {
            if rule.yields_to_mentions && has_mentions {
                continue;
            }
            let general = rule.conditions.iter().filter(|c| !c.is_personal());
            if !general.clone().all(|c| c.matches(event, ctx, "")) {
                continue;
            }
            steps.push(rule);
            if !rule.personal {
                break;
            }
        }
        EventPlan { steps }
    }

    /// The user these rules belong to.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The IDs of the rules that can match, in evaluation order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|rule| rule.rule_id.as_str())
    }

    /// Enabled rules that were left out because they can never match, with the reason.
    pub fn skipped(&self) -> impl Iterator<Item = (&str, &str)> {
        self.skipped
            .iter()
            .map(|(id, why)| (id.as_str(), why.as_str()))
    }
}

/// One event, evaluated as far as it can be without knowing the recipient: the rules still
/// in the running, in order, each to be checked for its conditions about the recipient. The
/// last one may have none, and then decides for everyone the earlier ones do not.
#[derive(Debug)]
pub struct EventPlan<'r> {
    steps: Vec<&'r CompiledRule>,
}

impl<'r> EventPlan<'r> {
    /// What the event means for `recipient` (a user these rules apply to), with their display
    /// name in `ctx`.
    pub fn outcome(
        &self,
        event: &FlattenedEvent,
        ctx: &PushContext<'_>,
        recipient: &str,
    ) -> PushOutcome<'r> {
        if event.sender() == Some(recipient) {
            return PushOutcome::NONE;
        }
        for rule in &self.steps {
            let personal = rule.conditions.iter().filter(|c| c.is_personal());
            if !rule.personal || personal.clone().all(|c| c.matches(event, ctx, recipient)) {
                return PushOutcome {
                    notify: rule.notify,
                    highlight: rule.highlight,
                    sound: rule.sound.as_deref(),
                    rule_id: Some(&rule.rule_id),
                    actions: &rule.actions,
                    actions_json: &rule.actions_json,
                };
            }
        }
        PushOutcome::NONE
    }
}

impl Condition {
    /// Whether the condition depends on who receives the event: their ID, localpart or
    /// display name.
    fn is_personal(&self) -> bool {
        matches!(
            self,
            Condition::ContainsDisplayName
                | Condition::IsRecipient { .. }
                | Condition::PropertyIsRecipient { .. }
                | Condition::ContainsRecipient { .. }
                | Condition::BodyHasRecipientLocalpart
        )
    }

    fn matches(&self, event: &FlattenedEvent, ctx: &PushContext<'_>, recipient: &str) -> bool {
        match self {
            Condition::IsRecipient { path } => event
                .get_ref(path)
                .and_then(FlatValue::as_str)
                .is_some_and(|value| value.eq_ignore_ascii_case(recipient)),
            Condition::PropertyIsRecipient { path } => event
                .get_ref(path)
                .and_then(FlatValue::as_str)
                .is_some_and(|value| value == recipient),
            Condition::ContainsRecipient { path } => event
                .get_ref(path)
                .and_then(FlatValue::as_array)
                .is_some_and(|items| {
                    items
                        .iter()
                        .any(|item| matches!(item, Scalar::String(s) if s == recipient))
                }),
            Condition::BodyHasRecipientLocalpart => {
                let localpart = recipient
                    .strip_prefix('@')
                    .and_then(|rest| rest.split_once(':'))
                    .map_or("", |(localpart, _)| localpart);
                let Some((_, body_lower)) = event.body() else {
                    return false;
                };
                if localpart.is_empty() {
                    return false;
                }
                if localpart.bytes().any(|b| b.is_ascii_uppercase()) || !localpart.is_ascii() {
                    contains_word(body_lower, &localpart.to_lowercase())
                } else {
                    contains_word(body_lower, localpart)
                }
            }
            Condition::EventMatch { path, glob } => event
                .get_ref(path)
                .and_then(FlatValue::as_str)
                .is_some_and(|value| glob.matches(value)),
            Condition::BodyMatch(glob) => event
                .body()
                .is_some_and(|(body, lower)| glob.matches(body, lower)),
            Condition::EventPropertyIs { path, value } => {
                event.get_ref(path).is_some_and(|v| v.is(value))
            }
            Condition::EventPropertyContains { path, value } => event
                .get_ref(path)
                .and_then(FlatValue::as_array)
                .is_some_and(|items| items.contains(value)),
            Condition::ContainsDisplayName => {
                // A blank name would match every message with a space in it.
                let Some(name) = ctx.display_name.filter(|n| !n.trim().is_empty()) else {
                    return false;
                };
                let Some((_, body_lower)) = event.body() else {
                    return false;
                };
                // The name is literal text, not a glob: a `*` in a name is just a `*`.
                let name = if name.bytes().any(|b| b.is_ascii_uppercase()) || !name.is_ascii() {
                    Cow::Owned(name.to_lowercase())
                } else {
                    Cow::Borrowed(name)
                };
                contains_word(body_lower, &name)
            }
            Condition::RoomMemberCount { op, count } => {
                let members = ctx.member_count;
                match op {
                    ComparisonOperator::Eq => members == *count,
                    ComparisonOperator::Lt => members < *count,
                    ComparisonOperator::Gt => members > *count,
                    ComparisonOperator::Le => members <= *count,
                    ComparisonOperator::Ge => members >= *count,
                }
            }
            Condition::SenderNotificationPermission { key } => {
                ctx.sender_power_level >= ctx.power_levels.notification_level(key)
            }
            Condition::RoomIs(room_id) => event.room_id() == Some(room_id.as_str()),
            Condition::SenderIs(user_id) => event.sender() == Some(user_id.as_str()),
        }
    }
}

/// Whether a content rule's pattern is exactly the owner's localpart (no wildcards), as in
/// `.m.rule.contains_user_name`.
fn is_owner_localpart(pattern: &str, owner: &str) -> bool {
    let localpart = owner
        .strip_prefix('@')
        .and_then(|rest| rest.split_once(':'))
        .map_or("", |(localpart, _)| localpart);
    !localpart.is_empty() && pattern.eq_ignore_ascii_case(localpart) && !has_wildcards(pattern)
}

/// Compiles one condition, or says why the rule holding it can never match.
///
/// A condition whose value is `owner`'s own user ID (or, in the body, localpart) compiles to
/// one about the recipient, so the compiled rules mean the same for every user whose ruleset
/// differs from the owner's only by those values (everyone on the server defaults).
fn compile_condition(condition: &PushCondition, owner: &str) -> Result<Condition, String> {
    let is_owner = |value: &Scalar| matches!(value, Scalar::String(s) if s == owner);
    #[allow(deprecated)]
    let compiled = match condition {
        PushCondition::EventMatch(data) => {
            let path = canonical_path(&data.key);
            // The spec singles out exactly this key for word matching.
            if path == "content.body" {
                if is_owner_localpart(&data.pattern, owner) {
                    Condition::BodyHasRecipientLocalpart
                } else {
                    Condition::BodyMatch(WordGlob::new(&data.pattern)?)
                }
            } else if data.pattern.eq_ignore_ascii_case(owner) {
                Condition::IsRecipient {
                    path: PathRef::new(path),
                }
            } else {
                Condition::EventMatch {
                    path: PathRef::new(path),
                    glob: WholeGlob::new(&data.pattern)?,
                }
            }
        }
        PushCondition::EventPropertyIs(data) => {
            let (path, value) = (
                PathRef::new(canonical_path(&data.key)),
                Scalar::from_ruma(&data.value),
            );
            if is_owner(&value) {
                Condition::PropertyIsRecipient { path }
            } else {
                Condition::EventPropertyIs { path, value }
            }
        }
        PushCondition::EventPropertyContains(data) => {
            let (path, value) = (
                PathRef::new(canonical_path(&data.key)),
                Scalar::from_ruma(&data.value),
            );
            if is_owner(&value) {
                Condition::ContainsRecipient { path }
            } else {
                Condition::EventPropertyContains { path, value }
            }
        }
        PushCondition::ContainsDisplayName => Condition::ContainsDisplayName,
        PushCondition::RoomMemberCount(data) => Condition::RoomMemberCount {
            op: data.is.prefix,
            count: u64::from(data.is.count),
        },
        PushCondition::SenderNotificationPermission(data) => {
            Condition::SenderNotificationPermission {
                key: data.key.as_str().to_owned(),
            }
        }
        other => return Err(format!("unknown condition kind `{}`", other.kind())),
    };
    Ok(compiled)
}

/// Whether an action is `dont_notify` or `coalesce`, which older specs defined and which the
/// spec now says to ignore (a rule with only `dont_notify` is a rule with no actions).
fn is_historical_action(action: &Action) -> bool {
    match action {
        Action::Notify | Action::SetTweak(_) => false,
        other => matches!(
            serde_json::to_value(other),
            Ok(serde_json::Value::String(s)) if s == "dont_notify" || s == "coalesce"
        ),
    }
}

/// Adds the spec's legacy mention rules to a server-default ruleset, where spec v1.16 places
/// them: `.m.rule.contains_display_name` after `.m.rule.is_user_mention`, `.m.rule.roomnotif`
/// after `.m.rule.is_room_mention`, and `.m.rule.contains_user_name` as the last content rule.
///
/// Ruma's [`Ruleset::server_default`] no longer has them (MSC4210 removed them in spec v1.17).
/// They matter for messages from clients and bots that do not send `m.mentions`; evaluation
/// skips them for events that do. Rules already present are left alone.
pub fn insert_legacy_mention_rules(ruleset: &mut Ruleset, user_id: &UserId) {
    use ruma::power_levels::NotificationPowerLevelsKey;

    let loud = || {
        vec![
            Action::Notify,
            Action::SetTweak(Tweak::Sound(SoundTweakValue::Default)),
            Action::SetTweak(Tweak::Highlight(HighlightTweakValue::Yes)),
        ]
    };
    #[allow(deprecated)]
    let display_name = ConditionalPushRule::from(ConditionalPushRuleInit {
        actions: loud(),
        default: true,
        enabled: true,
        rule_id: CONTAINS_DISPLAY_NAME.to_owned(),
        conditions: vec![PushCondition::ContainsDisplayName],
    });
    let room_notif = ConditionalPushRule::from(ConditionalPushRuleInit {
        actions: vec![
            Action::Notify,
            Action::SetTweak(Tweak::Highlight(HighlightTweakValue::Yes)),
        ],
        default: true,
        enabled: true,
        rule_id: ROOM_NOTIF.to_owned(),
        conditions: vec![
            PushCondition::EventMatch(EventMatchConditionData::new(
                "content.body".to_owned(),
                "@room".to_owned(),
            )),
            PushCondition::SenderNotificationPermission(
                SenderNotificationPermissionConditionData::new(NotificationPowerLevelsKey::Room),
            ),
        ],
    });
    let user_name = PatternedPushRule::from(PatternedPushRuleInit {
        actions: loud(),
        default: true,
        enabled: true,
        rule_id: CONTAINS_USER_NAME.to_owned(),
        pattern: user_id.localpart().to_owned(),
    });

    for (after, rule) in [
        (".m.rule.is_user_mention", display_name),
        (".m.rule.is_room_mention", room_notif),
    ] {
        if ruleset.override_.contains(rule.rule_id.as_str()) {
            continue;
        }
        let at = ruleset
            .override_
            .get_index_of(after)
            .map_or(ruleset.override_.len(), |i| i + 1);
        ruleset.override_.shift_insert(at, rule);
    }
    if !ruleset.content.contains(CONTAINS_USER_NAME) {
        ruleset.content.insert(user_name);
    }
}
