// matrix-js-sdk 43 (Rust crypto) against $HOMESERVER_URL: sync, encrypted DM, cross-signing + key backup, push counts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeRecoveryKey } from "matrix-js-sdk/lib/crypto-api/index.js";
import {
    api,
    createRoom,
    ENCRYPTION,
    login,
    rand,
    register,
    sdk,
    users,
    waitForDecryption,
    waitForRoomEvent,
    waitUntil,
} from "./lib.mjs";

const { NotificationCountType, PushRuleKind, MatrixEvent, Direction } = sdk;

test("two users reach PREPARED and see each other's device keys", { timeout: 60_000 }, async (t) => {
    const [alice, bob] = await users(t, ["alice", "bob"]);
    for (const c of [alice, bob]) assert.ok([sdk.SyncState.Prepared, sdk.SyncState.Syncing].includes(c.getSyncState()));
    const bobKeys = await bob.getCrypto().getOwnDeviceKeys();
    // Bob's client uploads its keys in the background after its first sync, and the two
    // share no room that would tell alice when they arrive: wait until the server has them.
    await waitUntil("bob's device keys on the server", async () => {
        const answer = await api("POST", "/_matrix/client/v3/keys/query", {
            token: alice.getAccessToken(),
            body: { device_keys: { [bob.getUserId()]: [] } },
        });
        return answer.json.device_keys?.[bob.getUserId()]?.[bob.getDeviceId()] !== undefined;
    });
    const devices = await alice.getCrypto().getUserDeviceInfo([bob.getUserId()], true);
    const bobDevice = devices.get(bob.getUserId())?.get(bob.getDeviceId());
    assert.ok(bobDevice, `alice's /keys/query has no device ${bob.getDeviceId()} for bob`);
    assert.equal(bobDevice.getFingerprint(), bobKeys.ed25519);
    assert.equal(bobDevice.getIdentityKey(), bobKeys.curve25519);
});

test("encrypted DM: bob decrypts alice's message", { timeout: 60_000 }, async (t) => {
    const [alice, bob] = await users(t, ["alice", "bob"]);
    const roomId = await createRoom(alice, [bob], { is_direct: true, preset: sdk.Preset.TrustedPrivateChat, initial_state: [ENCRYPTION] });

    const body = `secret hello ${rand()}`;
    const { event_id: eventId } = await alice.sendTextMessage(roomId, body);
    const event = await waitForRoomEvent(bob, roomId, eventId);
    assert.equal(event.getWireType(), "m.room.encrypted", "the event went over the wire unencrypted");
    assert.equal(event.getWireContent().algorithm, "m.megolm.v1.aes-sha2");
    assert.equal(event.getWireContent().body, undefined);
    await waitForDecryption(event, "bob");
    assert.equal(event.getType(), "m.room.message");
    assert.equal(event.getContent().body, body);
    assert.equal(event.getSender(), alice.getUserId());
});

// Completes password UIA for alice's cross-signing key upload (servers may also accept the first upload without UIA).
const passwordUia = (client) => async (makeRequest) => {
    try {
        await makeRequest(null);
    } catch (e) {
        if (e.httpStatus !== 401 || !e.data?.flows) throw e;
        const identifier = { type: "m.id.user", user: client.getUserId() };
        await makeRequest({ type: "m.login.password", identifier, password: client.account.password, session: e.data.session });
    }
};

