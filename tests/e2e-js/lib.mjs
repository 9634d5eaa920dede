// Shared helpers for the e2e tests: UIA registration, SDK login with Rust crypto, bounded waits, request logging.
import "./polyfill.mjs";
import { appendFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import * as sdk from "matrix-js-sdk";

export { sdk };
export const HS = (process.env.HOMESERVER_URL ?? "http://127.0.0.1:8008").replace(/\/+$/, "");
export const WAIT_MS = Number(process.env.E2E_WAIT_MS ?? 30_000);
// The SDK's loggers are pinned at DEBUG and write via console.* at call time: keep only errors unless E2E_DEBUG is set.
if (!process.env.E2E_DEBUG) for (const level of ["debug", "info", "log", "trace", "warn"]) console[level] = () => {};

export const rand = () => randomBytes(4).toString("hex");

// ---------------------------------------------------------------- request log

// Turns a request path into an endpoint pattern: IDs and client-chosen names become {placeholders}.
export function endpointPattern(pathname) {
    const segs = pathname.split("/").map(decodeURIComponent);
    return segs
        .map((s, i) => {
            const prev = segs[i - 1];
            const prev2 = segs[i - 2];
            if (/^[!@$#]/.test(s)) return { "!": "{roomId}", "@": "{userId}", $: "{eventId}", "#": "{roomAlias}" }[s[0]];
            if (prev2 === "send" || prev2 === "sendToDevice" || prev2 === "redact") return "{txnId}";
            if (prev === "filter" || prev === "devices") return `{${prev === "filter" ? "filterId" : "deviceId"}}`;
            if (prev === "version" && segs.includes("room_keys")) return "{version}";
            if (prev2 === "keys" && segs.includes("room_keys")) return "{sessionId}";
            if (segs[i - 3] === "pushrules" && !s.startsWith(".")) return "{ruleId}";
            if (s.startsWith("m.secret_storage.key.")) return "m.secret_storage.key.{keyId}";
            return s;
        })
        .join("/");
}

// A fetch that appends "<source> METHOD /path/pattern?param&names" to $E2E_REQUEST_LOG (when set) before sending.
export function loggingFetch(source) {
    const file = process.env.E2E_REQUEST_LOG;
    return (input, init) => {
        if (file) {
            const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
            const method = (init?.method ?? input?.method ?? "GET").toUpperCase();
            const query = [...new Set(url.searchParams.keys())].sort().join("&");
            appendFileSync(file, `${source} ${method} ${endpointPattern(url.pathname)}${query ? `?${query}` : ""}\n`);
        }
        return fetch(input, init);
    };
}
const testFetch = loggingFetch("test");

// Plain JSON request; returns { status, json }.
export async function api(method, path, { token, body } = {}) {
    const res = await testFetch(HS + path, {
        method,
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : {} };
}

// ---------------------------------------------------------------- waiting

// Resolves with check()'s first truthy value; checks now and every `every` ms. The timeout error says what we waited for.
export function waitUntil(what, check, ms = WAIT_MS, every = 100) {
    return new Promise((resolve, reject) => {
        let busy = false;
        const done = (fn, v) => {
            clearInterval(timer);
            clearTimeout(timeout);
            fn(v);
        };
        const tick = async () => {
            if (busy) return;
            busy = true;
            try {
                const v = await check();
                if (v) done(resolve, v);
            } catch (e) {
                done(reject, e);
            } finally {
                busy = false;
            }
        };
        const timer = setInterval(tick, every);
        const timeout = setTimeout(() => {
            const detail = typeof what === "function" ? what() : what;
            done(reject, new Error(`timed out after ${ms} ms waiting for ${detail}`));
        }, ms);
        tick();
    });
}

// Resolves with the listener arguments of the first `event` emission for which predicate(...args) is truthy.
export function waitForEmit(emitter, event, predicate, what, ms = WAIT_MS) {
    return new Promise((resolve, reject) => {
        const listener = (...args) => {
            if (!predicate(...args)) return;
            cleanup();
            resolve(args);
        };
        const timeout = setTimeout(() => {
            cleanup();
            reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
        }, ms);
        const cleanup = () => {
            clearTimeout(timeout);
            emitter.off(event, listener);
        };
        emitter.on(event, listener);
    });
}

// ---------------------------------------------------------------- accounts and clients

// Registers a fresh user with plain fetch, completing the first advertised UIA flow whose stages we can do.
export async function register(name) {
    const token = process.env.REGISTRATION_TOKEN;
    const canDo = (stage) => stage === "m.login.dummy" || (stage === "m.login.registration_token" && !!token);
    const username = `e2e-${name}-${rand()}`;
    const password = `pw-${randomBytes(12).toString("hex")}`;
    const body = { username, password, inhibit_login: true };
    let res = await api("POST", "/_matrix/client/v3/register", { body });
    let flow;
    for (let round = 0; res.status === 401 && round < 10; round++) {
        const uia = res.json;
        flow ??= uia.flows?.find((f) => f.stages.every(canDo));
        if (!flow) throw new Error(`register: no flow we can complete in ${JSON.stringify(uia.flows)}`);
        const stage = flow.stages.find((s) => !(uia.completed ?? []).includes(s));
        if (!stage) throw new Error(`register: all stages completed but got 401: ${JSON.stringify(uia)}`);
        body.auth = { type: stage, session: uia.session, ...(stage === "m.login.registration_token" ? { token } : {}) };
        res = await api("POST", "/_matrix/client/v3/register", { body });
    }
    if (res.status !== 200) throw new Error(`register ${username}: HTTP ${res.status} ${JSON.stringify(res.json)}`);
    return { name, username, password, userId: res.json.user_id };
}

// Logs an account in (a new device), sets up Rust crypto with an in-memory store, starts syncing and waits for
// PREPARED. The client is stopped when test `t` ends.
export async function login(t, account, { cryptoCallbacks, crypto = true } = {}) {
    const fetchFn = loggingFetch("js-sdk");
    const res = await sdk.createClient({ baseUrl: HS, fetchFn }).loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: account.username },
        password: account.password,
        initial_device_display_name: `e2e-js ${account.name}`,
    });
    const client = sdk.createClient({
        baseUrl: HS,
        fetchFn,
        userId: res.user_id,
        deviceId: res.device_id,
        accessToken: res.access_token,
        cryptoCallbacks,
    });
    client.account = account;
    t.after(() => client.stopClient());
    if (crypto) await client.initRustCrypto({ useIndexedDB: false });
    const synced = waitForEmit(
        client,
        sdk.ClientEvent.Sync,
        (s) => s === sdk.SyncState.Prepared || s === sdk.SyncState.Error,
        `${account.name}'s first sync to reach PREPARED`,
    );
    await client.startClient({ initialSyncLimit: 30 });
    const [state, , data] = await synced;
    if (state !== sdk.SyncState.Prepared) throw new Error(`${account.name}'s first sync failed: ${data?.error}`);
    return client;
}

// Registers and logs in one client per name.
export async function users(t, names, opts) {
    const accounts = await Promise.all(names.map(register));
    return Promise.all(accounts.map((a) => login(t, a, opts)));
}

// ---------------------------------------------------------------- rooms and events

export const ENCRYPTION = { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } };

