//! Table-driven tests for push-rule evaluation, the flattened event and rule validation.
//!
//! The default-rule table names the rule each event must be decided by, not just the outcome,
//! so a case fails both when the outcome is wrong and when the right outcome comes from the
//! wrong rule. Most cases sit next to one that differs in a single detail, which pins down the
//! rule's boundary.

use ruma::push::{
    NewConditionalPushRule, NewPatternedPushRule, NewPushRule, NewSimplePushRule, RuleKind,
};
use ruma::{OwnedRoomId, OwnedUserId};
use serde_json::{Value, json};

use super::flatten::{canonical_path, split_path};
use super::*;

const ME: &str = "@alice:example.org";
/// A moderator (50), enough for `@room` under the default notification level.
const BOB: &str = "@bob:example.org";
/// An ordinary member (0).
const CAROL: &str = "@carol:example.org";
const ROOM: &str = "!room:example.org";

fn me() -> &'static UserId {
    <&UserId>::try_from(ME).unwrap()
}

fn power_levels(content: Value) -> PowerLevels {
    PowerLevels::from_content(Some(&content), ME).unwrap()
}

fn base_pl() -> PowerLevels {
    power_levels(json!({ "users": { BOB: 50 } }))
}

/// An event of `event_type` from `sender` in the test room.
fn ev(event_type: &str, sender: &str, state_key: Option<&str>, content: Value) -> Value {
    let mut event = json!({
        "type": event_type,
        "sender": sender,
        "room_id": ROOM,
        "event_id": "$event:example.org",
        "origin_server_ts": 1,
        "content": content,
    });
    if let Some(state_key) = state_key {
        event["state_key"] = json!(state_key);
    }
    event
}

/// An `m.text` message with `body` and any extra content keys.
fn text(sender: &str, body: &str, extra: Value) -> Value {
    let mut content = json!({ "msgtype": "m.text", "body": body });
    if let (Some(content), Value::Object(extra)) = (content.as_object_mut(), extra) {
        content.extend(extra);
    }
    ev("m.room.message", sender, None, content)
}

/// What a case expects: the deciding rule and the outcome.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Expect {
    rule: Option<&'static str>,
    notify: bool,
    highlight: bool,
    sound: Option<&'static str>,
}

/// No rule matched.
const NOTHING: Expect = Expect {
    rule: None,
    notify: false,
    highlight: false,
    sound: None,
};

/// `rule` matched and does not notify.
fn quiet(rule: &'static str) -> Expect {
    Expect {
        rule: Some(rule),
        ..NOTHING
    }
}

/// `rule` matched and notifies.
fn notify(rule: &'static str) -> Expect {
    Expect {
        rule: Some(rule),
        notify: true,
        ..NOTHING
    }
}

impl Expect {
    fn sound(self, sound: &'static str) -> Self {
        Expect {
            sound: Some(sound),
            ..self
        }
    }

    fn highlight(self) -> Self {
        Expect {
            highlight: true,
            ..self
        }
    }
}

struct Case {
    name: &'static str,
    event: Value,
    members: u64,
    display_name: Option<&'static str>,
    expect: Expect,
}

/// A case in a three-member room where the recipient has no display name.
fn case(name: &'static str, event: Value, expect: Expect) -> Case {
    Case {
        name,
        event,
        members: 3,
        display_name: None,
        expect,
    }
}

impl Case {
    fn members(self, members: u64) -> Self {
        Case { members, ..self }
    }

    fn display_name(self, name: &'static str) -> Self {
        Case {
            display_name: Some(name),
            ..self
        }
    }
}