test("cross-signing, secret storage and key backup; a new device restores the backup", { timeout: 120_000 }, async (t) => {
    // Secret storage keys alice's first device created, by key ID (filled by cacheSecretStorageKey).
    const ssKeys = new Map();
    const cryptoCallbacks = {
        cacheSecretStorageKey: (keyId, _info, key) => ssKeys.set(keyId, key),
        getSecretStorageKey: async ({ keys }) => {
            const keyId = Object.keys(keys).find((id) => ssKeys.has(id));
            return keyId ? [keyId, ssKeys.get(keyId)] : null;
        },
    };
    const account = await register("alice");
    const alice = await login(t, account, { cryptoCallbacks });
    const crypto = alice.getCrypto();

    const roomId = await createRoom(alice, [], { initial_state: [ENCRYPTION] });
    const body = `for the backup ${rand()}`;
    const { event_id: eventId } = await alice.sendTextMessage(roomId, body);
    const token = alice.getAccessToken();
    const sent = await api("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(eventId)}`, { token });
    const sessionId = sent.json.content?.session_id;
    assert.ok(sessionId, `the server's copy of alice's event has no megolm session_id: ${JSON.stringify(sent.json)}`);

    await crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: passwordUia(alice) });
    let recoveryKey;
    await crypto.bootstrapSecretStorage({
        createSecretStorageKey: async () => (recoveryKey = await crypto.createRecoveryKeyFromPassphrase()),
        setupNewKeyBackup: true,
    });
    assert.ok(recoveryKey?.encodedPrivateKey, "createSecretStorageKey was not called");
    assert.ok(await crypto.isCrossSigningReady(), "cross-signing is not ready after bootstrap");
    assert.ok(await crypto.isSecretStorageReady(), "secret storage is not ready after bootstrap");
    const status = await crypto.getCrossSigningStatus();
    assert.equal(status.privateKeysInSecretStorage, true);

    const version = await crypto.getActiveSessionBackupVersion();
    assert.ok(version, "no active key backup after bootstrapSecretStorage({ setupNewKeyBackup: true })");
    const check = await crypto.checkKeyBackupAndEnable();
    assert.equal(check?.backupInfo.version, version);
    assert.ok(check.trustInfo.trusted, "alice's own new backup is not trusted");

    // The SDK uploads keys after a random delay of up to 10 s; wait until the server holds our session.
    const keysPath = `/_matrix/client/v3/room_keys/keys/${encodeURIComponent(roomId)}?version=${encodeURIComponent(version)}`;
    await waitUntil(`the server's backup ${version} to contain megolm session ${sessionId}`, async () => {
        const res = await api("GET", keysPath, { token });
        return res.status === 200 && res.json.sessions?.[sessionId];
    }, 60_000, 500);
    alice.stopClient(); // so the new device cannot get the key any other way than from the backup

    // A new device: the user types the recovery key.
    const typedKey = decodeRecoveryKey(recoveryKey.encodedPrivateKey);
    const alice2 = await login(t, account, {
        cryptoCallbacks: {
            getSecretStorageKey: async ({ keys }) => {
                const keyId = await alice2.secretStorage.getDefaultKeyId();
                return keyId in keys ? [keyId, typedKey] : null;
            },
        },
    });
    assert.notEqual(alice2.getDeviceId(), alice.getDeviceId());
    const crypto2 = alice2.getCrypto();

    // Decrypts alice's message as fetched from the room's history with /messages.
    const fromHistory = async () => {
        const page = await alice2.createMessagesRequest(roomId, null, 50, Direction.Backward);
        const raw = page.chunk.find((e) => e.event_id === eventId);
        assert.ok(raw, `/messages did not return ${eventId}`);
        const event = new MatrixEvent(raw);
        await alice2.decryptEventIfNeeded(event);
        return event;
    };
    const before = await fromHistory();
    assert.ok(before.isDecryptionFailure(), "the new device decrypted the message before restoring the backup");

    await crypto2.loadSessionBackupPrivateKeyFromSecretStorage();
    const restored = await crypto2.restoreKeyBackup();
    assert.ok(restored.total >= 1, `backup restore found ${restored.total} keys`);

    const after = await fromHistory();
    assert.ok(!after.isDecryptionFailure(), `still cannot decrypt after restore: ${after.decryptionFailureReason}`);
    assert.equal(after.getContent().body, body);
    // The copy in the live timeline is retried by the SDK once the key arrives.
    const live = await waitForRoomEvent(alice2, roomId, eventId);
    await waitForDecryption(live, "alice's new device (live timeline)");
    assert.equal(live.getContent().body, body);
});

