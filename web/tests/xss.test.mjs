// Hostile content never runs script: message bodies, formatted_body HTML, display names, room names,
// topics, device names and telemetry keys. The page runs with its CSP *bypassed* here, so what is
// tested is the app's own escaping and sanitising, not the CSP's safety net.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { admin, api, createRoom, MQTT_PORT, TOPIC, newUser, person, rand, roomUrl, sendEvent, signIn, waitFor } from "./lib.mjs";

const PAYLOAD = (tag) => `<img src=x onerror="window.__xss=(window.__xss||[]).concat('${tag}')"><script>window.__xss=(window.__xss||[]).concat('${tag}-script')</script>`;

test("hostile names, messages, HTML and telemetry keys never run script", { timeout: 120_000 }, async (t) => {
    const a = await admin();
    const eve = await newUser("eve");
    await api("PUT", `/_matrix/client/v3/profile/${encodeURIComponent(eve.userId)}/displayname`, { token: eve.token, body: { displayname: `Eve ${PAYLOAD("displayname")}` } });
    const roomId = await createRoom(a, { name: `Room ${PAYLOAD("roomname")}`, topic: `Topic ${PAYLOAD("topic")}`, invite: [eve.userId] });
    await api("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: eve.token, body: {} });

    await sendEvent(eve, roomId, "m.room.message", { msgtype: "m.text", body: `plain ${PAYLOAD("body")} https://example.org/"onmouseover="window.__xss=1` });
    await sendEvent(eve, roomId, "m.room.message", {
        msgtype: "m.text",
        body: "formatted",
        format: "org.matrix.custom.html",
        formatted_body: [
            PAYLOAD("html"),
            `<a href="javascript:window.__xss=(window.__xss||[]).concat('href')">click me</a>`,
            `<svg><script>window.__xss=(window.__xss||[]).concat('svg')</script></svg>`,
            `<iframe srcdoc="<script>parent.__xss=1</script>"></iframe>`,
            `<details open ontoggle="window.__xss=(window.__xss||[]).concat('toggle')"><summary>s</summary>d</details>`,
            `<font data-mx-color="red;background:url(javascript:alert(1))">colour</font>`,
            `<noscript><p title="</noscript><img src=x onerror=window.__xss=(window.__xss||[]).concat('mxss')>"></noscript>`,
            `<form action="javascript:alert(1)"><button>btn</button></form>`,
        ].join(""),
    });
    await sendEvent(eve, roomId, "m.room.message", { msgtype: "m.text", body: "bold", format: "org.matrix.custom.html", formatted_body: "<b>still bold</b>" });
    await sendEvent(eve, roomId, "m.room.message", { msgtype: "m.image", body: PAYLOAD("imgbody"), url: "mxc://localhost/doesnotexist" });
    await sendEvent(eve, roomId, "m.room.message", { msgtype: "m.file", body: "f", filename: PAYLOAD("filename"), url: "mxc://localhost/doesnotexist" });

    // A device whose telemetry keys and values are HTML.
    const dev = `evil-${rand()}`;
    await api("POST", `/_converge/admin/v1/rooms/${encodeURIComponent(roomId)}/devices`, { token: a.token, body: { device_id: dev } });
    spawnSync("mosquitto_pub", ["-h", "127.0.0.1", "-p", MQTT_PORT, "-t", `${TOPIC}/devices/${dev}/telemetry`, "-m", JSON.stringify({ [PAYLOAD("key")]: 1, label: PAYLOAD("value") })]);

    const page = await person(t, { bypassCSP: true });
    await signIn(page, a);
    await page.goto(roomUrl(roomId));
    await page.locator(".html-body b", { hasText: "still bold" }).waitFor({ timeout: 30_000 });
    await page.getByRole("button", { name: /^Members/ }).click();
    await page.locator(".member-name", { hasText: "Eve" }).waitFor();
    // Click the javascript: link: it must have no href.
    const link = page.locator(".html-body a", { hasText: "click me" });
    assert.equal(await link.getAttribute("href"), null);
    await link.click();
    await page.goto(roomUrl(roomId, "devices"));
    await page.locator(`[data-device="${dev}"]`).getByText("label").waitFor({ timeout: 30_000 });
    await page.waitForTimeout(1500);

    const fired = await page.evaluate(() => window.__xss ?? null);
    assert.equal(fired, null, `script ran: ${JSON.stringify(fired)}`);
    const live = await page.evaluate(() => ({
        handlers: [...document.querySelectorAll("*")].filter((el) => [...el.attributes].some((at) => at.name.startsWith("on"))).length,
        inlineScripts: document.querySelectorAll("script:not([src])").length,
        jsLinks: [...document.querySelectorAll("a[href]")].filter((a) => /^\s*javascript:/i.test(a.getAttribute("href"))).length,
    }));
    assert.deepEqual(live, { handlers: 0, inlineScripts: 0, jsLinks: 0 });
    // The room list and the chat, one more look after navigating back.
    await page.goto(roomUrl(roomId));
    await page.locator(".html-body").first().waitFor();
    await waitFor("a quiet page", async () => (await page.evaluate(() => window.__xss ?? null)) === null, 2000);
    assert.equal(await page.evaluate(() => window.__xss ?? null), null);
});
