// Every HTTP call the app makes outside matrix-js-sdk, in one place, so shapes are easy to adjust.
// The app talks to the server it was loaded from (same origin). The access token travels only in the
// Authorization header; it is never put in a URL or a cookie.
import { ApiError } from "./errors";

let accessToken: string | null = null;
let onUnauthorized: (() => void) | null = null;

export function setAccessToken(token: string | null) {
    accessToken = token;
}
export function setUnauthorizedHandler(fn: (() => void) | null) {
    onUnauthorized = fn;
}

type Query = Record<string, string | number | boolean | undefined | null>;

export function withQuery(path: string, query?: Query): string {
    if (!query) return path;
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
    const s = params.toString();
    return s ? `${path}?${s}` : path;
}

const enc = encodeURIComponent;

interface RequestOptions {
    body?: unknown;
    query?: Query;
    auth?: boolean;
    signal?: AbortSignal;
    /** Return the raw text instead of JSON. */
    text?: boolean;
}

export async function request<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = {};
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    if (opts.auth !== false && accessToken) headers.authorization = `Bearer ${accessToken}`;
    let res: Response;
    try {
        res = await fetch(withQuery(path, opts.query), {
            method,
            headers,
            body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
            signal: opts.signal,
            credentials: "omit",
        });
    } catch (e) {
        if ((e as Error).name === "AbortError") throw e;
        throw new ApiError(0, "NETWORK", "");
    }
    const raw = await res.text();
    if (!res.ok) {
        let data: Record<string, unknown> = {};
        try {
            data = raw ? JSON.parse(raw) : {};
        } catch {
            /* not JSON: leave empty, the status says enough */
        }
        const err = new ApiError(res.status, String(data.errcode ?? ""), typeof data.error === "string" ? data.error : "", data);
        if (err.errcode === "M_UNKNOWN_TOKEN" && opts.auth !== false) onUnauthorized?.();
        throw err;
    }
    if (opts.text) return raw as T;
    if (!raw) return {} as T;
    try {
        return JSON.parse(raw) as T;
    } catch {
        throw new ApiError(res.status, "M_NOT_JSON", "The server sent an answer this page could not read");
    }
}

// ------------------------------------------------------------------------------------------------
// Server, setup and sessions (Matrix client-server API, before matrix-js-sdk is loaded)

export interface SetupInfo {
    server_name: string;
    has_admin: boolean;
    registration: "open" | "token" | "closed";
    version: string;
}
export const getSetup = () => request<SetupInfo>("GET", "/_converge/v1/setup", { auth: false });

export interface Health {
    status: string;
    version?: string;
    store?: { backend: string; ok: boolean };
    gateways?: Record<string, { ok: boolean; connected?: boolean; messages_in?: number; messages_out?: number; errors?: number; dropped?: number }>;
}
export const getHealth = () => request<Health>("GET", "/_converge/health", { auth: false });

export interface LoginResult {
    user_id: string;
    access_token: string;
    device_id: string;
}

export function login(user: string, password: string) {
    return request<LoginResult>("POST", "/_matrix/client/v3/login", {
        auth: false,
        body: {
            type: "m.login.password",
            identifier: { type: "m.id.user", user },
            password,
            initial_device_display_name: "Converge Web",
        },
    });
}

export const logout = () => request("POST", "/_matrix/client/v3/logout", { body: {} });
export const whoami = () => request<{ user_id: string; device_id?: string }>("GET", "/_matrix/client/v3/account/whoami");

interface UiaResponse {
    flows?: { stages: string[] }[];
    session?: string;
    completed?: string[];
    params?: Record<string, unknown>;
}

/** The registration flows the server offers (a 401 with UIA flows), or null if registration is closed. */
export async function registrationFlows(): Promise<UiaResponse | null> {
    try {
        await request("POST", "/_matrix/client/v3/register", { auth: false, body: {} });
        return { flows: [{ stages: [] }] };
    } catch (e) {
        const err = e as ApiError;
        if (err.status === 401 && err.data.flows) return err.data as UiaResponse;
        if (err.errcode === "M_FORBIDDEN") return null;
        throw e;
    }
}

export async function tokenIsValid(token: string): Promise<boolean> {
    const r = await request<{ valid: boolean }>("GET", "/_matrix/client/v1/register/m.login.registration_token/validity", {
        auth: false,
        query: { token },
    });
    return !!r.valid;
}

