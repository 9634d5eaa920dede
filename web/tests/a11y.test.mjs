// axe-core on the main views: no serious or critical violations, in the light and the dark theme.
import assert from "node:assert/strict";
import { test } from "node:test";
import { admin, api, axe, BASE, createRoom, describeViolations, person, rand, roomUrl, sendEvent, shot, signIn } from "./lib.mjs";

test("the main views have no serious accessibility violations", { timeout: 180_000 }, async (t) => {
    const a = await admin();
    const roomId = await createRoom(a, { name: `Axe ${rand()}`, topic: "Accessibility check" });
    await sendEvent(a, roomId, "m.room.message", { msgtype: "m.text", body: "hello **world**", format: "org.matrix.custom.html", formatted_body: "hello <strong>world</strong>" });
    await api("POST", `/_converge/admin/v1/rooms/${encodeURIComponent(roomId)}/devices`, { token: a.token, body: { device_id: `axe-${rand()}` } });
    const page = await person(t);
    const found = {};
    const check = async (name) => {
        await page.waitForTimeout(300);
        const v = await axe(page);
        if (v.length) found[name] = describeViolations(v);
    };
    await page.goto(`${BASE}/login`);
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await check("sign-in");
    await page.goto(`${BASE}/register`);
    await page.getByRole("heading", { name: "Create an account" }).waitFor();
    await check("register");
    await signIn(page, a);
    const views = [
        ["chat", roomUrl(roomId), () => page.locator(".html-body strong").waitFor()],
        ["devices", roomUrl(roomId, "devices"), () => page.locator(".device-card").first().waitFor()],
        ["hooks", roomUrl(roomId, "hooks"), () => page.getByRole("heading", { name: "Outgoing webhooks" }).waitFor()],
        ["admin-users", `${BASE}/admin/users`, () => page.getByRole("heading", { name: "Administration" }).waitFor()],
        ["admin-tokens", `${BASE}/admin/tokens`, () => page.getByRole("heading", { name: "Registration tokens" }).waitFor()],
        ["admin-server", `${BASE}/admin/server`, () => page.getByRole("heading", { name: "Health" }).waitFor()],
        ["analytics", `${BASE}/analytics`, () => page.getByRole("heading", { name: "Analytics" }).waitFor()],
        ["settings", `${BASE}/settings`, () => page.getByRole("heading", { name: "Settings" }).waitFor()],
    ];
    for (const [name, url, ready] of views) {
        await page.goto(url);
        await ready();
        await check(name);
    }
    // Dark theme: colours change, contrast must still hold.
    await page.goto(`${BASE}/settings`);
    await page.getByLabel("Dark").check();
    await shot(page, "14-settings-dark");
    for (const [name, url, ready] of views.slice(0, 3)) {
        await page.goto(url);
        await ready();
        await check(`${name} (dark)`);
    }
    await page.goto(roomUrl(roomId));
    await page.locator(".html-body strong").waitFor();
    await shot(page, "15-chat-dark");
    // Keyboard: the skip link is the first stop and leads to the main area.
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
    assert.deepEqual(found, {}, Object.entries(found).map(([k, v]) => `${k}:\n${v}`).join("\n\n"));
});
