// An encrypted DM between two browsers decrypts, and the server stores only ciphertext; cross-signing
// and key backup are offered in Settings.
import assert from "node:assert/strict";
import { test } from "node:test";
import { api, BASE, newUser, person, shot, signIn, waitFor } from "./lib.mjs";
import { makePng } from "./png.mjs";


test("an encrypted DM decrypts on the other side", { timeout: 180_000 }, async (t) => {
    const [a, b] = await Promise.all([newUser("ann"), newUser("ben")]);
    const pa = await person(t);
    const pb = await person(t);
    await signIn(pa, a);
    await signIn(pb, b);
    await pa.getByRole("button", { name: "Message someone" }).click();
    await pa.getByLabel("User ID").fill(b.userId);
    const enc = pa.getByLabel("End-to-end encrypted");
    await assert.doesNotReject(enc.check({ timeout: 10_000 }), "encryption can be chosen");
    await pa.getByRole("button", { name: "Start conversation" }).click();
    await pa.waitForURL(/\/rooms\//);
    const roomId = decodeURIComponent(new URL(pa.url()).pathname.split("/")[2]);
    await pa.getByLabel("Encrypted").waitFor();

    await pb.getByRole("link", { name: /Invitation/ }).click();
    await pb.getByRole("button", { name: "Accept" }).click();
    await pb.getByLabel("Encrypted").waitFor({ timeout: 30_000 });
    // Ann writes once Ben is in, so his device gets the room key.
    await pa.locator(".timeline").getByText(/joined/).nth(1).waitFor({ timeout: 30_000 });
    const composer = pa.getByRole("textbox", { name: /^Message / });
    await composer.fill("a secret hello");
    await composer.press("Enter");
    await pb.locator(".timeline").getByText("a secret hello").waitFor({ timeout: 60_000 });
    // An encrypted attachment: uploaded as ciphertext, decrypted in Ben's browser.
    await pa.locator('input[type="file"]').setInputFiles({ name: "secret.png", mimeType: "image/png", buffer: makePng(120, 80, [200, 60, 90]) });
    const img = pb.locator("img.msg-image");
    await img.waitFor({ timeout: 60_000 });
    await waitFor("the decrypted image to decode", () => img.evaluate((el) => el.complete && el.naturalWidth === 120));
    await shot(pb, "16-encrypted-dm");

    // The server has only ciphertext.
    const msgs = await api("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=20`, { token: b.token });
    const types = msgs.json.chunk.map((e) => e.type);
    assert.ok(types.includes("m.room.encrypted"), `types: ${types}`);
    assert.ok(!JSON.stringify(msgs.json).includes("a secret hello"));

    // Cross-signing and backup are offered, not forced.
    await pa.goto(`${BASE}/settings`);
    await pa.getByLabel("Your password (to confirm)").fill(a.password);
    await pa.getByRole("button", { name: "Set up cross-signing and backup" }).click();
    await pa.getByRole("dialog", { name: "Save your recovery key" }).waitFor({ timeout: 60_000 });
    const key = await pa.locator(".recovery-key").textContent();
    assert.match(key.trim(), /^[A-Za-z0-9 ]{40,}$/);
    await pa.getByRole("button", { name: "I've saved it" }).click();
    await pa.getByText(/Key backup: on/).waitFor({ timeout: 30_000 });
    assert.deepEqual([...pa.problems, ...pb.problems], []);
});