// alice creates a room (opts as for /createRoom), the invitees (clients) join, and every client has synced it. For an
// encrypted room it waits until each crypto stack knows: the SDK sends in the clear into a room it has not seen as encrypted.
export async function createRoom(alice, invitees, opts = {}) {
    const invite = [...invitees.map((c) => c.getUserId()), ...(opts.invite ?? [])];
    const { room_id: roomId } = await alice.createRoom({ preset: sdk.Preset.PrivateChat, ...opts, invite });
    await waitForMembership(alice, roomId, alice.getUserId());
    for (const c of invitees) {
        await waitForMembership(c, roomId, c.getUserId(), "invite");
        await c.joinRoom(roomId);
        await waitForMembership(alice, roomId, c.getUserId());
    }
    if (opts.initial_state?.some((e) => e.type === ENCRYPTION.type)) {
        for (const c of [alice, ...invitees]) {
            await waitUntil(`${c.account.name}'s crypto to see ${roomId} as encrypted`, () => c.getCrypto().isEncryptionEnabledInRoom(roomId));
        }
    }
    return roomId;
}

export function waitForMembership(client, roomId, userId, membership = "join") {
    return waitUntil(
        `${client.account.name} to see ${userId} with membership ${membership} in ${roomId}`,
        () => client.getRoom(roomId)?.getMember(userId)?.membership === membership,
    );
}

export function waitForRoomEvent(client, roomId, eventId) {
    return waitUntil(`event ${eventId} to reach ${client.account.name} in ${roomId}`, () =>
        client.getRoom(roomId)?.findEventById(eventId),
    );
}

// Waits until an encrypted event is successfully decrypted; on timeout reports the decryption failure reason.
export async function waitForDecryption(event, who) {
    await waitUntil(
        () =>
            `${who} to decrypt ${event.getId()} (failure: ${event.decryptionFailureReason ?? "none"}, ` +
            `content: ${JSON.stringify(event.getContent())})`,
        () => !event.isBeingDecrypted() && event.getClearContent() && !event.isDecryptionFailure(),
    );
    return event;
}