/** Registers with user-interactive auth: completes m.login.registration_token (with `token`) and m.login.dummy stages. */
export async function register(username: string, password: string, token?: string): Promise<LoginResult> {
    const body: Record<string, unknown> = { username, password, initial_device_display_name: "Converge Web" };
    let flow: string[] | undefined;
    for (let round = 0; round < 6; round++) {
        try {
            return await request<LoginResult>("POST", "/_matrix/client/v3/register", { auth: false, body });
        } catch (e) {
            const err = e as ApiError;
            if (err.status !== 401 || !err.data.flows) throw e;
            const uia = err.data as UiaResponse;
            const canDo = (s: string) => s === "m.login.dummy" || (s === "m.login.registration_token" && !!token);
            flow ??= uia.flows?.find((f) => f.stages.every(canDo))?.stages;
            if (!flow) {
                const needsToken = uia.flows?.some((f) => f.stages.includes("m.login.registration_token"));
                throw new ApiError(401, needsToken ? "CV_NEEDS_TOKEN" : "CV_NO_FLOW", needsToken
                    ? "This server needs a registration token to create an account"
                    : "This server asks for a sign-up step this app can't do");
            }
            const stage = flow.find((s) => !(uia.completed ?? []).includes(s));
            if (!stage) throw e;
            body.auth = { type: stage, session: uia.session, ...(stage === "m.login.registration_token" ? { token } : {}) };
        }
    }
    throw new ApiError(401, "CV_NO_FLOW", "Registration did not complete");
}

// ------------------------------------------------------------------------------------------------
// Media (authenticated endpoints only; fetched as blobs)

export function parseMxc(mxc: string): { server: string; id: string } | null {
    const m = /^mxc:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/.exec(mxc);
    return m ? { server: m[1], id: m[2] } : null;
}

export async function fetchMedia(mxc: string, thumb?: { width: number; height: number }, signal?: AbortSignal): Promise<Blob> {
    const p = parseMxc(mxc);
    if (!p) throw new ApiError(400, "M_INVALID_PARAM", "That isn't a media link");
    const path = thumb
        ? withQuery(`/_matrix/client/v1/media/thumbnail/${enc(p.server)}/${enc(p.id)}`, { width: thumb.width, height: thumb.height, method: "scale" })
        : `/_matrix/client/v1/media/download/${enc(p.server)}/${enc(p.id)}`;
    let res: Response;
    try {
        res = await fetch(path, { headers: accessToken ? { authorization: `Bearer ${accessToken}` } : {}, signal, credentials: "omit" });
    } catch (e) {
        if ((e as Error).name === "AbortError") throw e;
        throw new ApiError(0, "NETWORK", "");
    }
    if (!res.ok) {
        let data: Record<string, unknown> = {};
        try {
            data = await res.json();
        } catch {
            /* ignore */
        }
        throw new ApiError(res.status, String(data.errcode ?? ""), String(data.error ?? ""), data);
    }
    return res.blob();
}

/** Uploads with progress (XMLHttpRequest: fetch has no upload progress). Resolves with the mxc URI. */
export function uploadMedia(body: Blob, filename: string, onProgress?: (loaded: number, total: number) => void, signal?: AbortSignal): Promise<string> {
    return new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open("POST", withQuery("/_matrix/media/v3/upload", { filename }));
        if (accessToken) xhr.setRequestHeader("authorization", `Bearer ${accessToken}`);
        xhr.setRequestHeader("content-type", body.type || "application/octet-stream");
        xhr.upload.onprogress = (ev) => onProgress?.(ev.loaded, ev.lengthComputable ? ev.total : body.size);
        xhr.onload = () => {
            let data: Record<string, unknown> = {};
            try {
                data = JSON.parse(xhr.responseText);
            } catch {
                /* ignore */
            }
            if (xhr.status >= 200 && xhr.status < 300 && typeof data.content_uri === "string") resolve(data.content_uri);
            else reject(new ApiError(xhr.status, String(data.errcode ?? ""), String(data.error ?? ""), data));
        };
        xhr.onerror = () => reject(new ApiError(0, "NETWORK", ""));
        xhr.onabort = () => reject(new DOMException("aborted", "AbortError"));
        signal?.addEventListener("abort", () => xhr.abort());
        xhr.send(body);
    });
}

// ------------------------------------------------------------------------------------------------
// Gateways: webhooks and subscriptions

export interface Webhook {
    hook_id: string;
    url: string;
    user_id: string;
    signed: boolean;
    created_by?: string;
    created_ts?: number;
    name?: string;
}
export interface NewWebhook extends Webhook {
    secret: string;
    room_id: string;
}
export interface Subscription {
    subscription_id: string;
    url: string;
    event_types: string[];
    pattern: string | null;
    queued: number;
    failures: number;
    last_error: string | null;
    last_success_ts?: number | null;
}