/// Runs every case and reports all failures at once.
fn check(rules: &CompiledRules, pl: &PowerLevels, cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in cases {
        let event = FlattenedEvent::new(&case.event);
        let sender = case.event["sender"].as_str().unwrap_or_default();
        let ctx = PushContext::new(pl, sender, case.members).with_display_name(case.display_name);
        let out = rules.evaluate(&event, &ctx);
        let got = (out.rule_id, out.notify, out.highlight, out.sound);
        let want = (
            case.expect.rule,
            case.expect.notify,
            case.expect.highlight,
            case.expect.sound,
        );
        if got != want {
            failures.push(format!(
                "{}: got (rule, notify, highlight, sound) = {got:?}, want {want:?}",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The spec v1.16 default rules: ruma's defaults plus the legacy mention rules.
fn v1_16_defaults() -> Ruleset {
    let mut ruleset = Ruleset::server_default(me());
    insert_legacy_mention_rules(&mut ruleset, me());
    ruleset
}

#[test]
fn every_default_rule_decides_its_events() {
    let rules = CompiledRules::new(&v1_16_defaults(), me());
    let mentions_me = json!({ "m.mentions": { "user_ids": [ME] } });
    let cases = vec![
        // Underride: ordinary traffic.
        case(
            "group message",
            text(BOB, "hello", json!({})),
            notify(".m.rule.message"),
        ),
        case(
            "one-to-one message",
            text(BOB, "hello", json!({})),
            notify(".m.rule.room_one_to_one").sound("default"),
        )
        .members(2),
        case(
            "message in a room of one is a group message",
            text(BOB, "hello", json!({})),
            notify(".m.rule.message"),
        )
        .members(1),
        case(
            "call invite",
            ev("m.call.invite", BOB, None, json!({ "call_id": "c" })),
            notify(".m.rule.call").sound("ring"),
        ),
        case(
            "encrypted one-to-one",
            ev(
                "m.room.encrypted",
                BOB,
                None,
                json!({ "algorithm": "m.megolm.v1.aes-sha2" }),
            ),
            notify(".m.rule.encrypted_room_one_to_one").sound("default"),
        )
        .members(2),
        case(
            "encrypted group",
            ev(
                "m.room.encrypted",
                BOB,
                None,
                json!({ "algorithm": "m.megolm.v1.aes-sha2" }),
            ),
            notify(".m.rule.encrypted"),
        )
        .members(5),
        case(
            "a state event no rule covers",
            ev("m.room.topic", BOB, Some(""), json!({ "topic": "lunch" })),
            NOTHING,
        ),
        case(
            "my own message, even mentioning me",
            text(ME, "hello", mentions_me.clone()),
            NOTHING,
        ),
        // Override: suppressions.
        case(
            "notice",
            ev(
                "m.room.message",
                BOB,
                None,
                json!({ "msgtype": "m.notice", "body": "beep" }),
            ),
            quiet(".m.rule.suppress_notices"),
        ),
        case(
            "notice mentioning me is still a notice",
            ev(
                "m.room.message",
                BOB,
                None,
                json!({
                    "msgtype": "m.notice",
                    "body": "beep",
                    "m.mentions": { "user_ids": [ME] },
                }),
            ),
            quiet(".m.rule.suppress_notices"),
        ),
        case(
            "reaction",
            ev(
                "m.reaction",
                BOB,
                None,
                json!({
                    "m.relates_to": { "rel_type": "m.annotation", "event_id": "$x", "key": "👍" },
                }),
            ),
            quiet(".m.rule.reaction"),
        ),
        case(
            "server ACL",
            ev(
                "m.room.server_acl",
                BOB,
                Some(""),
                json!({ "allow": ["*"] }),
            ),
            quiet(".m.rule.room.server_acl"),
        ),
        case(
            "server ACL with a state key is not the room's ACL",
            ev(
                "m.room.server_acl",
                BOB,
                Some("x"),
                json!({ "allow": ["*"] }),
            ),
            NOTHING,
        ),
        case(
            "edit",
            text(
                BOB,
                "* hello",
                json!({ "m.relates_to": { "rel_type": "m.replace", "event_id": "$x" } }),
            ),
            quiet(".m.rule.suppress_edits"),
        ),
        case(
            "thread reply is a message",
            text(
                BOB,
                "hello",
                json!({ "m.relates_to": { "rel_type": "m.thread", "event_id": "$x" } }),
            ),
            notify(".m.rule.message"),
        ),
        // Override: membership.
        case(
            "invite for me",
            ev(
                "m.room.member",
                BOB,
                Some(ME),
                json!({ "membership": "invite" }),
            ),
            notify(".m.rule.invite_for_me").sound("default"),
        ),
        case(
            "invite for someone else",
            ev(
                "m.room.member",
                BOB,
                Some(CAROL),
                json!({ "membership": "invite" }),
            ),
            quiet(".m.rule.member_event"),
        ),
        case(
            "join",
            ev(
                "m.room.member",
                BOB,
                Some(BOB),
                json!({ "membership": "join" }),
            ),
            quiet(".m.rule.member_event"),
        ),
        // Override: mentions.
        case(
            "mention of me",
            text(BOB, "hi", mentions_me.clone()),
            notify(".m.rule.is_user_mention")
                .sound("default")
                .highlight(),
        ),
        case(
            "mention of someone else",
            text(BOB, "hi", json!({ "m.mentions": { "user_ids": [CAROL] } })),
            notify(".m.rule.message"),
        ),
        case(
            "an edit that newly mentions me",
            text(
                BOB,
                "* hi",
                json!({
                    "m.mentions": { "user_ids": [ME] },
                    "m.relates_to": { "rel_type": "m.replace", "event_id": "$x" },
                }),
            ),
            notify(".m.rule.is_user_mention")
                .sound("default")
                .highlight(),
        ),
        case(
            "room mention by a moderator",
            text(BOB, "hi all", json!({ "m.mentions": { "room": true } })),
            notify(".m.rule.is_room_mention").highlight(),
        ),
        case(
            "room mention by a member without the power",
            text(CAROL, "hi all", json!({ "m.mentions": { "room": true } })),
            notify(".m.rule.message"),
        ),
        case(
            "room mention as a string is no room mention",
            text(BOB, "hi all", json!({ "m.mentions": { "room": "true" } })),
            notify(".m.rule.message"),
        ),
        case(
            "tombstone",
            ev(
                "m.room.tombstone",
                BOB,
                Some(""),
                json!({ "replacement_room": "!new:example.org" }),
            ),
            notify(".m.rule.tombstone").highlight(),
        ),
        case(
            "tombstone with a state key is not the room's tombstone",
            ev(
                "m.room.tombstone",
                BOB,
                Some("x"),
                json!({ "replacement_room": "!new:example.org" }),
            ),
            NOTHING,
        ),
        // Legacy mention rules (spec v1.16), only for events without `m.mentions`.
        case(
            "display name in the body",
            text(BOB, "thanks, Lewis Carroll!", json!({})),
            notify(".m.rule.contains_display_name")
                .sound("default")
                .highlight(),
        )
        .display_name("Lewis Carroll"),
        case(
            "display name as part of a longer word",
            text(BOB, "thanks, Lewis Carrolls", json!({})),
            notify(".m.rule.message"),
        )
        .display_name("Lewis Carroll"),
        case(
            "display name when the event has m.mentions",
            text(BOB, "thanks, Lewis Carroll!", json!({ "m.mentions": {} })),
            notify(".m.rule.message"),
        )
        .display_name("Lewis Carroll"),
        case(
            "user name in the body",
            text(BOB, "Alice: ping", json!({})),
            notify(".m.rule.contains_user_name")
                .sound("default")
                .highlight(),
        ),
        case(
            "user name inside another word",
            text(BOB, "malice aforethought", json!({})),
            notify(".m.rule.message"),
        ),
        case(
            "user name when the event has m.mentions",
            text(
                BOB,
                "alice: ping",
                json!({ "m.mentions": { "user_ids": [] } }),
            ),
            notify(".m.rule.message"),
        ),
        case(
            "@room in the body from a moderator",
            text(BOB, "@room meeting now", json!({})),
            notify(".m.rule.roomnotif").highlight(),
        ),
        case(
            "@room in the body from a member without the power",
            text(CAROL, "@room meeting now", json!({})),
            notify(".m.rule.message"),
        ),
        case(
            "@room in the body when the event has m.mentions",
            text(
                BOB,
                "@room meeting now",
                json!({ "m.mentions": { "room": false } }),
            ),
            notify(".m.rule.message"),
        ),
        case(
            "@room in the body and m.mentions.room: the intentional rule decides",
            text(
                BOB,
                "@room meeting now",
                json!({ "m.mentions": { "room": true } }),
            ),
            notify(".m.rule.is_room_mention").highlight(),
        ),
    ];
    check(&rules, &base_pl(), cases);
}

#[test]
fn ruma_defaults_without_legacy_rules_ignore_plain_text_mentions() {
    let rules = CompiledRules::new(&Ruleset::server_default(me()), me());
    let cases = vec![
        case(
            "display name",
            text(BOB, "thanks, Lewis Carroll!", json!({})),
            notify(".m.rule.message"),
        )
        .display_name("Lewis Carroll"),
        case(
            "user name",
            text(BOB, "alice: ping", json!({})),
            notify(".m.rule.message"),
        ),
        case(
            "@room",
            text(BOB, "@room now", json!({})),
            notify(".m.rule.message"),
        ),
    ];
    check(&rules, &base_pl(), cases);
}

#[test]
fn rules_are_evaluated_in_the_spec_order() {
    let rules = CompiledRules::new(&v1_16_defaults(), me());
    // `.m.rule.master` is disabled by default, so it is not compiled.
    let expected = [
        ".m.rule.suppress_notices",
        ".m.rule.invite_for_me",
        ".m.rule.member_event",
        ".m.rule.is_user_mention",
        ".m.rule.contains_display_name",
        ".m.rule.is_room_mention",
        ".m.rule.roomnotif",
        ".m.rule.tombstone",
        ".m.rule.reaction",
        ".m.rule.room.server_acl",
        ".m.rule.suppress_edits",
        ".m.rule.contains_user_name",
        ".m.rule.call",
        ".m.rule.encrypted_room_one_to_one",
        ".m.rule.room_one_to_one",
        ".m.rule.message",
        ".m.rule.encrypted",
    ];
    assert_eq!(rules.rule_ids().collect::<Vec<_>>(), expected);
    assert_eq!(rules.skipped().count(), 0);
}

#[test]
fn legacy_rules_are_inserted_once() {
    let mut ruleset = v1_16_defaults();
    let before = ruleset.iter().count();
    insert_legacy_mention_rules(&mut ruleset, me());
    assert_eq!(ruleset.iter().count(), before);
    assert_eq!(
        ruleset
            .content
            .get(".m.rule.contains_user_name")
            .map(|r| r.pattern.as_str()),
        Some("alice")
    );
}

#[test]
fn enabled_master_rule_silences_everything() {
    let mut ruleset = v1_16_defaults();
    ruleset
        .set_enabled(RuleKind::Override, ".m.rule.master", true)
        .unwrap();
    let rules = CompiledRules::new(&ruleset, me());
    let cases = vec![
        case(
            "message",
            text(BOB, "hello", json!({})),
            quiet(".m.rule.master"),
        ),
        case(
            "mention",
            text(BOB, "hi", json!({ "m.mentions": { "user_ids": [ME] } })),
            quiet(".m.rule.master"),
        ),
        case(
            "invite",
            ev(
                "m.room.member",
                BOB,
                Some(ME),
                json!({ "membership": "invite" }),
            ),
            quiet(".m.rule.master"),
        ),
        case("own message", text(ME, "hello", json!({})), NOTHING),
    ];
    check(&rules, &base_pl(), cases);
}

#[test]
fn user_rules_take_their_place_between_the_defaults() {
    let mut ruleset = v1_16_defaults();
    let cake = NewPatternedPushRule::new(
        "cake".to_owned(),
        "cake".to_owned(),
        serde_json::from_value(
            json!(["notify", { "set_tweak": "sound", "value": "cakealarm.wav" }]),
        )
        .unwrap(),
    );
    ruleset
        .insert(NewPushRule::Content(cake), None, None)
        .unwrap();
    // Inserted later without a position, so it ranks above "cake".
    let lie = NewPatternedPushRule::new(
        "lie".to_owned(),
        "cake*lie".to_owned(),
        serde_json::from_value(json!(["notify"])).unwrap(),
    );
    ruleset
        .insert(NewPushRule::Content(lie), None, None)
        .unwrap();
    let room: OwnedRoomId = ROOM.try_into().unwrap();
    ruleset
        .insert(
            NewPushRule::Room(NewSimplePushRule::new(room, vec![])),
            None,
            None,
        )
        .unwrap();
    let carol: OwnedUserId = CAROL.try_into().unwrap();
    let loud_carol =
        serde_json::from_value(json!(["notify", { "set_tweak": "sound", "value": "carol.wav" }]))
            .unwrap();
    ruleset
        .insert(
            NewPushRule::Sender(NewSimplePushRule::new(carol, loud_carol)),
            None,
            None,
        )
        .unwrap();
    let bots = NewConditionalPushRule::new(
        "bots".to_owned(),
        serde_json::from_value(
            json!([{ "kind": "event_match", "key": "sender", "pattern": "@*bot:example.org" }]),
        )
        .unwrap(),
        serde_json::from_value(json!(["dont_notify"])).unwrap(),
    );
    ruleset
        .insert(NewPushRule::Override(bots), None, None)
        .unwrap();
    let rules = CompiledRules::new(&ruleset, me());

    let ids: Vec<_> = rules.rule_ids().collect();
    assert_eq!(
        ids[0], "bots",
        "user override rules come first while master is off"
    );
    let content_at = ids.iter().position(|id| *id == "lie").unwrap();
    assert_eq!(
        &ids[content_at..content_at + 5],
        ["lie", "cake", ".m.rule.contains_user_name", ROOM, CAROL]
    );

    let other_room = |mut event: Value| {
        event["room_id"] = json!("!elsewhere:example.org");
        event
    };
    let cases = vec![
        case(
            "content rule beats the room rule and the underrides",
            text(BOB, "I like CAKE.", json!({})),
            notify("cake").sound("cakealarm.wav"),
        ),
        case(
            "the newer content rule ranks first",
            text(BOB, "the cake is a lie", json!({})),
            notify("lie"),
        ),
        case(
            "content rules match words only",
            other_room(text(BOB, "pancakes", json!({}))),
            notify(".m.rule.message"),
        ),
        case("the muted room", text(BOB, "hello", json!({})), quiet(ROOM)),
        case(
            "a mention still gets through a muted room",
            text(BOB, "hi", json!({ "m.mentions": { "user_ids": [ME] } })),
            notify(".m.rule.is_user_mention")
                .sound("default")
                .highlight(),
        ),
        case(
            "the sender rule, in another room",
            other_room(text(CAROL, "hello", json!({}))),
            notify(CAROL).sound("carol.wav"),
        ),
        case(
            "the room rule outranks the sender rule",
            text(CAROL, "hello", json!({})),
            quiet(ROOM),
        ),
        case(
            "the bot rule silences even invites",
            ev(
                "m.room.member",
                "@dependabot:example.org",
                Some(ME),
                json!({ "membership": "invite" }),
            ),
            quiet("bots"),
        ),
    ];
    check(&rules, &base_pl(), cases);

    // `dont_notify` is historical: the pusher sees no actions at all.
    let event = FlattenedEvent::new(&text("@abot:example.org", "hi", json!({})));
    let out = rules.evaluate(
        &event,
        &PushContext::new(&base_pl(), "@abot:example.org", 3),
    );
    assert_eq!(out.rule_id, Some("bots"));
    assert!(out.actions.is_empty());
}

#[test]
fn disabled_rules_never_match() {
    let mut ruleset = v1_16_defaults();
    ruleset
        .insert(
            NewPushRule::Content(NewPatternedPushRule::new(
                "cake".to_owned(),
                "cake".to_owned(),
                vec![Action::Notify],
            )),
            None,
            None,
        )
        .unwrap();
    ruleset
        .set_enabled(RuleKind::Content, "cake", false)
        .unwrap();
    ruleset
        .set_enabled(RuleKind::Underride, ".m.rule.message", false)
        .unwrap();
    ruleset
        .set_enabled(RuleKind::Override, ".m.rule.suppress_notices", false)
        .unwrap();
    let rules = CompiledRules::new(&ruleset, me());
    assert!(
        !rules
            .rule_ids()
            .any(|id| id == "cake" || id == ".m.rule.message")
    );
    let cases = vec![
        case("group message", text(BOB, "cake", json!({})), NOTHING),
        case(
            "one-to-one message still notifies",
            text(BOB, "cake", json!({})),
            notify(".m.rule.room_one_to_one").sound("default"),
        )
        .members(2),
        case(
            "a notice is now just a message, and messages are off",
            ev(
                "m.room.message",
                BOB,
                None,
                json!({ "msgtype": "m.notice", "body": "beep" }),
            ),
            NOTHING,
        ),
    ];
    check(&rules, &base_pl(), cases);
}

/// Whether a single override rule with these conditions matches the event.
fn one_rule_matches(conditions: Value, event: &Value, ctx: &PushContext<'_>) -> bool {
    let rule: ConditionalPushRule = serde_json::from_value(json!({
        "rule_id": "test",
        "default": false,
        "enabled": true,
        "conditions": conditions,
        "actions": ["notify"],
    }))
    .unwrap();
    let mut ruleset = Ruleset::new();
    ruleset.override_.insert(rule);
    let rules = CompiledRules::new(&ruleset, me());
    rules.evaluate(&FlattenedEvent::new(event), ctx).notify
}

/// An `event_match` condition.
fn glob(key: &str, pattern: &str) -> Value {
    json!({ "kind": "event_match", "key": key, "pattern": pattern })
}

/// An `event_property_is` condition.
fn is(key: &str, value: Value) -> Value {
    json!({ "kind": "event_property_is", "key": key, "value": value })
}

/// An `event_property_contains` condition.
fn contains(key: &str, value: Value) -> Value {
    json!({ "kind": "event_property_contains", "key": key, "value": value })
}

const MYROOM: &str = "#myroom:example.com";

#[test]
fn conditions() {
    let aliases = ev(
        "m.room.canonical_alias",
        BOB,
        Some(""),
        json!({
            "alias": "#somewhere:localhost",
            "alt_aliases": ["#somewhere:example.org", MYROOM],
        }),
    );
    let create = ev(
        "m.room.create",
        BOB,
        Some(""),
        json!({
            "m.federate": true,
            "room_version": "11",
            "n": 1,
            "nothing": null,
            "flag": "true",
        }),
    );
    let topic = ev(
        "m.room.topic",
        BOB,
        Some(""),
        json!({ "topic": "Lunch plans" }),
    );
    let dotted = ev(
        "org.example.custom",
        BOB,
        None,
        json!({
            "m.relates_to": { "rel_type": "dotted" },
            "m": { "relates_to": { "rel_type": "nested" } },
            "back\\slash": "one backslash",
            "m\\x": "odd escape",
        }),
    );
    let message = text(BOB, "I like cake", json!({}));

    let unknown = json!({ "kind": "org.example.unknown", "key": "type" });
    // (conditions, event, matches)
    let cases = [
        // event_match: whole value, strings only.
        (vec![glob("content.topic", "lunc?*")], &topic, true),
        (vec![glob("content.topic", "lunch")], &topic, false),
        (vec![glob("content.n", "*")], &create, false),
        (vec![glob("content.missing", "*")], &create, false),
        (vec![glob("room_id", "!room:*")], &topic, true),
        // event_match on content.body matches words.
        (vec![glob("content.body", "cake")], &message, true),
        (vec![glob("content.body", "lik")], &message, false),
        // Escaped dots and backslashes in keys.
        (
            vec![glob(r"content.m\.relates_to.rel_type", "dotted")],
            &dotted,
            true,
        ),
        (
            vec![glob("content.m.relates_to.rel_type", "nested")],
            &dotted,
            true,
        ),
        (
            vec![glob("content.m.relates_to.rel_type", "dotted")],
            &dotted,
            false,
        ),
        (vec![glob(r"content.back\\slash", "one*")], &dotted, true),
        // `\s` is no escape, so it stands for a backslash and an `s`: the same property.
        (vec![glob(r"content.back\slash", "one*")], &dotted, true),
        (vec![glob(r"content.m\x", "odd*")], &dotted, true),
        (vec![glob(r"content.m\\x", "odd*")], &dotted, true),
        // event_property_is: exact, no casts.
        (vec![is(r"content.m\.federate", json!(true))], &create, true),
        (
            vec![is(r"content.m\.federate", json!("true"))],
            &create,
            false,
        ),
        (vec![is("content.flag", json!(true))], &create, false),
        (vec![is("content.n", json!(1))], &create, true),
        (vec![is("content.n", json!(true))], &create, false),
        (vec![is("content.nothing", json!(null))], &create, true),
        (vec![is("content.missing", json!(null))], &create, false),
        (vec![is("content.room_version", json!("11"))], &create, true),
        (vec![is("content.room_version", json!(11))], &create, false),
        (vec![is("type", json!("M.ROOM.CREATE"))], &create, false),
        (
            vec![is("content.alt_aliases", json!(MYROOM))],
            &aliases,
            false,
        ),
        // event_property_contains: arrays only, exact members.
        (
            vec![contains("content.alt_aliases", json!(MYROOM))],
            &aliases,
            true,
        ),
        (
            vec![contains("content.alt_aliases", json!(":example.com"))],
            &aliases,
            false,
        ),
        (
            vec![contains("content.alias", json!("#somewhere:localhost"))],
            &aliases,
            false,
        ),
        // Several conditions must all hold; none at all always holds.
        (vec![], &topic, true),
        (
            vec![glob("type", "m.room.topic"), glob("state_key", "")],
            &topic,
            true,
        ),
        (
            vec![glob("type", "m.room.topic"), glob("state_key", "?*")],
            &topic,
            false,
        ),
        // A condition kind the server does not know makes the rule never match.
        (vec![unknown.clone()], &topic, false),
        (vec![glob("type", "*"), unknown], &topic, false),
    ];
    let pl = base_pl();
    let ctx = PushContext::new(&pl, BOB, 3);
    let mut failures = Vec::new();
    for (conditions, event, expected) in cases {
        let conditions = Value::Array(conditions);
        if one_rule_matches(conditions.clone(), event, &ctx) != expected {
            failures.push(format!(
                "{conditions} should {}match",
                if expected { "" } else { "not " }
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn room_member_count() {
    let event = text(BOB, "hi", json!({}));
    let pl = base_pl();
    // (is, member count, matches)
    let cases = [
        ("2", 2, true),
        ("2", 3, false),
        ("==2", 2, true),
        ("==2", 1, false),
        ("<2", 1, true),
        ("<2", 2, false),
        (">2", 3, true),
        (">2", 2, false),
        ("<=2", 2, true),
        ("<=2", 3, false),
        (">=2", 2, true),
        (">=2", 1, false),
        ("0", 0, true),
    ];
    for (is, members, expected) in cases {
        let ctx = PushContext::new(&pl, BOB, members);
        let conditions = json!([{ "kind": "room_member_count", "is": is }]);
        assert_eq!(
            one_rule_matches(conditions, &event, &ctx),
            expected,
            "is {is:?} with {members} members"
        );
    }
}

#[test]
fn sender_notification_permission() {
    let event = text(CAROL, "hi", json!({}));
    // (power levels, key, matches) for Carol's event.
    let cases = [
        (json!({}), "room", false),
        (json!({ "users": { CAROL: 50 } }), "room", true),
        (json!({ "users": { CAROL: 49 } }), "room", false),
        (json!({ "users_default": 50 }), "room", true),
        (json!({ "notifications": { "room": 0 } }), "room", true),
        (
            json!({ "users": { CAROL: 10 }, "notifications": { "room": 20 } }),
            "room",
            false,
        ),
        // Keys other than `room` need their own level, 50 when absent.
        (
            json!({ "users": { CAROL: 10 }, "notifications": { "org.example.key": 10 } }),
            "org.example.key",
            true,
        ),
        (json!({ "users": { CAROL: 10 } }), "org.example.key", false),
    ];
    for (content, key, expected) in cases {
        let pl = power_levels(content.clone());
        let ctx = PushContext::new(&pl, CAROL, 3);
        let conditions = json!([{ "kind": "sender_notification_permission", "key": key }]);
        assert_eq!(
            one_rule_matches(conditions, &event, &ctx),
            expected,
            "{content} with key {key}"
        );
    }
}

#[test]
fn contains_display_name() {
    let pl = base_pl();
    // (display name, body, matches)
    let cases = [
        (Some("Lewis"), "hi Lewis!", true),
        (Some("Lewis"), "hi LEWIS", true),
        (Some("lewis"), "Lewis, hi", true),
        (Some("Lewis"), "hi Lewisham", false),
        (Some("Lewis Carroll"), "Lewis  Carroll", false),
        (Some("Zoë"), "hi ZOË", true),
        (Some("Zoë"), "hi xZoë", false),
        // `ë` is outside `[A-Za-z0-9_]`, so the spec counts it as a boundary itself.
        (Some("Zoë"), "hi Zoëy", true),
        // The name is literal text, not a glob.
        (Some("A*"), "hi A*", true),
        (Some("A*"), "hi Ab", false),
        (Some("?"), "what?", true),
        (Some("?"), "x", false),
        // No name, or a blank one, never matches.
        (None, "hi", false),
        (Some(""), "hi", false),
        (Some("  "), "hi  there", false),
    ];
    for (name, body, expected) in cases {
        let ctx = PushContext::new(&pl, BOB, 3).with_display_name(name);
        let conditions = json!([{ "kind": "contains_display_name" }]);
        let event = text(BOB, body, json!({}));
        assert_eq!(
            one_rule_matches(conditions, &event, &ctx),
            expected,
            "{name:?} in {body:?}"
        );
    }
    // A body that is not a string never matches.
    let ctx = PushContext::new(&pl, BOB, 3).with_display_name(Some("Lewis"));
    let event = ev("m.room.message", BOB, None, json!({ "body": ["Lewis"] }));
    assert!(!one_rule_matches(
        json!([{ "kind": "contains_display_name" }]),
        &event,
        &ctx
    ));
}

#[test]
fn unknown_conditions_are_reported_as_skipped() {
    let rule: ConditionalPushRule = serde_json::from_value(json!({
        "rule_id": "future",
        "default": false,
        "enabled": true,
        "conditions": [{ "kind": "org.example.future", "x": 1 }],
        "actions": ["notify"],
    }))
    .unwrap();
    let mut ruleset = Ruleset::server_default(me());
    ruleset.override_.insert(rule);
    let rules = CompiledRules::new(&ruleset, me());
    let skipped: Vec<_> = rules.skipped().collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, "future");
    assert!(
        skipped[0].1.contains("org.example.future"),
        "{}",
        skipped[0].1
    );
    assert!(!rules.rule_ids().any(|id| id == "future"));
}

#[test]
fn actions_are_summarised_and_passed_on() {
    let two_sounds = json!([
        "notify",
        { "set_tweak": "sound", "value": "a" },
        { "set_tweak": "sound", "value": "b" },
    ]);
    // (actions, notify, highlight, sound, actions for the pusher)
    let cases = [
        (json!(["notify"]), true, false, None, json!(["notify"])),
        (json!([]), false, false, None, json!([])),
        (json!(["dont_notify"]), false, false, None, json!([])),
        (
            json!(["notify", "coalesce"]),
            true,
            false,
            None,
            json!(["notify"]),
        ),
        (
            json!(["notify", { "set_tweak": "highlight" }]),
            true,
            true,
            None,
            json!(["notify", { "set_tweak": "highlight" }]),
        ),
        (
            json!(["notify", { "set_tweak": "highlight", "value": false }]),
            true,
            false,
            None,
            json!(["notify", { "set_tweak": "highlight", "value": false }]),
        ),
        // The first of each tweak wins.
        (
            two_sounds.clone(),
            true,
            false,
            Some("a"),
            two_sounds.clone(),
        ),
        // Tweaks without `notify` produce no notification, so nothing to highlight or sound.
        (
            json!([{ "set_tweak": "highlight" }, { "set_tweak": "sound", "value": "default" }]),
            false,
            false,
            None,
            json!([{ "set_tweak": "highlight" }, { "set_tweak": "sound", "value": "default" }]),
        ),
        // Custom tweaks pass through to pushers.
        (
            json!(["notify", { "set_tweak": "org.example.light", "value": "blue" }]),
            true,
            false,
            None,
            json!(["notify", { "set_tweak": "org.example.light", "value": "blue" }]),
        ),
    ];
    let pl = base_pl();
    let event = FlattenedEvent::new(&text(BOB, "hi", json!({})));
    let ctx = PushContext::new(&pl, BOB, 3);
    for (actions, notify, highlight, sound, passed_on) in cases {
        let rule: ConditionalPushRule = serde_json::from_value(json!({
            "rule_id": "test",
            "default": false,
            "enabled": true,
            "conditions": [],
            "actions": actions,
        }))
        .unwrap();
        let mut ruleset = Ruleset::new();
        ruleset.override_.insert(rule);
        let rules = CompiledRules::new(&ruleset, me());
        let out = rules.evaluate(&event, &ctx);
        assert_eq!(out.rule_id, Some("test"));
        assert_eq!(
            (out.notify, out.highlight, out.sound),
            (notify, highlight, sound),
            "{actions}"
        );
        assert_eq!(
            serde_json::to_value(out.actions).unwrap(),
            passed_on,
            "{actions}"
        );
    }
}

#[test]
fn invite_actions_reach_the_pusher_unchanged() {
    let rules = CompiledRules::new(&Ruleset::server_default(me()), me());
    let event = FlattenedEvent::new(&ev(
        "m.room.member",
        BOB,
        Some(ME),
        json!({ "membership": "invite" }),
    ));
    let out = rules.evaluate(&event, &PushContext::new(&base_pl(), BOB, 2));
    assert_eq!(
        serde_json::to_value(out.actions).unwrap(),
        json!(["notify", { "set_tweak": "sound", "value": "default" }])
    );
}

#[test]
fn flattening_keeps_comparable_values_under_escaped_paths() {
    let event = json!({
        "type": "t",
        "content": {
            "m.relates_to": { "rel_type": "dotted" },
            "m": { "relates_to": { "rel_type": "nested" } },
            "back\\slash": "one backslash",
            "n": 1,
            "neg": -9_007_199_254_740_991_i64,
            "big": 9_007_199_254_740_992_i64,
            "huge": u64::MAX,
            "float": 1.5,
            "yes": true,
            "nothing": null,
            "list": [1, "two", null, { "x": 1 }, [3], 1.5, false],
            "empty": {},
            "deep": { "er": { "est": "bottom" } },
        },
    });
    let flat = FlattenedEvent::new(&event);
    let s = |v: &str| Some(FlatValue::Scalar(Scalar::String(v.to_owned())));
    // (canonical path, value)
    let cases = [
        ("type", s("t")),
        (r"content.m\.relates_to.rel_type", s("dotted")),
        ("content.m.relates_to.rel_type", s("nested")),
        (r"content.back\\slash", s("one backslash")),
        // `get` takes canonical paths only; condition keys are canonicalised when compiled.
        (r"content.back\slash", None),
        ("content.n", Some(FlatValue::Scalar(Scalar::Integer(1)))),
        (
            "content.neg",
            Some(FlatValue::Scalar(Scalar::Integer(-9_007_199_254_740_991))),
        ),
        ("content.big", None),
        ("content.huge", None),
        ("content.float", None),
        ("content.yes", Some(FlatValue::Scalar(Scalar::Bool(true)))),
        ("content.nothing", Some(FlatValue::Scalar(Scalar::Null))),
        ("content.missing", None),
        (
            "content.list",
            Some(FlatValue::Array(vec![
                Scalar::Integer(1),
                Scalar::String("two".to_owned()),
                Scalar::Null,
                Scalar::Bool(false),
            ])),
        ),
        ("content.list.x", None),
        ("content.empty", None),
        ("content", None),
        ("content.deep.er.est", s("bottom")),
    ];
    for (path, expected) in cases {
        assert_eq!(flat.get(path), expected.as_ref(), "{path}");
    }
    assert!(!flat.has_mentions());
    assert!(FlattenedEvent::new(&json!({ "content": { "m.mentions": {} } })).has_mentions());
    assert!(!FlattenedEvent::new(&json!({ "m.mentions": {}, "content": {} })).has_mentions());
    assert!(FlattenedEvent::new(&json!("not an object")).is_empty());
}

#[test]
fn condition_keys_are_split_and_canonicalised_per_the_spec() {
    // (key, property names, canonical path)
    let cases: [(&str, &[&str], &str); 8] = [
        ("content.body", &["content", "body"], "content.body"),
        (
            r"content.m\.relates_to",
            &["content", "m.relates_to"],
            r"content.m\.relates_to",
        ),
        (r"content.m\\foo", &["content", r"m\foo"], r"content.m\\foo"),
        // Any other escape is a literal backslash.
        (r"content.m\x", &["content", r"m\x"], r"content.m\\x"),
        (r"a\", &[r"a\"], r"a\\"),
        (r"a\\.b", &[r"a\", "b"], r"a\\.b"),
        ("a..b", &["a", "", "b"], "a..b"),
        ("", &[""], ""),
    ];
    for (key, names, canonical) in cases {
        assert_eq!(split_path(key), names, "{key}");
        assert_eq!(canonical_path(key), canonical, "{key}");
    }
}

#[test]
fn rule_ids_are_validated() {
    // (kind, rule ID, error fragment or None when valid)
    let long = "x".repeat(MAX_RULE_ID_BYTES + 1);
    let cases = [
        (RuleKind::Override, "my-rule", None),
        (RuleKind::Content, "SSByZWFsbHkgbGlrZSBjYWtl", None),
        (RuleKind::Room, ROOM, None),
        (RuleKind::Sender, BOB, None),
        (RuleKind::Override, ".m.rule.master", Some("reserved")),
        (RuleKind::Underride, ".mine", Some("reserved")),
        (RuleKind::Override, "a/b", Some("`/`")),
        (RuleKind::Override, "a\\b", Some("`/`")),
        (RuleKind::Override, "", Some("empty")),
        (RuleKind::Override, long.as_str(), Some("longer")),
        (RuleKind::Room, "not-a-room", Some("room ID")),
        (RuleKind::Room, BOB, Some("room ID")),
        (RuleKind::Sender, "bob", Some("user ID")),
        (
            RuleKind::from("postcontent"),
            "x",
            Some("unknown push rule kind"),
        ),
    ];
    for (kind, rule_id, error) in cases {
        let result = validate_rule_id(&kind, rule_id);
        match error {
            None => assert_eq!(result, Ok(()), "{kind:?} {rule_id}"),
            Some(fragment) => {
                let err = result.expect_err(rule_id);
                assert!(err.reason().contains(fragment), "{rule_id}: {err}");
            }
        }
    }
}

#[test]
fn new_rules_are_validated() {
    let conditional = |id: &str, conditions: Value, actions: Value| {
        NewPushRule::Override(NewConditionalPushRule::new(
            id.to_owned(),
            serde_json::from_value(conditions).unwrap(),
            serde_json::from_value(actions).unwrap(),
        ))
    };
    let content = |pattern: &str, actions: Value| {
        NewPushRule::Content(NewPatternedPushRule::new(
            "c".to_owned(),
            pattern.to_owned(),
            serde_json::from_value(actions).unwrap(),
        ))
    };
    let too_many_conditions = Value::Array(vec![
        json!({ "kind": "event_match", "key": "type", "pattern": "x" });
        MAX_CONDITIONS + 1
    ]);
    // (rule, error fragment or None when valid)
    let cases = [
        (
            conditional(
                "ok",
                json!([
                    { "kind": "event_match", "key": "content.body", "pattern": "beer" },
                    { "kind": "room_member_count", "is": "<=10" },
                ]),
                json!(["notify", { "set_tweak": "sound", "value": "beeroclock.wav" }]),
            ),
            None,
        ),
        (
            conditional("historical", json!([]), json!(["dont_notify", "coalesce"])),
            None,
        ),
        (
            conditional(
                "future",
                json!([{ "kind": "org.example.future" }]),
                json!(["notify"]),
            ),
            None,
        ),
        (
            conditional(".server", json!([]), json!([])),
            Some("reserved"),
        ),
        (
            conditional("x", json!([]), json!(["org.example.ring"])),
            Some("unknown action"),
        ),
        (
            conditional("x", json!([]), json!([{ "org.example": 1 }])),
            Some("unknown action"),
        ),
        (
            conditional(
                "x",
                json!([]),
                Value::Array(vec![json!("notify"); MAX_ACTIONS + 1]),
            ),
            Some("actions"),
        ),
        (
            conditional("x", too_many_conditions, json!([])),
            Some("conditions"),
        ),
        (
            conditional(
                "x",
                json!([{ "kind": "event_match", "key": "", "pattern": "x" }]),
                json!([]),
            ),
            Some("non-empty key"),
        ),
        (
            conditional(
                "x",
                json!([{ "kind": "event_match", "key": "content..body", "pattern": "x" }]),
                json!([]),
            ),
            Some("empty property name"),
        ),
        (
            conditional(
                "x",
                json!([{ "kind": "event_property_is", "key": "content.", "value": 1 }]),
                json!([]),
            ),
            Some("empty property name"),
        ),
        (
            conditional(
                "x",
                json!([glob("type", &"?".repeat(MAX_PATTERN_BYTES + 1))]),
                json!([]),
            ),
            Some("longer"),
        ),
        (
            conditional(
                "x",
                json!([contains(
                    "content.x",
                    json!("v".repeat(MAX_VALUE_BYTES + 1))
                )]),
                json!([]),
            ),
            Some("longer"),
        ),
        (
            conditional(
                "x",
                json!([{ "kind": "sender_notification_permission", "key": "" }]),
                json!([]),
            ),
            Some("sender_notification_permission"),
        ),
        (content("cake*lie", json!(["notify"])), None),
        (content("", json!(["notify"])), Some("must not be empty")),
        (
            content(&"*?".repeat(MAX_PATTERN_BYTES / 2), json!([])),
            None,
        ),
    ];
    for (rule, error) in cases {
        let result = validate_new_rule(&rule);
        match error {
            None => assert_eq!(result, Ok(()), "{rule:?}"),
            Some(fragment) => {
                let err = result.expect_err(fragment);
                assert!(err.reason().contains(fragment), "{fragment}: {err}");
            }
        }
    }
}

#[test]
fn longest_allowed_patterns_compile() {
    for pattern in [
        "?".repeat(MAX_PATTERN_BYTES),
        "*".repeat(MAX_PATTERN_BYTES),
        "a?".repeat(MAX_PATTERN_BYTES / 2),
    ] {
        assert_eq!(
            validate_pattern(&pattern),
            Ok(()),
            "{} bytes",
            pattern.len()
        );
    }
}

#[test]
fn compiled_rules_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledRules>();
    assert_send_sync::<FlattenedEvent>();
}

/// The shape of the hot path: one event, flattened once, evaluated for a thousand members.
/// Only correctness is asserted; timing belongs to the benchmark tool.
#[test]
fn one_event_for_a_thousand_users() {
    let users: Vec<OwnedUserId> = (0..1000)
        .map(|i| format!("@user{i}:example.org").try_into().unwrap())
        .collect();
    let compiled: Vec<CompiledRules> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let mut ruleset = Ruleset::server_default(user);
            insert_legacy_mention_rules(&mut ruleset, user);
            // Every tenth user mutes the room; every hundredth turns everything off.
            if i % 10 == 3 {
                let room: OwnedRoomId = ROOM.try_into().unwrap();
                ruleset
                    .insert(
                        NewPushRule::Room(NewSimplePushRule::new(room, vec![])),
                        None,
                        None,
                    )
                    .unwrap();
            }
            if i % 100 == 7 {
                ruleset
                    .set_enabled(RuleKind::Override, ".m.rule.master", true)
                    .unwrap();
            }
            CompiledRules::new(&ruleset, user)
        })
        .collect();

    let sender = "@user0:example.org";
    let mentioned = [
        "@user42:example.org",
        "@user13:example.org",
        "@user107:example.org",
    ];
    let event = FlattenedEvent::new(&text(
        sender,
        "standup in five",
        json!({ "m.mentions": { "user_ids": mentioned } }),
    ));
    let pl = base_pl();
    let room_ctx = PushContext::new(&pl, sender, users.len() as u64);

    let (mut notified, mut highlighted) = (0, 0);
    for (i, rules) in compiled.iter().enumerate() {
        let out = rules.evaluate(&event, &room_ctx.with_display_name(Some("Someone")));
        let user = rules.user_id();
        let expected = if user == sender || i % 100 == 7 {
            (false, false)
        } else if mentioned.contains(&user) {
            (true, true)
        } else if i % 10 == 3 {
            (false, false)
        } else {
            (true, false)
        };
        assert_eq!(
            (out.notify, out.highlight),
            expected,
            "{user}: {:?}",
            out.rule_id
        );
        notified += usize::from(out.notify);
        highlighted += usize::from(out.highlight);
    }
    // 1000 users, minus the sender, the ten with master on (user 107 among them) and the
    // hundred who muted the room, plus the two mentioned ones among those (user 13).
    assert_eq!(highlighted, 2);
    assert_eq!(notified, 1000 - 1 - 10 - 100 + 1);
}

/// The server defaults compiled once, for one user, decide for any other user exactly what
/// their own compiled defaults decide: the owner's ID and localpart stand for the recipient.
#[test]
fn one_compiled_default_serves_every_user() {
    let compile = |user: &UserId| {
        let mut ruleset = Ruleset::server_default(user);
        insert_legacy_mention_rules(&mut ruleset, user);
        CompiledRules::new(&ruleset, user)
    };
    let shared = compile(me());
    let carol = <&UserId>::try_from(CAROL).unwrap();
    let own = compile(carol);
    let pl = base_pl();
    let events = [
        text(BOB, "carol, look", json!({})),
        text(BOB, "alice, look", json!({})),
        text(BOB, "hi", json!({ "m.mentions": { "user_ids": [CAROL] } })),
        text(BOB, "carol", json!({ "m.mentions": { "user_ids": [ME] } })),
        text(BOB, "Carol Smith was here", json!({})),
        ev(
            "m.room.member",
            BOB,
            Some(CAROL),
            json!({ "membership": "invite" }),
        ),
        ev(
            "m.room.member",
            BOB,
            Some(ME),
            json!({ "membership": "invite" }),
        ),
        text(CAROL, "carol talks to herself", json!({})),
    ];
    for event in &events {
        let flat = FlattenedEvent::new(event);
        for members in [2, 3] {
            let ctx = PushContext::new(&pl, BOB, members).with_display_name(Some("Carol Smith"));
            let theirs = own.evaluate(&flat, &ctx);
            let shared_plan = shared.plan(&flat, &ctx);
            let served = shared_plan.outcome(&flat, &ctx, CAROL);
            assert_eq!(
                (theirs.rule_id, theirs.notify, theirs.highlight),
                (served.rule_id, served.notify, served.highlight),
                "{event}"
            );
        }
    }
    // And the owner is not special: a mention of them is not a mention of Carol.
    let flat = FlattenedEvent::new(&events[2]);
    let ctx = PushContext::new(&pl, BOB, 3);
    let plan = shared.plan(&flat, &ctx);
    assert!(plan.outcome(&flat, &ctx, CAROL).highlight);
    assert!(!plan.outcome(&flat, &ctx, ME).highlight);
}
