// The matrix-js-sdk client: created after sign-in, with the Rust crypto (wasm) loaded lazily by
// initRustCrypto. One client per tab, reachable through `getClient()` and the hooks below.
import { ClientEvent, createClient, decodeRecoveryKey, HttpApiEvent, SyncState, type MatrixClient } from "./sdk";

import { useEffect, useReducer } from "preact/hooks";
import type { Session } from "../lib/session";

// After sign-out the stopped client stays reachable until the signed-in views have unmounted.
let client: MatrixClient | null = null;
let stopped = false;
export let cryptoProblem: string | null = null;

export function getClient(): MatrixClient {
    if (!client) throw new Error("not signed in");
    return client;
}

// Secret-storage keys the user has typed or just created, by key ID, for the crypto callbacks.
const secretKeys = new Map<string, Uint8Array<ArrayBuffer>>();
let askForRecoveryKey: (() => Promise<string | null>) | null = null;
export function setRecoveryKeyPrompt(fn: (() => Promise<string | null>) | null) {
    askForRecoveryKey = fn;
}
export function rememberSecretKey(keyId: string, key: Uint8Array<ArrayBuffer>) {
    secretKeys.set(keyId, key);
}

const EMPTY_PUSH_RULES = { global: { override: [], content: [], room: [], sender: [], underride: [] } };

/**
 * Fetch for the SDK that tolerates gaps in a young server: a missing push-rules endpoint would keep
 * the SDK from ever finishing its first sync, so an empty rule set stands in for it.
 */
const tolerantFetch: typeof fetch = async (input, init) => {
    const res = await fetch(input, { ...init, credentials: "omit" });
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if ((res.status === 404 || res.status === 405) && /\/_matrix\/client\/v3\/pushrules\/?$/.test(new URL(url, location.href).pathname)) {
        return new Response(JSON.stringify(EMPTY_PUSH_RULES), { status: 200, headers: { "content-type": "application/json" } });
    }
    return res;
};

/** One crypto database per account and device, so a store left by an old session never gets in the way. */
export function cryptoPrefix(s: { userId: string; deviceId: string }): string {
    return `converge-crypto-${`${s.userId}-${s.deviceId}`.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/** Removes crypto stores of earlier sessions in this browser (none of them is open yet). */
async function deleteOtherCryptoStores(keep: string) {
    try {
        const dbs = (await indexedDB.databases?.()) ?? [];
        for (const db of dbs) {
            if (db.name?.startsWith("converge-crypto-") && !db.name.startsWith(keep)) indexedDB.deleteDatabase(db.name);
        }
    } catch {
        /* not supported: leave them */
    }
}

export type StartPhase = "crypto" | "sync" | "ready";

export async function startClient(session: Session, onPhase: (p: StartPhase) => void, onLoggedOut?: () => void): Promise<MatrixClient> {
    if (client && !stopped) return client;
    stopped = false;
    cryptoProblem = null;
    const c = createClient({
        baseUrl: location.origin,
        accessToken: session.accessToken,
        userId: session.userId,
        deviceId: session.deviceId,
        fetchFn: tolerantFetch,
        timelineSupport: true,
        disableVoip: true,
        cryptoCallbacks: {
            cacheSecretStorageKey: (keyId, _info, key) => void secretKeys.set(keyId, key as Uint8Array<ArrayBuffer>),
            getSecretStorageKey: async ({ keys }) => {
                const known = Object.keys(keys).find((id) => secretKeys.has(id));
                if (known) return [known, secretKeys.get(known)!];
                if (!askForRecoveryKey) return null;
                const typed = await askForRecoveryKey();
                if (!typed) return null;
                const keyId = (await c.secretStorage.getDefaultKeyId()) ?? Object.keys(keys)[0];
                const key = decodeRecoveryKey(typed.trim()) as Uint8Array<ArrayBuffer>;
                secretKeys.set(keyId, key);
                return [keyId, key];
            },
        },
    });
    client = c;
    // The server no longer knows the token (signed out elsewhere, deactivated): back to sign-in.
    c.on(HttpApiEvent.SessionLoggedOut, () => {
        void stopClient(false);
        onLoggedOut?.();
    });
    onPhase("crypto");
    const prefix = cryptoPrefix(session);
    await deleteOtherCryptoStores(prefix);
    try {
        await c.initRustCrypto({ useIndexedDB: true, cryptoDatabasePrefix: prefix });
    } catch (e) {
        // Typically a server without the E2EE endpoints yet. Chat in unencrypted rooms still works.
        console.warn("encryption unavailable", e);
        cryptoProblem = "Encryption isn't available right now, so encrypted messages can't be read or sent in this session.";
    }
    onPhase("sync");
    const prepared = new Promise<void>((resolve) => {
        const onSync = (state: SyncState) => {
            if (state === SyncState.Prepared || state === SyncState.Syncing) {
                c.off(ClientEvent.Sync, onSync);
                resolve();
            }
        };
        c.on(ClientEvent.Sync, onSync);
    });
    await c.startClient({ initialSyncLimit: 30, lazyLoadMembers: true });
    await prepared;
    onPhase("ready");
    return c;
}

export async function stopClient(logout: boolean) {
    const c = client;
    if (!c || stopped) return;
    stopped = true;
    c.stopClient();
    if (logout) {
        try {
            await c.logout(true);
        } catch (e) {
            console.warn("logout request failed", e);
        }
        try {
            // Deleting a database waits for open connections; don't let sign-out wait on that. A deletion
            // still pending completes when the page goes, and the next sign-in removes leftovers anyway.
            const cleared = c.clearStores({ cryptoDatabasePrefix: cryptoPrefix({ userId: c.getUserId()!, deviceId: c.getDeviceId()! }) } as never);
            await Promise.race([cleared, new Promise((r) => setTimeout(r, 3000))]);
        } catch (e) {
            console.warn("could not clear stores", e);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Hooks: re-render a component when an emitter fires.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Emitter = { on: (...a: any[]) => unknown; off: (...a: any[]) => unknown };

/** Re-renders when any of `events` fires on `emitter` (coalesced to one render per frame). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function useEmitter(emitter: Emitter | null | undefined, events: string[], filter?: (...args: any[]) => boolean) {
    const [, bump] = useReducer((n: number) => n + 1, 0);
    useEffect(() => {
        if (!emitter) return;
        let queued = false;
        const l = (...args: never[]) => {
            if (filter && !filter(...args)) return;
            if (queued) return;
            queued = true;
            requestAnimationFrame(() => {
                queued = false;
                bump(0);
            });
        };
        for (const e of events) emitter.on(e as never, l);
        return () => {
            for (const e of events) emitter.off(e as never, l);
        };
        // eslint-disable-next-line react-hooks/exhaustive-deps
    }, [emitter, events.join(",")]);
}
