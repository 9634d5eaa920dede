// The analytics page shows the messages just sent (GET /_converge/admin/v1/analytics on the real
// server), and a server without that API gets a sentence, not an error dump.
import assert from "node:assert/strict";
import { test } from "node:test";
import { admin, BASE, createRoom, person, rand, sendEvent, shot, signIn } from "./lib.mjs";

const a = await admin();

test("analytics shows the messages just sent", { timeout: 120_000 }, async (t) => {
    const name = `Busy ${rand()}`;
    const roomId = await createRoom(a, { name });
    for (let i = 0; i < 12; i++) await sendEvent(a, roomId, "m.room.message", { msgtype: "m.text", body: `message ${i}` });
    const page = await person(t);
    await signIn(page, a);
    await page.goto(`${BASE}/analytics`);
    const stat = page.getByTestId("stat-Messages");
    await stat.waitFor({ timeout: 30_000 });
    const n = Number((await stat.textContent()).replace(/[^0-9]/g, ""));
    assert.ok(n >= 12, `messages shown: ${n}`);
    await page.locator(".bar-list").getByText(name).waitFor();
    await page.locator(".chart canvas").first().waitFor();
    await shot(page, "17-analytics");
    assert.deepEqual(page.problems, []);
});

test("analytics without the server API says so in a sentence", { timeout: 60_000 }, async (t) => {
    const page = await person(t);
    // An older server: the endpoint answers as unknown ones do.
    await page.route("**/_converge/admin/v1/analytics*", (route) =>
        route.fulfill({ status: 404, contentType: "application/json", body: JSON.stringify({ errcode: "M_UNRECOGNIZED", error: "Unrecognized request" }) }),
    );
    await signIn(page, a);
    await page.goto(`${BASE}/analytics`);
    await page.getByText("Analytics isn't available on this server yet").waitFor();
    assert.doesNotMatch(await page.locator("main").innerText(), /errcode|M_UNRECOGNIZED|[{}]/);
});