test("notification counts follow push rules and reset on a read receipt", { timeout: 90_000 }, async (t) => {
    const [alice, bob, carol] = await users(t, ["alice", "bob", "carol"], { crypto: false });
    const group = await createRoom(alice, [bob, carol]);
    const dm = await createRoom(alice, [bob], { is_direct: true, preset: sdk.Preset.TrustedPrivateChat });
    assert.equal(bob.getRoom(group).getJoinedMemberCount(), 3);
    assert.equal(bob.getRoom(dm).getJoinedMemberCount(), 2);

    // alice sends; returns bob's counts as of the sync that delivered the event (the SDK stores a sync's
    // unread_notifications before it adds that sync's timeline events).
    const send = async (roomId, content) => {
        const { event_id: eventId } = await alice.sendMessage(roomId, { msgtype: "m.text", ...content });
        const event = await waitForRoomEvent(bob, roomId, eventId);
        const room = bob.getRoom(roomId);
        const counts = {
            total: room.getUnreadNotificationCount(NotificationCountType.Total),
            highlight: room.getUnreadNotificationCount(NotificationCountType.Highlight),
        };
        return { event, counts };
    };
    const countsAreZero = (roomId, what) =>
        waitUntil(
            () => `bob's counts in ${what} to drop to 0 after his read receipt (now total=` +
                `${bob.getRoom(roomId).getUnreadNotificationCount(NotificationCountType.Total)}, highlight=` +
                `${bob.getRoom(roomId).getUnreadNotificationCount(NotificationCountType.Highlight)})`,
            () => {
                const room = bob.getRoom(roomId);
                return room.getUnreadNotificationCount(NotificationCountType.Total) === 0 &&
                    room.getUnreadNotificationCount(NotificationCountType.Highlight) === 0;
            },
        );

    // (a) .m.rule.message: a plain message in a 3-member room notifies without highlighting.
    let r = await send(group, { body: "plain group message" });
    assert.deepEqual(r.counts, { total: 1, highlight: 0 }, "(a) plain message in a group room");
    // A second one counts up.
    r = await send(group, { body: "another plain group message" });
    assert.deepEqual(r.counts, { total: 2, highlight: 0 }, "(a) second plain message");
    await bob.sendReadReceipt(r.event);
    await countsAreZero(group, "the group room");

    // (b) .m.rule.is_user_mention: an intentional mention highlights.
    const bobName = bob.getRoom(group).getMember(bob.getUserId()).name;
    r = await send(group, { body: `${bobName}: are you there?`, "m.mentions": { user_ids: [bob.getUserId()] } });
    assert.deepEqual(r.counts, { total: 1, highlight: 1 }, "(b) message mentioning bob");
    await bob.sendReadReceipt(r.event);
    await countsAreZero(group, "the group room");

    // (c) .m.rule.room_one_to_one: with .m.rule.message disabled, a DM still notifies and a group message does not.
    await bob.setPushRuleEnabled("global", PushRuleKind.Underride, ".m.rule.message", false);
    r = await send(group, { body: "group message after bob muted .m.rule.message" });
    assert.deepEqual(r.counts, { total: 0, highlight: 0 }, "(c) group message with .m.rule.message disabled");
    r = await send(dm, { body: "direct message" });
    assert.deepEqual(r.counts, { total: 1, highlight: 0 }, "(c) message in a 1:1 room");
    await bob.sendReadReceipt(r.event);
    await countsAreZero(dm, "the DM");

    // (d) A content rule with a keyword pattern highlights matching messages.
    const keyword = `kumquat${rand()}`;
    const ruleId = `e2e-${rand()}`;
    await bob.addPushRule("global", PushRuleKind.ContentSpecific, ruleId, {
        pattern: keyword,
        actions: ["notify", { set_tweak: "highlight" }],
    });
    const rules = await bob.getPushRules();
    assert.equal(rules.global.content?.find((rule) => rule.rule_id === ruleId)?.pattern, keyword);
    r = await send(group, { body: "no keyword here" });
    assert.deepEqual(r.counts, { total: 0, highlight: 0 }, "(d) group message without the keyword");
    r = await send(group, { body: `I brought ${keyword} pie` });
    assert.deepEqual(r.counts, { total: 1, highlight: 1 }, "(d) group message with the keyword");
    await bob.setRoomReadMarkers(group, r.event.getId(), r.event); // the read marker + receipt call Element makes
    await countsAreZero(group, "the group room");
});
