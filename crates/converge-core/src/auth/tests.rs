//! Table-driven tests for the room authorization rules.
//!
//! Every rejecting case names a fragment of the expected reason, so a case fails both when the
//! event is wrongly allowed and when it is rejected by the wrong rule. Most rejections sit next
//! to an allowing case that differs in one detail, which pins down where the rule's boundary is.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;
use crate::room_version::RoomVersion::{V10, V11};

const ROOM: &str = "!room:example.org";
const ALICE: &str = "@alice:example.org";
const BOB: &str = "@bob:example.org";
const CAROL: &str = "@carol:example.org";
const DAVE: &str = "@dave:example.org";
const EVE: &str = "@eve:example.org";
const MALLORY: &str = "@mallory:example.org";

const BOTH: &[RoomVersion] = &[V10, V11];

type State = HashMap<(String, String), (String, Value)>;

/// Builds the state a case is checked against.
#[derive(Clone, Default)]
struct StateBuilder(State);

impl StateBuilder {
    fn set(mut self, event_type: &str, state_key: &str, sender: &str, content: Value) -> Self {
        self.0.insert(
            (event_type.to_owned(), state_key.to_owned()),
            (sender.to_owned(), content),
        );
        self
    }

    fn create(self, sender: &str, content: Value) -> Self {
        self.set(CREATE, "", sender, content)
    }

    fn member(self, user: &str, membership: &str) -> Self {
        self.set(MEMBER, user, user, json!({ "membership": membership }))
    }

    fn join_rule(self, rule: &str) -> Self {
        self.set(JOIN_RULES, "", ALICE, json!({ "join_rule": rule }))
    }

    fn pl(self, content: Value) -> Self {
        self.set(POWER_LEVELS, "", ALICE, content)
    }
}

/// A room created by Alice, holding nothing but the create event.
fn only_create() -> StateBuilder {
    StateBuilder::default().create(ALICE, json!({ "creator": ALICE }))
}

/// A room created by Alice with no power levels event: Alice, Bob and Carol are joined.
fn no_pl() -> StateBuilder {
    only_create()
        .member(ALICE, "join")
        .member(BOB, "join")
        .member(CAROL, "join")
        .join_rule("invite")
}

/// The usual room: Alice is admin (100), Bob and Mallory are moderators (50), Carol is a
/// member (0), Dave has never been in the room.
fn room() -> StateBuilder {
    no_pl().member(MALLORY, "join").pl(base_pl())
}

fn base_pl() -> Value {
    json!({ "users": { ALICE: 100, BOB: 50, MALLORY: 50 } })
}

/// `base_pl()` with the top-level keys of `extra` added or replaced.
fn pl_with(extra: Value) -> Value {
    let mut content = base_pl();
    let object = content.as_object_mut().unwrap();
    for (key, value) in extra.as_object().unwrap() {
        object.insert(key.clone(), value.clone());
    }
    content
}

/// The event under test, owned so cases can be built in a table.
#[derive(Clone)]
struct Ev {
    room_id: String,
    event_type: String,
    state_key: Option<String>,
    sender: String,
    content: Value,
    is_first: bool,
}

impl Ev {
    fn candidate(&self) -> Candidate<'_> {
        Candidate {
            room_id: &self.room_id,
            event_type: &self.event_type,
            state_key: self.state_key.as_deref(),
            sender: &self.sender,
            content: &self.content,
            is_first: self.is_first,
        }
    }

    fn first(mut self) -> Self {
        self.is_first = true;
        self
    }

    fn not_first(mut self) -> Self {
        self.is_first = false;
        self
    }
}

fn ev(sender: &str, event_type: &str, state_key: Option<&str>, content: Value) -> Ev {
    Ev {
        room_id: ROOM.to_owned(),
        event_type: event_type.to_owned(),
        state_key: state_key.map(str::to_owned),
        sender: sender.to_owned(),
        content,
        is_first: false,
    }
}

fn msg(sender: &str) -> Ev {
    ev(
        sender,
        "m.room.message",
        None,
        json!({ "msgtype": "m.text", "body": "hi" }),
    )
}

fn state_ev(sender: &str, event_type: &str, state_key: &str, content: Value) -> Ev {
    ev(sender, event_type, Some(state_key), content)
}

fn member_ev(sender: &str, target: &str, membership: &str) -> Ev {
    state_ev(sender, MEMBER, target, json!({ "membership": membership }))
}

fn create_ev(sender: &str, content: Value) -> Ev {
    state_ev(sender, CREATE, "", content).first()
}

fn pl_ev(sender: &str, content: Value) -> Ev {
    state_ev(sender, POWER_LEVELS, "", content)
}

