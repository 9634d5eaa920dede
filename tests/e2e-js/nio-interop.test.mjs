// Cross-implementation E2EE: matrix-js-sdk (Rust crypto) and matrix-nio (its own Olm stack, via nio_peer.py) share an encrypted room.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createRoom, ENCRYPTION, HS, rand, register, users, waitForDecryption, waitForMembership, waitForRoomEvent, WAIT_MS } from "./lib.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const python = process.env.E2E_VENV_PYTHON ?? `${here}../../target/e2e-js-venv/bin/python`;

// Runs nio_peer.py; next(key) resolves with the value of its next JSON line carrying `key`, and fails fast with the
// peer's own error (or its stderr) if it reports an error or exits first.
function startPeer(args) {
    const proc = spawn(python, [`${here}nio_peer.py`, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    proc.stderr.on("data", (d) => (stderr += d));
    const lines = [];
    let wake = () => {};
    let failure;
    createInterface({ input: proc.stdout }).on("line", (line) => {
        const msg = JSON.parse(line);
        if (msg.error) failure = `nio peer: ${msg.error}`;
        lines.push(msg);
        wake();
    });
    const exited = new Promise((resolve) => proc.on("close", (code) => resolve(code)));
    exited.then((code) => {
        failure ??= code === 0 ? "nio peer exited" : `nio peer exited with ${code}: ${stderr.slice(-2000)}`;
        wake();
    });
    const next = (key, what) =>
        new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`)), WAIT_MS);
            (wake = () => {
                const i = lines.findIndex((m) => key in m);
                if (i >= 0) resolve(lines.splice(i, 1)[0][key]);
                else if (failure) reject(new Error(`${failure} (while waiting for ${what})`));
                else return;
                clearTimeout(timer);
            })();
        });
    return { next, exited, kill: () => proc.exitCode === null && proc.kill() };
}

test("matrix-nio and matrix-js-sdk exchange messages in an encrypted room", { timeout: 120_000 }, async (t) => {
    assert.ok(existsSync(python), `no Python at ${python}: run run.sh or set E2E_VENV_PYTHON to a venv with tests/e2e-js/requirements.txt`);
    const [alice] = await users(t, ["alice"]);
    const nio = await register("nio");
    const roomId = await createRoom(alice, [], { invite: [nio.userId], initial_state: [ENCRYPTION] });

    const toNio = `from js ${rand()}`;
    const toJs = `from nio ${rand()}`;
    const peer = startPeer([HS, nio.username, nio.password, roomId, alice.getUserId(), toNio, toJs]);
    t.after(peer.kill);
    const nioDevice = await peer.next("ready", "nio to log in, upload keys and join");
    await waitForMembership(alice, roomId, nio.userId);

    // js -> nio: alice's Rust crypto shares the megolm key with nio's (unverified) device.
    await alice.sendTextMessage(roomId, toNio);
    const received = await peer.next("received", `nio to receive and decrypt ${JSON.stringify(toNio)}`);
    assert.equal(received.body, toNio);
    assert.equal(received.decrypted, true, "nio got the message unencrypted");

    // nio -> js: nio shares its megolm key with alice's device and sends.
    const sent = await peer.next("sent", "nio to send its encrypted reply");
    const reply = await waitForRoomEvent(alice, roomId, sent.event_id);
    assert.equal(reply.getWireType(), "m.room.encrypted", "nio's reply went over the wire unencrypted");
    await waitForDecryption(reply, "alice (nio's reply)");
    assert.equal(reply.getContent().body, toJs);
    assert.equal(reply.getSender(), nio.userId);
    const senderDevice = await alice.getCrypto().getUserDeviceInfo([nio.userId], true);
    assert.ok(senderDevice.get(nio.userId)?.has(nioDevice), `alice does not know nio's device ${nioDevice}`);

    assert.equal(await peer.exited, 0, "nio peer exit code");
});
