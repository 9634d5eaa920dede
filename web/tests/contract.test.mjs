// The pages for APIs the server is still gaining, drawn against the documented shapes with the
// browser's request interception (no server change needed): first-run, admin users and rooms,
// metrics, analytics, subscription status with retry, and alert rules. When the server has an
// endpoint, these tests still pin the shapes the UI expects.
import assert from "node:assert/strict";
import { test } from "node:test";
import { admin, api, BASE, createRoom, person, rand, roomUrl, shot, signIn } from "./lib.mjs";

const json = (route, body, status = 200) => route.fulfill({ status, contentType: "application/json", body: JSON.stringify(body) });
const days = (n) => Array.from({ length: n }, (_, i) => new Date(Date.now() - (n - 1 - i) * 86_400_000).toISOString().slice(0, 10));

test("first run: a server without an admin explains how to create one", { timeout: 60_000 }, async (t) => {
    const page = await person(t);
    await page.route("**/_converge/v1/setup", (r) => json(r, { server_name: "example.org", has_admin: false, registration: "closed", version: "0.1.0" }));
    await page.goto(`${BASE}/`);
    await page.getByRole("heading", { name: "Welcome to your new server" }).waitFor();
    await page.getByText("converge user add NAME --password-stdin --admin").waitFor();
    await shot(page, "00-first-run");
    // Someone who is not the operator goes on to sign in.
    await page.getByRole("link", { name: "Sign in or create an account" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
});

test("admin users and rooms pages follow the documented shapes", { timeout: 90_000 }, async (t) => {
    const a = await admin();
    const page = await person(t);
    const calls = [];
    const users = [
        { user_id: a.userId, displayname: "Admin", admin: true, deactivated: false, created_ts: Date.now() - 9e8, last_seen_ts: Date.now() - 6e4 },
        { user_id: "@bob:localhost", displayname: "Bob", admin: false, deactivated: false, created_ts: Date.now() - 5e8, last_seen_ts: Date.now() - 3.6e6 },
        { user_id: "@gone:localhost", displayname: null, admin: false, deactivated: true, created_ts: Date.now() - 8e8, last_seen_ts: null },
    ];
    await page.route("**/_converge/admin/v1/users**", (r) => {
        const req = r.request();
        calls.push(`${req.method()} ${new URL(req.url()).pathname}`);
        if (req.method() === "GET") {
            const q = new URL(req.url()).searchParams.get("search") ?? "";
            return json(r, { users: users.filter((u) => u.user_id.includes(q)), next_from: q ? undefined : "50" });
        }
        return json(r, {});
    });
    await page.route("**/_converge/admin/v1/rooms?**", (r) =>
        json(r, { rooms: [{ room_id: "!a:localhost", name: "Ops", canonical_alias: "#ops:localhost", joined_members: 12, events: 3456, created_ts: Date.now() - 1e9, public: true }] }),
    );
    await page.route("**/_converge/admin/v1/rooms/*/shutdown", (r) => {
        calls.push("shutdown");
        return json(r, { kicked_users: ["@a:localhost", "@b:localhost"] });
    });
    await page.route("**/_converge/admin/v1/metrics", (r) =>
        r.fulfill({ status: 200, contentType: "text/plain", body: "# HELP converge_http_requests_total Requests\n# TYPE converge_http_requests_total counter\nconverge_http_requests_total{route=\"/sync\"} 1234\nconverge_gateway_messages_in{gateway=\"mqtt\"} 42\nprocess_resident_memory_bytes 5.2e7\n" }),
    );
    await signIn(page, a);
    await page.goto(`${BASE}/admin/users`);
    await page.locator("table").getByText("@bob:localhost").waitFor();
    await page.getByText("Deactivated").waitFor();
    await shot(page, "11-admin-users-contract");
    await page.locator("tr", { hasText: "@bob:localhost" }).getByRole("button", { name: "Make admin" }).click();
    await page.locator("tr", { hasText: "@bob:localhost" }).getByRole("button", { name: "Reset password" }).click();
    await page.getByRole("dialog").getByLabel("New password").fill("another long password");
    await page.getByRole("dialog").getByRole("button", { name: "Reset password" }).click();
    page.once("dialog", (d) => d.accept());
    await page.locator("tr", { hasText: "@bob:localhost" }).getByRole("button", { name: "Deactivate" }).click();
    await page.getByRole("link", { name: "Rooms" }).click();
    await page.locator("table").getByText("#ops:localhost").waitFor();
    await page.getByText("3,456").waitFor();
    page.once("dialog", (d) => d.accept());
    await page.getByRole("button", { name: "Shut down" }).click();
    await page.getByText("2 members were removed").waitFor();
    await shot(page, "12-admin-rooms-contract");
    await page.getByRole("link", { name: "Server" }).click();
    await page.getByText("converge_http_requests_total").waitFor();
    await page.getByText("1,234").waitFor();
    await shot(page, "13-admin-server-contract");
    const enc = encodeURIComponent("@bob:localhost");
    for (const want of [`PUT /_converge/admin/v1/users/${enc}/admin`, `POST /_converge/admin/v1/users/${enc}/password`, `POST /_converge/admin/v1/users/${enc}/deactivate`, "shutdown"]) {
        assert.ok(calls.includes(want), `${want} in ${calls}`);
    }
    assert.deepEqual(page.problems, []);
});

test("analytics draws the documented shape", { timeout: 60_000 }, async (t) => {
    const a = await admin();
    const page = await person(t);
    const d = days(30);
    const rooms = ["!ops:localhost", "!chat:localhost", "!ci:localhost"];
    const wave = (i, k) => Math.round(20 + 15 * Math.sin(i / 4 + k) + (i % 7 === 5 ? 25 : 0));
    const body = {
        days: 30,
        messages_per_day: d.map((day, i) => ({ day, count: rooms.reduce((s, _, k) => s + wave(i, k), 0) })),
        messages_per_room_per_day: d.flatMap((day, i) => rooms.map((room_id, k) => ({ day, room_id, count: wave(i, k) }))),
        daily_active_users: d.map((day, i) => ({ day, count: 8 + (i % 5) })),
        monthly_active_users: 23,
        media: { count: 341, bytes: 734_003_200 },
        gateways: {
            hook_posts: d.map((day, i) => ({ day, count: 5 + (i % 3) })),
            device_samples: d.map((day, i) => ({ day, count: 1400 + 40 * (i % 6) })),
            commands: d.map((day, i) => ({ day, count: i % 4 })),
            deliveries: d.map((day, i) => ({ day, count: 10 + (i % 5) })),
            delivery_failures: d.map((day, i) => ({ day, count: i % 9 === 0 ? 3 : 0 })),
        },
        top_rooms: [
            { room_id: "!ops:localhost", name: "Ops", messages: 812 },
            { room_id: "!chat:localhost", name: "Chat", messages: 640 },
            { room_id: "!ci:localhost", name: "<b>CI</b>", messages: 233 },
        ],
    };
    await page.route("**/_converge/admin/v1/analytics**", (r) => json(r, body));
    await signIn(page, a);
    await page.goto(`${BASE}/analytics`);
    await page.getByTestId("stat-Monthly active users").filter({ hasText: "23" }).waitFor();
    await page.getByTestId("stat-Media stored").filter({ hasText: "700 MB" }).waitFor();
    await page.locator(".bar-list").getByText("<b>CI</b>").waitFor(); // a room name is text, never markup
    assert.equal(await page.locator(".chart canvas").count() >= 3, true);
    await shot(page, "17-analytics-contract");
    await page.getByLabel("Dark").count(); // (theme is per browser; the dark shot is in the a11y test)
    assert.deepEqual(page.problems, []);
});

test("subscription status with retry, and alert rules editing", { timeout: 90_000 }, async (t) => {
    const a = await admin();
    const roomId = await createRoom(a, { name: `Contract ${rand()}` });
    const dev = `probe-${rand()}`;
    await api("POST", `/_converge/admin/v1/rooms/${encodeURIComponent(roomId)}/devices`, { token: a.token, body: { device_id: dev } });
    const page = await person(t);
    let retried = null;
    let alertsPut = null;
    await page.route("**/_converge/admin/v1/rooms/*/subscriptions", (r) =>
        r.request().method() === "GET"
            ? json(r, { subscriptions: [{ subscription_id: "sub1", url: "https://ci.example.org/hook", event_types: ["m.room.message"], pattern: "^!deploy", queued: 3, failures: 2, last_error: "connection refused", last_success_ts: Date.now() - 7_200_000 }] })
            : r.fallback(),
    );
    await page.route("**/_converge/admin/v1/subscriptions/sub1/retry", (r) => {
        retried = r.request().method();
        return json(r, {});
    });
    await page.route(`**/_converge/admin/v1/devices/${dev}/alerts`, (r) => {
        alertsPut = JSON.parse(r.request().postData());
        return json(r, {});
    });
    await signIn(page, a);
    await page.goto(roomUrl(roomId, "hooks"));
    const row = page.locator("tr", { hasText: "https://ci.example.org/hook" });
    await row.getByText("2 hours ago").waitFor();
    await row.getByText("Last error: connection refused").waitFor();
    await row.getByRole("button", { name: "Retry now" }).click();
    assert.equal(retried, "POST");

    await page.goto(roomUrl(roomId, "devices"));
    const card = page.locator(`[data-device="${dev}"]`);
    await card.getByText(/Alerts/).click();
    await card.getByRole("button", { name: "Edit alerts" }).click();
    await card.getByRole("button", { name: "Add rule" }).click();
    await card.getByLabel("Field").fill("temp");
    await card.getByLabel("Operator").selectOption(">=");
    await card.getByLabel("Threshold").fill("30.5");
    await card.getByRole("button", { name: "Save" }).click();
    await card.getByRole("button", { name: "Edit alerts" }).waitFor();
    assert.deepEqual(alertsPut, { alerts: [{ field: "temp", op: ">=", value: 30.5 }] });
    assert.deepEqual(page.problems, []);
});