enum Expect {
    Allow,
    /// Rejected, with a reason containing this fragment.
    Reject(&'static str),
}
use Expect::{Allow, Reject};

struct Case {
    name: &'static str,
    versions: &'static [RoomVersion],
    state: State,
    event: Ev,
    expect: Expect,
}

fn case(name: &'static str, state: StateBuilder, event: Ev, expect: Expect) -> Case {
    Case {
        name,
        versions: BOTH,
        state: state.0,
        event,
        expect,
    }
}

impl Case {
    fn only(mut self, versions: &'static [RoomVersion]) -> Self {
        self.versions = versions;
        self
    }
}

/// Checks every case under each of its versions and reports all mismatches at once.
fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(names.insert(c.name), "duplicate case name {:?}", c.name);
        for &version in c.versions {
            let got = check(version, &c.event.candidate(), &c.state);
            let ok = match (&c.expect, &got) {
                (Allow, Ok(())) => true,
                (Reject(fragment), Err(e)) => e.reason().contains(fragment),
                _ => false,
            };
            if !ok {
                let want = match &c.expect {
                    Allow => "allow".to_owned(),
                    Reject(fragment) => format!("reject containing {fragment:?}"),
                };
                failures.push(format!("v{version} {}: want {want}, got {got:?}", c.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} check(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn create_rules() {
    let empty = StateBuilder::default;
    run(vec![
        case(
            "create with creator",
            empty(),
            create_ev(ALICE, json!({ "creator": ALICE })),
            Allow,
        ),
        case(
            "create without creator in v10",
            empty(),
            create_ev(ALICE, json!({})),
            Reject("no creator"),
        )
        .only(&[V10]),
        case(
            "create without creator in v11",
            empty(),
            create_ev(ALICE, json!({})),
            Allow,
        )
        .only(&[V11]),
        case(
            "create naming room version 10",
            empty(),
            create_ev(ALICE, json!({ "creator": ALICE, "room_version": "10" })),
            Allow,
        )
        .only(&[V10]),
        case(
            "create naming room version 11",
            empty(),
            create_ev(ALICE, json!({ "room_version": "11" })),
            Allow,
        )
        .only(&[V11]),
        case(
            "create naming another supported version than the one checked",
            empty(),
            create_ev(ALICE, json!({ "creator": ALICE, "room_version": "11" })),
            Reject("does not match"),
        )
        .only(&[V10]),
        case(
            "create naming an unsupported room version",
            empty(),
            create_ev(ALICE, json!({ "creator": ALICE, "room_version": "9" })),
            Reject("unsupported room version"),
        ),
        case(
            "create with a non-string room version",
            empty(),
            create_ev(ALICE, json!({ "creator": ALICE, "room_version": 10 })),
            Reject("unsupported room version"),
        ),
        case(
            "create that is not the first event",
            empty(),
            create_ev(ALICE, json!({ "creator": ALICE })).not_first(),
            Reject("must be the first event"),
        ),
        case(
            "create when the state already has one",
            only_create(),
            create_ev(ALICE, json!({ "creator": ALICE })),
            Reject("must be the first event"),
        ),
        case(
            "create by a sender on another server than the room ID",
            empty(),
            create_ev("@alice:other.org", json!({ "creator": "@alice:other.org" })),
            Reject("domain"),
        ),
        case(
            "first event that is not a create",
            empty(),
            msg(ALICE).first(),
            Reject("first event in a room must be m.room.create"),
        ),
        case(
            "event in a room with no create event",
            empty().member(ALICE, "join"),
            msg(ALICE),
            Reject("no m.room.create"),
        ),
        case(
            "other server's user in a room that does not federate",
            empty()
                .create(ALICE, json!({ "creator": ALICE, "m.federate": false }))
                .member("@zed:other.org", "join"),
            msg("@zed:other.org"),
            Reject("does not federate"),
        ),
        case(
            "other server's user in a room that federates",
            empty()
                .create(ALICE, json!({ "creator": ALICE, "m.federate": true }))
                .member("@zed:other.org", "join"),
            msg("@zed:other.org"),
            Allow,
        ),
    ]);
}

#[test]
fn creator_first_join() {
    // Dave sent the create event but names Alice as creator: v10 trusts `content.creator`,
    // v11 the sender.
    let split_creator = || StateBuilder::default().create(DAVE, json!({ "creator": ALICE }));
    run(vec![
        case(
            "creator's first join after create",
            only_create(),
            member_ev(ALICE, ALICE, "join"),
            Allow,
        ),
        case(
            "non-creator's join right after create",
            only_create(),
            member_ev(BOB, BOB, "join"),
            Reject("invite-only"),
        ),
        case(
            "v10 creator is content.creator",
            split_creator(),
            member_ev(ALICE, ALICE, "join"),
            Allow,
        )
        .only(&[V10]),
        case(
            "v11 creator is not content.creator",
            split_creator(),
            member_ev(ALICE, ALICE, "join"),
            Reject("invite-only"),
        )
        .only(&[V11]),
        case(
            "v11 creator is the create sender",
            split_creator(),
            member_ev(DAVE, DAVE, "join"),
            Allow,
        )
        .only(&[V11]),
        case(
            "v10 create sender is not the creator",
            split_creator(),
            member_ev(DAVE, DAVE, "join"),
            Reject("invite-only"),
        )
        .only(&[V10]),
        case(
            "creator rejoining after leaving follows the join rule",
            only_create().member(ALICE, "leave"),
            member_ev(ALICE, ALICE, "join"),
            Reject("invite-only"),
        ),
    ]);
}

#[test]
fn join_rules() {
    run(vec![
        case(
            "join a public room",
            room().join_rule("public"),
            member_ev(DAVE, DAVE, "join"),
            Allow,
        ),
        case(
            "join an invite-only room uninvited",
            room(),
            member_ev(DAVE, DAVE, "join"),
            Reject("invite-only"),
        ),
        case(
            "join an invite-only room when invited",
            room().member(EVE, "invite"),
            member_ev(EVE, EVE, "join"),
            Allow,
        ),
        case(
            "join a knock room uninvited",
            room().join_rule("knock"),
            member_ev(DAVE, DAVE, "join"),
            Reject("invite-only"),
        ),
        case(
            "join a knock room after knocking but before an invite",
            room().join_rule("knock").member(EVE, "knock"),
            member_ev(EVE, EVE, "join"),
            Reject("invite-only"),
        ),
        case(
            "join a knock room when invited",
            room().join_rule("knock").member(EVE, "invite"),
            member_ev(EVE, EVE, "join"),
            Allow,
        ),
        case(
            "join a restricted room uninvited",
            room().join_rule("restricted"),
            member_ev(DAVE, DAVE, "join"),
            Reject("names no authorising user"),
        ),
        case(
            "join a restricted room via an authorising user",
            room().join_rule("restricted"),
            state_ev(
                DAVE,
                MEMBER,
                DAVE,
                json!({ "membership": "join", "join_authorised_via_users_server": ALICE }),
            ),
            Allow,
        ),
        case(
            "join a restricted room when invited",
            room().join_rule("restricted").member(EVE, "invite"),
            member_ev(EVE, EVE, "join"),
            Allow,
        ),
        case(
            "join a knock_restricted room uninvited",
            room().join_rule("knock_restricted"),
            member_ev(DAVE, DAVE, "join"),
            Reject("names no authorising user"),
        ),
        case(
            "join a knock_restricted room when invited",
            room().join_rule("knock_restricted").member(EVE, "invite"),
            member_ev(EVE, EVE, "join"),
            Allow,
        ),
        case(
            "join a room with the private join rule",
            room().join_rule("private").member(EVE, "invite"),
            member_ev(EVE, EVE, "join"),
            Reject("join rule private does not allow joining"),
        ),
        case(
            "banned user joins a public room",
            room().join_rule("public").member(EVE, "ban"),
            member_ev(EVE, EVE, "join"),
            Reject("banned"),
        ),
        case(
            "join on behalf of another user",
            room().join_rule("public"),
            member_ev(BOB, DAVE, "join"),
            Reject("on behalf of"),
        ),
        case(
            "joined user updates their member event in an invite-only room",
            room(),
            member_ev(CAROL, CAROL, "join"),
            Allow,
        ),
    ]);
}

/// A join carrying `join_authorised_via_users_server`, authorised by `via`.
fn authorised_join(sender: &str, via: Value) -> Ev {
    state_ev(
        sender,
        MEMBER,
        sender,
        json!({ "membership": "join", "join_authorised_via_users_server": via }),
    )
}

#[test]
fn restricted_joins() {
    // Both restricted join rules behave alike for joins; each case runs under both.
    let mut cases = Vec::new();
    for rule in ["restricted", "knock_restricted"] {
        let restricted = move || room().join_rule(rule);
        let name = |what: &str| -> &'static str { format!("{rule}: {what}").leak() };
        cases.extend([
            case(
                name("joined admin authorises"),
                restricted(),
                authorised_join(DAVE, json!(ALICE)),
                Allow,
            ),
            case(
                name("joined member at the default invite level authorises"),
                restricted(),
                authorised_join(DAVE, json!(CAROL)),
                Allow,
            ),
            case(
                name("authorising user below the invite level"),
                restricted().pl(pl_with(json!({ "invite": 50 }))),
                authorised_join(DAVE, json!(CAROL)),
                Reject("below the 50 needed to invite users"),
            ),
            case(
                name("moderator at the invite level authorises"),
                restricted().pl(pl_with(json!({ "invite": 50 }))),
                authorised_join(DAVE, json!(BOB)),
                Allow,
            ),
            case(
                name("authorising user was never in the room"),
                restricted(),
                authorised_join(DAVE, json!(EVE)),
                Reject("is not in the room"),
            ),
            case(
                name("authorising user is only invited"),
                restricted().member(EVE, "invite"),
                authorised_join(DAVE, json!(EVE)),
                Reject("is not in the room"),
            ),
            case(
                name("authorising user left"),
                restricted().member(EVE, "leave"),
                authorised_join(DAVE, json!(EVE)),
                Reject("is not in the room"),
            ),
            case(
                name("authorising user is on another server"),
                restricted().member("@zed:other.org", "join"),
                authorised_join(DAVE, json!("@zed:other.org")),
                Reject("not signed by the server"),
            ),
            case(
                name("authorising user is not a string"),
                restricted(),
                authorised_join(DAVE, json!(42)),
                Reject("is not a user ID"),
            ),
            case(
                name("authorising user is not a user ID"),
                restricted(),
                authorised_join(DAVE, json!("alice")),
                Reject("is not a user ID"),
            ),
            case(
                name("banned user with an authorising user"),
                restricted().member(DAVE, "ban"),
                authorised_join(DAVE, json!(ALICE)),
                Reject("banned"),
            ),
            case(
                name("join on behalf of another user with an authorising user"),
                restricted(),
                state_ev(
                    BOB,
                    MEMBER,
                    DAVE,
                    json!({ "membership": "join", "join_authorised_via_users_server": ALICE }),
                ),
                Reject("on behalf of"),
            ),
            case(
                name("joined member updates their member event without authoriser"),
                restricted(),
                member_ev(CAROL, CAROL, "join"),
                Allow,
            ),
            case(
                name("invited user joins with an authorising user who cannot invite"),
                restricted()
                    .pl(pl_with(json!({ "invite": 50 })))
                    .member(EVE, "invite"),
                authorised_join(EVE, json!(CAROL)),
                Allow,
            ),
        ]);
    }
    cases.extend([
        case(
            "an authorising user does not open an invite-only room",
            room(),
            authorised_join(DAVE, json!(ALICE)),
            Reject("invite-only"),
        ),
        case(
            "an authorising user does not open a knock room",
            room().join_rule("knock"),
            authorised_join(DAVE, json!(ALICE)),
            Reject("invite-only"),
        ),
        case(
            "a local authorising user in a public room changes nothing",
            room().join_rule("public"),
            authorised_join(DAVE, json!(ALICE)),
            Allow,
        ),
        case(
            "a foreign authorising user fails the signature rule even in a public room",
            room().join_rule("public"),
            authorised_join(DAVE, json!("@zed:other.org")),
            Reject("not signed by the server"),
        ),
        case(
            "an invite naming a foreign authorising user fails the signature rule",
            room(),
            state_ev(
                CAROL,
                MEMBER,
                DAVE,
                json!({ "membership": "invite", "join_authorised_via_users_server": "@zed:other.org" }),
            ),
            Reject("not signed by the server"),
        ),
    ]);
    run(cases);
}

#[test]
fn invite_rules() {
    let invite_50 = || room().pl(pl_with(json!({ "invite": 50 })));
    run(vec![
        case(
            "member invites with the default invite level",
            room(),
            member_ev(CAROL, DAVE, "invite"),
            Allow,
        ),
        case(
            "member below the invite level invites",
            invite_50(),
            member_ev(CAROL, DAVE, "invite"),
            Reject("power level 0 is below the 50 needed to invite users"),
        ),
        case(
            "moderator at the invite level invites",
            invite_50(),
            member_ev(BOB, DAVE, "invite"),
            Allow,
        ),
        case(
            "non-member invites",
            room(),
            member_ev(DAVE, EVE, "invite"),
            Reject("sender is not in the room"),
        ),
        case(
            "invited user invites someone else",
            room().member(EVE, "invite"),
            member_ev(EVE, DAVE, "invite"),
            Reject("sender is not in the room"),
        ),
        case(
            "invite a joined user",
            room(),
            member_ev(BOB, CAROL, "invite"),
            Reject("already in the room"),
        ),
        case(
            "invite a banned user",
            room().member(EVE, "ban"),
            member_ev(BOB, EVE, "invite"),
            Reject("is banned"),
        ),
        case(
            "invite an already invited user again",
            room().member(EVE, "invite"),
            member_ev(CAROL, EVE, "invite"),
            Allow,
        ),
        case(
            "invite a user who left",
            room().member(EVE, "leave"),
            member_ev(CAROL, EVE, "invite"),
            Allow,
        ),
        case(
            "third-party invite",
            room(),
            state_ev(
                BOB,
                MEMBER,
                DAVE,
                json!({
                    "membership": "invite",
                    "third_party_invite": {
                        "display_name": "d...@example.org",
                        "signed": { "mxid": DAVE, "token": "abc", "signatures": {} },
                    },
                }),
            ),
            Reject("third-party invites are not supported"),
        ),
    ]);
}

#[test]
fn leave_and_kick_rules() {
    run(vec![
        case(
            "joined user leaves",
            room(),
            member_ev(CAROL, CAROL, "leave"),
            Allow,
        ),
        case(
            "invited user rejects the invite",
            room().member(EVE, "invite"),
            member_ev(EVE, EVE, "leave"),
            Allow,
        ),
        case(
            "knocking user withdraws the knock",
            room().join_rule("knock").member(EVE, "knock"),
            member_ev(EVE, EVE, "leave"),
            Allow,
        ),
        case(
            "user who was never in the room leaves",
            room(),
            member_ev(DAVE, DAVE, "leave"),
            Reject("while their membership is leave"),
        ),
        case(
            "banned user lifts their own ban by leaving",
            room().member(EVE, "ban"),
            member_ev(EVE, EVE, "leave"),
            Reject("while their membership is ban"),
        ),
        case(
            "moderator kicks a member",
            room(),
            member_ev(BOB, CAROL, "leave"),
            Allow,
        ),
        case(
            "moderator revokes an invite",
            room().member(EVE, "invite"),
            member_ev(BOB, EVE, "leave"),
            Allow,
        ),
        case(
            "member below the kick level kicks",
            room(),
            member_ev(CAROL, BOB, "leave"),
            Reject("power level 0 is below the 50 needed to kick users"),
        ),
        case(
            "member kicks another member at the same level",
            room().pl(pl_with(json!({ "kick": 0 }))).member(EVE, "join"),
            member_ev(CAROL, EVE, "leave"),
            Reject("power level 0 is not above @eve:example.org's power level 0"),
        ),
        case(
            "moderator kicks a peer moderator",
            room(),
            member_ev(BOB, MALLORY, "leave"),
            Reject("is not above @mallory:example.org's power level 50"),
        ),
        case(
            "moderator kicks the admin",
            room(),
            member_ev(BOB, ALICE, "leave"),
            Reject("is not above @alice:example.org's power level 100"),
        ),
        case(
            "non-member kicks",
            room(),
            member_ev(DAVE, CAROL, "leave"),
            Reject("sender is not in the room"),
        ),
        case(
            "moderator unbans at the ban level",
            room().member(EVE, "ban"),
            member_ev(BOB, EVE, "leave"),
            Allow,
        ),
        case(
            "moderator below the ban level unbans",
            room().pl(pl_with(json!({ "ban": 75 }))).member(EVE, "ban"),
            member_ev(BOB, EVE, "leave"),
            Reject("below the 75 needed to unban users"),
        ),
        case(
            "admin above the ban level unbans",
            room().pl(pl_with(json!({ "ban": 75 }))).member(EVE, "ban"),
            member_ev(ALICE, EVE, "leave"),
            Allow,
        ),
        case(
            "unban also needs the kick level",
            room()
                .pl(pl_with(json!({ "ban": 50, "kick": 75 })))
                .member(EVE, "ban"),
            member_ev(BOB, EVE, "leave"),
            Reject("below the 75 needed to kick users"),
        ),
    ]);
}

#[test]
fn ban_rules() {
    run(vec![
        case(
            "moderator bans a member",
            room(),
            member_ev(BOB, CAROL, "ban"),
            Allow,
        ),
        case(
            "moderator bans someone who was never in the room",
            room(),
            member_ev(BOB, DAVE, "ban"),
            Allow,
        ),
        case(
            "member below the ban level bans",
            room(),
            member_ev(CAROL, BOB, "ban"),
            Reject("power level 0 is below the 50 needed to ban users"),
        ),
        case(
            "moderator bans a peer moderator",
            room(),
            member_ev(BOB, MALLORY, "ban"),
            Reject("is not above @mallory:example.org's power level 50"),
        ),
        case(
            "moderator bans the admin",
            room(),
            member_ev(BOB, ALICE, "ban"),
            Reject("is not above @alice:example.org's power level 100"),
        ),
        case(
            "non-member bans",
            room(),
            member_ev(DAVE, CAROL, "ban"),
            Reject("sender is not in the room"),
        ),
    ]);
}

#[test]
fn knock_rules() {
    run(vec![
        case(
            "knock on a knock room",
            room().join_rule("knock"),
            member_ev(DAVE, DAVE, "knock"),
            Allow,
        ),
        case(
            "knock on a knock_restricted room",
            room().join_rule("knock_restricted"),
            member_ev(DAVE, DAVE, "knock"),
            Allow,
        ),
        case(
            "knock again after leaving",
            room().join_rule("knock").member(EVE, "leave"),
            member_ev(EVE, EVE, "knock"),
            Allow,
        ),
        case(
            "knock on an invite-only room",
            room(),
            member_ev(DAVE, DAVE, "knock"),
            Reject("join rule invite does not allow knocking"),
        ),
        case(
            "knock on a public room",
            room().join_rule("public"),
            member_ev(DAVE, DAVE, "knock"),
            Reject("join rule public does not allow knocking"),
        ),
        case(
            "knock on a restricted room",
            room().join_rule("restricted"),
            member_ev(DAVE, DAVE, "knock"),
            Reject("join rule restricted does not allow knocking"),
        ),
        case(
            "knock on behalf of another user",
            room().join_rule("knock"),
            member_ev(BOB, DAVE, "knock"),
            Reject("on behalf of"),
        ),
        case(
            "invited user knocks",
            room().join_rule("knock").member(EVE, "invite"),
            member_ev(EVE, EVE, "knock"),
            Reject("membership is invite"),
        ),
        case(
            "banned user knocks",
            room().join_rule("knock").member(EVE, "ban"),
            member_ev(EVE, EVE, "knock"),
            Reject("membership is ban"),
        ),
        case(
            "joined user knocks",
            room().join_rule("knock"),
            member_ev(CAROL, CAROL, "knock"),
            Reject("membership is join"),
        ),
    ]);
}

#[test]
fn malformed_member_events() {
    run(vec![
        case(
            "unknown membership",
            room().join_rule("public"),
            member_ev(DAVE, DAVE, "dance"),
            Reject("unknown membership dance"),
        ),
        case(
            "member event without membership",
            room().join_rule("public"),
            state_ev(DAVE, MEMBER, DAVE, json!({ "displayname": "Dave" })),
            Reject("has no membership"),
        ),
        case(
            "member event without a state key",
            room().join_rule("public"),
            ev(DAVE, MEMBER, None, json!({ "membership": "join" })),
            Reject("has no state key"),
        ),
    ]);
}

#[test]
fn sending_rules() {
    let name = |sender: &str| state_ev(sender, "m.room.name", "", json!({ "name": "Room" }));
    let status = |sender: &str, key: &str| {
        state_ev(
            sender,
            "org.example.status",
            key,
            json!({ "status": "away" }),
        )
    };
    let state_default_0 = || room().pl(pl_with(json!({ "state_default": 0 })));
    let tpi = |sender: &str| {
        state_ev(
            sender,
            THIRD_PARTY_INVITE,
            "token",
            json!({ "display_name": "d...", "key_validity_url": "https://id.example.org", "public_key": "abc" }),
        )
    };
    run(vec![
        case("member sends a message", room(), msg(CAROL), Allow),
        case(
            "non-member sends a message",
            room(),
            msg(DAVE),
            Reject("sender is not in the room"),
        ),
        case(
            "invited user sends a message",
            room().member(EVE, "invite"),
            msg(EVE),
            Reject("sender is not in the room"),
        ),
        case(
            "user who left sends a message",
            room().member(CAROL, "leave"),
            msg(CAROL),
            Reject("sender is not in the room"),
        ),
        case(
            "member below events_default sends a message",
            room().pl(pl_with(json!({ "events_default": 10 }))),
            msg(CAROL),
            Reject("power level 0 is below the 10 needed to send m.room.message"),
        ),
        case(
            "events map raises a message type above the member's level",
            room().pl(pl_with(json!({ "events": { "m.reaction": 20 } }))),
            ev(CAROL, "m.reaction", None, json!({})),
            Reject("power level 0 is below the 20 needed to send m.reaction"),
        ),
        case(
            "member sets state when state_default is omitted",
            room(),
            name(CAROL),
            Reject("power level 0 is below the 50 needed to send m.room.name"),
        ),
        case(
            "moderator sets state at state_default",
            room(),
            name(BOB),
            Allow,
        ),
        case(
            "events map lowers a state type to the member's level",
            room().pl(pl_with(json!({ "events": { "m.room.name": 0 } }))),
            name(CAROL),
            Allow,
        ),
        case(
            "events map raises a state type above the moderator's level",
            room().pl(pl_with(json!({ "events": { "m.room.name": 75 } }))),
            name(BOB),
            Reject("power level 50 is below the 75 needed to send m.room.name"),
        ),
        case(
            "explicit state_default 0 lets members set state",
            state_default_0(),
            name(CAROL),
            Allow,
        ),
        case(
            "state keyed by the sender's own user ID",
            state_default_0(),
            status(CAROL, CAROL),
            Allow,
        ),
        case(
            "state keyed by another user's ID",
            state_default_0(),
            status(CAROL, BOB),
            Reject("state key @bob:example.org is another user's ID"),
        ),
        case(
            "admin sets state keyed by another user's ID",
            room(),
            status(ALICE, BOB),
            Reject("another user's ID"),
        ),
        case(
            "state key that merely contains an @ later on",
            state_default_0(),
            status(CAROL, "x@bob:example.org"),
            Allow,
        ),
        case(
            "third-party invite event at the invite level bypasses state_default",
            room(),
            tpi(CAROL),
            Allow,
        ),
        case(
            "third-party invite event below the invite level",
            room().pl(pl_with(json!({ "invite": 50 }))),
            tpi(CAROL),
            Reject("below the 50 needed to invite users"),
        ),
        case(
            "creator with no power levels event has level 100",
            no_pl(),
            name(ALICE),
            Allow,
        ),
        case(
            "others with no power levels event are held to state_default 50",
            no_pl(),
            name(BOB),
            Reject("power level 0 is below the 50 needed to send m.room.name"),
        ),
        case(
            "others with no power levels event may send messages",
            no_pl(),
            msg(CAROL),
            Allow,
        ),
    ]);
}

#[test]
fn power_level_changes() {
    let with = |extra: Value| room().pl(pl_with(extra));
    run(vec![
        case(
            "moderator raises own level above own",
            room(),
            pl_ev(
                BOB,
                json!({ "users": { ALICE: 100, BOB: 60, MALLORY: 50 } }),
            ),
            Reject("cannot set the power level of @bob:example.org to 60"),
        ),
        case(
            "moderator demotes a peer at the same level",
            room(),
            pl_ev(BOB, json!({ "users": { ALICE: 100, BOB: 50, MALLORY: 0 } })),
            Reject("cannot change the power level of @mallory:example.org (50)"),
        ),
        case(
            "moderator lowers own level",
            room(),
            pl_ev(
                BOB,
                json!({ "users": { ALICE: 100, BOB: 10, MALLORY: 50 } }),
            ),
            Allow,
        ),
        case(
            "moderator removes own entry",
            room(),
            pl_ev(BOB, json!({ "users": { ALICE: 100, MALLORY: 50 } })),
            Allow,
        ),
        case(
            "moderator adds a user above own level",
            room(),
            pl_ev(
                BOB,
                json!({ "users": { ALICE: 100, BOB: 50, MALLORY: 50, DAVE: 75 } }),
            ),
            Reject("cannot set the power level of @dave:example.org to 75"),
        ),
        case(
            "moderator adds a user at own level",
            room(),
            pl_ev(
                BOB,
                json!({ "users": { ALICE: 100, BOB: 50, MALLORY: 50, DAVE: 50 } }),
            ),
            Allow,
        ),
        case(
            "moderator removes the admin's entry",
            room(),
            pl_ev(BOB, json!({ "users": { BOB: 50, MALLORY: 50 } })),
            Reject("cannot change the power level of @alice:example.org (100)"),
        ),
        case(
            "admin demotes a moderator",
            room(),
            pl_ev(
                ALICE,
                json!({ "users": { ALICE: 100, BOB: 0, MALLORY: 50 } }),
            ),
            Allow,
        ),
        case(
            "moderator changes ban when the old value is above own level",
            with(json!({ "ban": 75 })),
            pl_ev(BOB, pl_with(json!({ "ban": 50 }))),
            Reject("cannot change ban from 75"),
        ),
        case(
            "moderator removes ban when the old value is above own level",
            with(json!({ "ban": 75 })),
            pl_ev(BOB, base_pl()),
            Reject("cannot change ban from 75"),
        ),
        case(
            "moderator sets ban above own level",
            room(),
            pl_ev(BOB, pl_with(json!({ "ban": 60 }))),
            Reject("cannot set ban to 60"),
        ),
        case(
            "moderator sets kick below own level",
            room(),
            pl_ev(BOB, pl_with(json!({ "kick": 40 }))),
            Allow,
        ),
        case(
            "moderator leaves a too-high ban untouched while changing kick",
            with(json!({ "ban": 75 })),
            pl_ev(BOB, pl_with(json!({ "ban": 75, "kick": 40 }))),
            Allow,
        ),
        case(
            "moderator changes an events entry that is above own level",
            with(json!({ "events": { "m.room.tombstone": 100 } })),
            pl_ev(
                BOB,
                pl_with(json!({ "events": { "m.room.tombstone": 50 } })),
            ),
            Reject("cannot change events.m.room.tombstone from 100"),
        ),
        case(
            "moderator adds an events entry at own level",
            room(),
            pl_ev(BOB, pl_with(json!({ "events": { "m.room.topic": 50 } }))),
            Allow,
        ),
        case(
            "moderator adds an events entry above own level",
            room(),
            pl_ev(BOB, pl_with(json!({ "events": { "m.room.topic": 60 } }))),
            Reject("cannot set events.m.room.topic to 60"),
        ),
        case(
            "moderator changes notifications.room that is above own level",
            with(json!({ "notifications": { "room": 100 } })),
            pl_ev(BOB, pl_with(json!({ "notifications": { "room": 50 } }))),
            Reject("cannot change notifications.room from 100"),
        ),
        case(
            "string power level",
            room(),
            pl_ev(ALICE, pl_with(json!({ "ban": "50" }))),
            Reject("`ban` is not an integer"),
        ),
        case(
            "float power level",
            room(),
            pl_ev(ALICE, pl_with(json!({ "kick": 50.5 }))),
            Reject("`kick` is not an integer"),
        ),
        case(
            "string level in the events map",
            room(),
            pl_ev(ALICE, pl_with(json!({ "events": { "m.room.name": "50" } }))),
            Reject("`events.m.room.name` is not an integer"),
        ),
        case(
            "string level in the users map",
            room(),
            pl_ev(ALICE, json!({ "users": { ALICE: "100" } })),
            Reject("`users.@alice:example.org` is not an integer"),
        ),
        case(
            "users key that is not a user ID",
            room(),
            pl_ev(ALICE, json!({ "users": { ALICE: 100, "bob": 50 } })),
            Reject("not a valid user ID"),
        ),
        case(
            "creator sends the first power levels event",
            no_pl(),
            pl_ev(ALICE, json!({ "users": { ALICE: 100 } })),
            Allow,
        ),
        case(
            "first power levels event may grant more than the sender has",
            no_pl(),
            pl_ev(
                ALICE,
                json!({ "users": { ALICE: 100, BOB: 1000 }, "ban": 500 }),
            ),
            Allow,
        ),
        case(
            "first power levels event is still checked for integers",
            no_pl(),
            pl_ev(ALICE, json!({ "users": { ALICE: "100" } })),
            Reject("is not an integer"),
        ),
        case(
            "non-creator sends the first power levels event",
            no_pl(),
            pl_ev(CAROL, json!({ "users": { CAROL: 100 } })),
            Reject("power level 0 is below the 50 needed to send m.room.power_levels"),
        ),
        case(
            "moderator below the events entry for power levels",
            with(json!({ "events": { "m.room.power_levels": 100 } })),
            pl_ev(
                BOB,
                pl_with(json!({ "events": { "m.room.power_levels": 100 }, "kick": 40 })),
            ),
            Reject("below the 100 needed to send m.room.power_levels"),
        ),
    ]);
}

#[test]
fn may_redact_table() {
    let split_creator = || {
        StateBuilder::default()
            .create(DAVE, json!({ "creator": ALICE }))
            .member(ALICE, "join")
            .member(DAVE, "join")
    };
    // (name, versions, state, redactor, original sender, expected)
    type RedactCase = (
        &'static str,
        &'static [RoomVersion],
        StateBuilder,
        &'static str,
        &'static str,
        bool,
    );
    let cases: Vec<RedactCase> = vec![
        ("own event", BOTH, room(), CAROL, CAROL, true),
        (
            "moderator redacts another's event",
            BOTH,
            room(),
            BOB,
            CAROL,
            true,
        ),
        (
            "member redacts another's event",
            BOTH,
            room(),
            CAROL,
            BOB,
            false,
        ),
        (
            "member redacts another's event with redact 0",
            BOTH,
            room().pl(pl_with(json!({ "redact": 0 }))),
            CAROL,
            BOB,
            true,
        ),
        (
            "moderator below a raised redact level",
            BOTH,
            room().pl(pl_with(json!({ "redact": 75 }))),
            BOB,
            CAROL,
            false,
        ),
        (
            "creator with no power levels event",
            BOTH,
            no_pl(),
            ALICE,
            CAROL,
            true,
        ),
        (
            "member with no power levels event",
            BOTH,
            no_pl(),
            CAROL,
            ALICE,
            false,
        ),
        (
            "v10 creator from content",
            &[V10],
            split_creator(),
            ALICE,
            DAVE,
            true,
        ),
        (
            "v11 content creator is no one special",
            &[V11],
            split_creator(),
            ALICE,
            DAVE,
            false,
        ),
        (
            "v11 creator is the create sender",
            &[V11],
            split_creator(),
            DAVE,
            ALICE,
            true,
        ),
        (
            "no create event",
            BOTH,
            StateBuilder::default(),
            BOB,
            CAROL,
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (name, versions, state, redactor, original, want) in cases {
        for &version in versions {
            if may_redact(version, &state.0, redactor, original) != want {
                failures.push(format!("v{version} {name}: want {want}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn keys(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(t, k)| ((*t).to_owned(), (*k).to_owned()))
        .collect()
}

#[test]
fn auth_event_keys_table() {
    let base = [(CREATE, ""), (POWER_LEVELS, "")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut all = base.to_vec();
        all.extend_from_slice(extra);
        keys(&all)
    };
    type KeysCase = (&'static str, Ev, Vec<(String, String)>);
    let cases: Vec<KeysCase> = vec![
        ("create has none", create_ev(ALICE, json!({})), vec![]),
        ("message", msg(CAROL), with(&[(MEMBER, CAROL)])),
        (
            "state event",
            state_ev(BOB, "m.room.name", "", json!({})),
            with(&[(MEMBER, BOB)]),
        ),
        (
            "self join adds join rules once",
            member_ev(DAVE, DAVE, "join"),
            with(&[(MEMBER, DAVE), (JOIN_RULES, "")]),
        ),
        (
            "invite",
            member_ev(BOB, DAVE, "invite"),
            with(&[(MEMBER, BOB), (MEMBER, DAVE), (JOIN_RULES, "")]),
        ),
        (
            "knock",
            member_ev(DAVE, DAVE, "knock"),
            with(&[(MEMBER, DAVE), (JOIN_RULES, "")]),
        ),
        (
            "kick has no join rules",
            member_ev(BOB, CAROL, "leave"),
            with(&[(MEMBER, BOB), (MEMBER, CAROL)]),
        ),
        (
            "ban has no join rules",
            member_ev(BOB, CAROL, "ban"),
            with(&[(MEMBER, BOB), (MEMBER, CAROL)]),
        ),
        (
            "third-party invite adds its invite event",
            state_ev(
                BOB,
                MEMBER,
                DAVE,
                json!({ "membership": "invite", "third_party_invite": { "signed": { "token": "tok" } } }),
            ),
            with(&[
                (MEMBER, BOB),
                (MEMBER, DAVE),
                (JOIN_RULES, ""),
                (THIRD_PARTY_INVITE, "tok"),
            ]),
        ),
        (
            "restricted join adds the authorising user",
            state_ev(
                DAVE,
                MEMBER,
                DAVE,
                json!({ "membership": "join", "join_authorised_via_users_server": ALICE }),
            ),
            with(&[(MEMBER, DAVE), (JOIN_RULES, ""), (MEMBER, ALICE)]),
        ),
    ];
    for (name, event, want) in cases {
        assert_eq!(auth_event_keys(&event.candidate()), want, "{name}");
    }
}

#[test]
fn membership_helper() {
    let state = room().member(EVE, "ban").member(DAVE, "knock").0;
    assert_eq!(membership(&state, CAROL), Membership::Join);
    assert_eq!(membership(&state, EVE), Membership::Ban);
    assert_eq!(membership(&state, DAVE), Membership::Knock);
    assert_eq!(membership(&state, "@nobody:example.org"), Membership::Leave);
    for m in [
        Membership::Join,
        Membership::Invite,
        Membership::Leave,
        Membership::Ban,
        Membership::Knock,
    ] {
        assert_eq!(Membership::parse(m.as_str()), Some(m));
    }
    assert_eq!(Membership::parse("Join"), None);
}

#[test]
fn creator_and_power_levels_helpers() {
    let state = StateBuilder::default()
        .create(DAVE, json!({ "creator": ALICE }))
        .0;
    assert_eq!(room_creator(V10, &state), Some(ALICE));
    assert_eq!(room_creator(V11, &state), Some(DAVE));
    assert_eq!(room_creator(V11, &State::new()), None);
    assert_eq!(
        current_power_levels(V10, &state).unwrap().user_level(ALICE),
        100
    );
    assert_eq!(
        current_power_levels(V11, &state).unwrap().user_level(ALICE),
        0
    );
    assert!(current_power_levels(V10, &State::new()).is_err());
}
