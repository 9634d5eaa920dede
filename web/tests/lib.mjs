// Shared helpers for the browser tests: Debian's Chromium through playwright-core (no browser
// download), accounts made through the API, sign-in through the UI, screenshots, and waits.
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

export const BASE = (process.env.WEB_URL ?? "http://127.0.0.1:8450").replace(/\/$/, "");
export const API = (process.env.CONVERGE_URL ?? BASE).replace(/\/$/, "");
export const ADMIN = { user: process.env.ADMIN_USER ?? "admin", password: process.env.ADMIN_PASSWORD ?? "admin-password" };
export const SHOTS = resolve(process.env.SCREENSHOT_DIR ?? new URL("../../target/web-screenshots", import.meta.url).pathname);
export const MQTT_PORT = process.env.MQTT_PORT ?? "1883";
/** The gateway's topic prefix (run.sh gives each run its own, so runs sharing a broker stay apart). */
export const TOPIC = process.env.MQTT_TOPIC_PREFIX ?? "converge";
mkdirSync(SHOTS, { recursive: true });

export const rand = () => randomBytes(3).toString("hex");

// ------------------------------------------------------------------ HTTP

export async function api(method, path, { token, body, raw } = {}) {
    const res = await fetch(API + path, {
        method,
        headers: { ...(body !== undefined ? { "content-type": "application/json" } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json = {};
    try {
        json = text ? JSON.parse(text) : {};
    } catch {
        json = { text };
    }
    return { status: res.status, json };
}

export async function login(user, password) {
    const r = await api("POST", "/_matrix/client/v3/login", { body: { type: "m.login.password", identifier: { type: "m.id.user", user }, password } });
    if (r.status !== 200) throw new Error(`login ${user}: ${r.status} ${JSON.stringify(r.json)}`);
    return { userId: r.json.user_id, token: r.json.access_token, user, password };
}

let adminSession;
export async function admin() {
    adminSession ??= await login(ADMIN.user, ADMIN.password);
    return adminSession;
}

/** Registers a fresh user through the API, with a registration token from the admin API when asked. */
export async function newUser(prefix = "u") {
    const username = `${prefix}-${rand()}`;
    const password = `pw-${rand()}${rand()}`;
    const body = { username, password, inhibit_login: true };
    let r = await api("POST", "/_matrix/client/v3/register", { body });
    for (let i = 0; r.status === 401 && i < 4; i++) {
        const flow = r.json.flows.find((f) => f.stages.every((s) => s === "m.login.dummy" || s === "m.login.registration_token"));
        const stage = flow.stages.find((s) => !(r.json.completed ?? []).includes(s));
        const auth = { type: stage, session: r.json.session };
        if (stage === "m.login.registration_token") {
            const t = await api("POST", "/_converge/admin/v1/registration_tokens", { token: (await admin()).token, body: { uses_allowed: 1 } });
            auth.token = t.json.token;
        }
        r = await api("POST", "/_matrix/client/v3/register", { body: { ...body, auth } });
    }
    if (r.status !== 200) throw new Error(`register ${username}: ${r.status} ${JSON.stringify(r.json)}`);
    return login(username, password);
}

export async function createRoom(session, body) {
    const r = await api("POST", "/_matrix/client/v3/createRoom", { token: session.token, body });
    if (r.status !== 200) throw new Error(`createRoom: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json.room_id;
}

let txn = 0;
export async function sendEvent(session, roomId, type, content) {
    const r = await api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/${type}/t${Date.now()}-${txn++}`, { token: session.token, body: content });
    if (r.status !== 200) throw new Error(`send: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json.event_id;
}


// ------------------------------------------------------------------ browser

export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** Launches Chromium with a fresh user-data-dir; closed (and the dir removed) when test `t` ends. */
export async function browser(t, options = {}) {
    const dir = mkdtempSync(join(tmpdir(), "cw-chromium-"));
    const ctx0 = await chromium.launchPersistentContext(dir, {
        executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
        args: CHROMIUM_ARGS,
        headless: true,
        ...options,
    });
    // A persistent context is one profile; other contexts for other people come from a second launch.
    t.after(async () => {
        await ctx0.close().catch(() => {});
        rmSync(dir, { recursive: true, force: true });
    });
    return ctx0;
}

/** A person: their own browser profile and page, with errors and CSP violations recorded. */
export async function person(t, { width = 1280, height = 800, bypassCSP = false } = {}) {
    const ctx = await browser(t, { bypassCSP });
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    await page.setViewportSize({ width, height });
    page.problems = [];
    page.on("pageerror", (e) => {
        page.problems.push(`page error: ${e.message}`);
        if (process.env.WEB_TEST_DEBUG) console.error("page error:", e.message, e.stack);
    });
    if (process.env.WEB_TEST_DEBUG) page.on("console", (m) => m.type() === "error" && console.error("console:", m.text().slice(0, 300)));
    page.on("console", (m) => {
        const text = m.text();
        if (/Content Security Policy|Refused to/.test(text)) page.problems.push(`CSP: ${text}`);
    });
    return page;
}

export async function signIn(page, session) {
    await page.goto(`${BASE}/login`);
    await page.getByLabel("Username").fill(session.user);
    await page.getByLabel("Password").fill(session.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("navigation", { name: "Main" }).waitFor({ timeout: 60_000 });
}

export async function shot(page, name) {
    await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

/** axe-core in the page (through the DevTools protocol, so the page's CSP is untouched). */
const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
export async function axe(page) {
    await page.evaluate(AXE);
    const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
    return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}

export function describeViolations(vs) {
    return vs.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join("; ")}`).join("\n");
}

export async function waitFor(what, check, ms = 30_000, every = 250) {
    const end = Date.now() + ms;
    let last;
    while (Date.now() < end) {
        try {
            last = await check();
            if (last) return last;
        } catch (e) {
            last = e;
        }
        await new Promise((r) => setTimeout(r, every));
    }
    throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ""}`);
}

export const roomUrl = (roomId, tab) => `${BASE}/rooms/${encodeURIComponent(roomId)}${tab ? `/${tab}` : ""}`;