const room = (roomId: string) => `/_converge/admin/v1/rooms/${enc(roomId)}`;

export const listWebhooks = (roomId: string) => request<{ webhooks: Webhook[] }>("GET", `${room(roomId)}/webhooks`).then((r) => r.webhooks ?? []);
export const createWebhook = (roomId: string, name: string, signed: boolean) =>
    request<NewWebhook>("POST", `${room(roomId)}/webhooks`, { body: { name: name || undefined, signed } });
export const deleteWebhook = (hookId: string) => request("DELETE", `/_converge/admin/v1/webhooks/${enc(hookId)}`);

export const listSubscriptions = (roomId: string) =>
    request<{ subscriptions: Subscription[] }>("GET", `${room(roomId)}/subscriptions`).then((r) => r.subscriptions ?? []);
export const createSubscription = (roomId: string, body: { url: string; event_types: string[]; prefix?: string; regex?: string }) =>
    request<Subscription & { secret: string }>("POST", `${room(roomId)}/subscriptions`, { body });
export const deleteSubscription = (id: string) => request("DELETE", `/_converge/admin/v1/subscriptions/${enc(id)}`);
export const retrySubscription = (id: string) => request("POST", `/_converge/admin/v1/subscriptions/${enc(id)}/retry`, { body: {} });

// ------------------------------------------------------------------------------------------------
// Devices (MQTT gateway)

export type AlertOp = ">" | ">=" | "<" | "<=" | "==" | "!=";
export interface AlertRule {
    field: string;
    op: AlertOp;
    value: number;
}
export interface DeviceRow {
    device_id: string;
    user_id: string;
    alerts: AlertRule[];
    created_by?: string;
    created_ts?: number;
}
export interface TelemetrySample {
    ts: number;
    values: Record<string, unknown>;
}

/** Alert rules as the server stores them today use `threshold`; the new PUT takes `value`. Accept both. */
function normaliseAlerts(raw: unknown): AlertRule[] {
    if (!Array.isArray(raw)) return [];
    return raw
        .filter((a) => a && typeof a === "object")
        .map((a: Record<string, unknown>) => ({ field: String(a.field ?? ""), op: (a.op ?? ">") as AlertOp, value: Number(a.value ?? a.threshold ?? 0) }));
}

export const listDevices = (roomId: string) =>
    request<{ devices: DeviceRow[] }>("GET", `${room(roomId)}/devices`).then((r) => (r.devices ?? []).map((d) => ({ ...d, alerts: normaliseAlerts(d.alerts) })));
export const createDevice = (roomId: string, deviceId: string) =>
    request<{ device_id: string; user_id: string; mqtt_username?: string; mqtt_password?: string }>("POST", `${room(roomId)}/devices`, { body: { device_id: deviceId } });
export const deleteDevice = (deviceId: string) => request("DELETE", `/_converge/admin/v1/devices/${enc(deviceId)}`);
export const putAlerts = (deviceId: string, alerts: AlertRule[]) =>
    request("PUT", `/_converge/admin/v1/devices/${enc(deviceId)}/alerts`, { body: { alerts } });

export const TELEMETRY_PAGE = 10_000;

/**
 * All samples in [from, to], following pages (the server returns at most 10,000 per call, oldest first,
 * ordered by time only). Samples can share a millisecond, so each next page starts *at* the last time
 * seen and skips the samples at that time already taken. `skipAtFrom` does the same for a caller that
 * already holds that many samples at exactly `from`.
 */
