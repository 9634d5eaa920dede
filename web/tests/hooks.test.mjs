// A webhook is created in the UI; a POST to its URL appears in the room's timeline. An outgoing
// subscription is created with a prefix filter and shows its delivery status.
import assert from "node:assert/strict";
import { test } from "node:test";
import { API, admin, createRoom, person, rand, roomUrl, sendEvent, shot, signIn } from "./lib.mjs";

test("a webhook made in the UI posts into the room", { timeout: 120_000 }, async (t) => {
    const a = await admin();
    const roomName = `CI ${rand()}`;
    const roomId = await createRoom(a, { name: roomName });
    const page = await person(t);
    await signIn(page, a);
    await page.goto(roomUrl(roomId, "hooks"));

    await page.getByLabel("Name").first().fill("builds");
    await page.getByRole("button", { name: "Create webhook" }).click();
    const url = await page.getByTestId("hook-url").inputValue();
    const secret = await page.getByTestId("hook-secret").inputValue();
    assert.match(url, /\/_converge\/hooks\/[^/]+$/);
    assert.ok(secret.length >= 16, "a secret is shown once");
    await page.getByText("curl -X POST").waitFor();
    await shot(page, "07-hook-created");
    await page.getByRole("button", { name: "Close" }).click();
    await page.locator("table").getByText(/hook-/).first().waitFor();

    // Post to it (through the server's own address: the URL's host depends on public_base_url).
    const res = await fetch(API + new URL(url).pathname, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ text: "**build 42** passed" }),
    });
    assert.equal(res.status, 200, await res.text());

    await page.getByRole("link", { name: "Chat", exact: true }).click();
    await page.locator(".timeline .html-body strong", { hasText: "build 42" }).waitFor({ timeout: 30_000 });

    // An outgoing webhook with a prefix filter; delivery to a name that does not resolve fails and shows.
    await page.getByRole("link", { name: "Hooks", exact: true }).click();
    await page.getByLabel("Receiver URL").fill("https://ci.invalid/converge");
    await page.getByLabel("start with").check();
    await page.getByLabel("Prefix").fill("!deploy");
    await page.getByRole("button", { name: "Add outgoing webhook" }).click();
    await page.getByRole("dialog", { name: "Signing secret" }).waitFor();
    await page.getByRole("button", { name: "Close" }).click();
    const row = page.locator("tr", { hasText: "https://ci.invalid/converge" });
    await row.waitFor();
    await row.getByText("^!deploy").waitFor();
    await sendEvent(a, roomId, "m.room.message", { msgtype: "m.text", body: "!deploy now" });
    await page.reload();
    await page.locator("tr", { hasText: "https://ci.invalid/converge" }).waitFor({ timeout: 60_000 });
    await shot(page, "08-hooks");

    // Revoking the incoming hook.
    page.once("dialog", (d) => d.accept());
    await page.getByRole("button", { name: /Revoke webhook/ }).first().click();
    await page.getByText("No webhooks yet.").waitFor();
    const again = await fetch(API + new URL(url).pathname, { method: "POST", headers: { "content-type": "text/plain" }, body: "after revoke" });
    assert.notEqual(again.status, 200);
    assert.deepEqual(page.problems, []);
});