export async function getTelemetry(deviceId: string, from: number, to: number, signal?: AbortSignal, skipAtFrom = 0, maxSamples = 1_000_000): Promise<TelemetrySample[]> {
    const all: TelemetrySample[] = [];
    let cursor = from;
    let skip = skipAtFrom;
    for (;;) {
        const r = await request<{ samples: TelemetrySample[] }>("GET", `/_converge/client/v1/devices/${enc(deviceId)}/telemetry`, {
            query: { from: cursor, to, limit: TELEMETRY_PAGE },
            signal,
        });
        const page = r.samples ?? [];
        let i = 0;
        while (i < page.length && skip > 0 && page[i].ts === cursor) {
            i++;
            skip--;
        }
        for (; i < page.length; i++) all.push(page[i]);
        if (page.length < TELEMETRY_PAGE || all.length >= maxSamples) return all;
        const lastTs = page[page.length - 1].ts;
        let atLast = 0;
        for (let j = page.length - 1; j >= 0 && page[j].ts === lastTs; j--) atLast++;
        if (atLast === page.length) {
            // A whole page at one millisecond: move on rather than loop.
            cursor = lastTs + 1;
            skip = 0;
        } else {
            skip = lastTs === cursor ? skip + atLast : atLast;
            cursor = lastTs;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Server admin

export interface AdminUser {
    user_id: string;
    displayname: string | null;
    admin: boolean;
    deactivated: boolean;
    created_ts: number | null;
    last_seen_ts: number | null;
}
export interface Page<T> {
    items: T[];
    next_from?: string | null;
}
export const listUsers = (search: string, from?: string, limit = 50) =>
    request<{ users: AdminUser[]; next_from?: string }>("GET", "/_converge/admin/v1/users", { query: { search, from, limit } });
export const createUser = (localpart: string, password: string, admin: boolean) =>
    request<{ user_id: string }>("POST", "/_converge/admin/v1/users", { body: { localpart, password, admin } });
export const deactivateUser = (userId: string) => request("POST", `/_converge/admin/v1/users/${enc(userId)}/deactivate`, { body: {} });
export const resetPassword = (userId: string, password: string, logoutDevices: boolean) =>
    request("POST", `/_converge/admin/v1/users/${enc(userId)}/password`, { body: { password, logout_devices: logoutDevices } });
export const setAdmin = (userId: string, admin: boolean) => request("PUT", `/_converge/admin/v1/users/${enc(userId)}/admin`, { body: { admin } });

export interface RegistrationToken {
    token: string;
    uses_allowed: number | null;
    pending?: number;
    completed: number;
    expiry_time: number | null;
}
export const listTokens = () => request<{ tokens: RegistrationToken[] }>("GET", "/_converge/admin/v1/registration_tokens").then((r) => r.tokens ?? []);
export const createToken = (usesAllowed: number | null, expiresIn: string | null) =>
    request<RegistrationToken>("POST", "/_converge/admin/v1/registration_tokens", {
        body: { uses_allowed: usesAllowed ?? undefined, expires_in: expiresIn ?? undefined },
    });
export const deleteToken = (token: string) => request("DELETE", `/_converge/admin/v1/registration_tokens/${enc(token)}`);

export interface AdminRoom {
    room_id: string;
    name: string | null;
    canonical_alias: string | null;
    joined_members: number;
    events: number;
    created_ts: number | null;
    public: boolean;
}
export const listRooms = (search: string, from?: string, limit = 50) =>
    request<{ rooms: AdminRoom[]; next_from?: string }>("GET", "/_converge/admin/v1/rooms", { query: { search, from, limit } });
export const shutdownRoom = (roomId: string) => request<{ kicked_users: string[] }>("POST", `/_converge/admin/v1/rooms/${enc(roomId)}/shutdown`, { body: {} });
export const getMetrics = () => request<string>("GET", "/_converge/admin/v1/metrics", { text: true });

// ------------------------------------------------------------------------------------------------
// Analytics

export interface DayCount {
    day: string;
    count: number;
}
export interface Analytics {
    days: number;
    messages_per_day: DayCount[];
    messages_per_room_per_day: { day: string; room_id: string; count: number }[];
    daily_active_users: DayCount[];
    monthly_active_users: number;
    media: { count: number; bytes: number };
    gateways: Partial<Record<"hook_posts" | "device_samples" | "commands" | "deliveries" | "delivery_failures", DayCount[]>>;
    top_rooms: { room_id: string; name: string | null; messages: number }[];
}
export const getAnalytics = (days: number) => request<Analytics>("GET", "/_converge/admin/v1/analytics", { query: { days } });

/** Whether the signed-in user is a server admin, from the server's own answers (403 = no). */
export async function isServerAdmin(): Promise<boolean> {
    try {
        await listUsers("", undefined, 1);
        return true;
    } catch (e) {
        const err = e as ApiError;
        if (err.status === 403) return false;
        if (err.errcode !== "M_UNRECOGNIZED" && err.status !== 404 && err.status !== 405) throw e;
    }
    // Older servers: ask about a token that cannot exist; admins hear "not found", others "forbidden".
    try {
        await request("GET", "/_converge/admin/v1/registration_tokens/--probe--");
        return true;
    } catch (e) {
        return (e as ApiError).status !== 403 && (e as ApiError).status !== 401;
    }
}
