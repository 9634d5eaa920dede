// Two people chat in two browsers: room creation, invitation, messages with Markdown, typing,
// reactions, edits, replies, an image upload the other sees through authenticated media, read
// receipts, a session that survives a reload, and sign-out.
import assert from "node:assert/strict";
import { test } from "node:test";
import { makePng } from "./png.mjs";
import { BASE, newUser, person, rand, shot, signIn, waitFor } from "./lib.mjs";

test("two people chat; one uploads an image the other sees", { timeout: 180_000 }, async (t) => {
    const [a, b] = await Promise.all([newUser("alice"), newUser("bob")]);
    const pa = await person(t);
    const pb = await person(t);

    await pa.goto(`${BASE}/login`);
    await shot(pa, "01-sign-in");
    await signIn(pa, a);

    // Alice creates a room in the UI and invites Bob from the member list.
    const roomName = `Lobby ${rand()}`;
    await pa.getByRole("button", { name: "New room" }).click();
    await pa.getByLabel("Name").fill(roomName);
    await pa.getByLabel("Topic (optional)").fill("Where we meet");
    await pa.getByRole("button", { name: "Create room" }).click();
    await pa.waitForURL(/\/rooms\//);
    await pa.getByRole("button", { name: /^Members/ }).click();
    await pa.getByLabel("Invite someone").fill(b.userId);
    await pa.getByRole("button", { name: "Invite", exact: true }).click();
    await pa.getByText("Invited", { exact: true }).waitFor();
    await pa.locator(".member", { hasText: a.userId }).getByText("Admin").waitFor(); // power levels show
    await pa.getByRole("button", { name: "Close members" }).click();

    // Bob accepts the invitation.
    await signIn(pb, b);
    await pb.getByRole("link", { name: new RegExp(`${roomName}.*Invitation`) }).click();
    await pb.getByRole("button", { name: "Accept" }).click();
    const composerB = pb.getByRole("textbox", { name: `Message ${roomName}` });
    await composerB.waitFor();

    // Typing shows on the other side; the message arrives.
    await composerB.fill("hello alice");
    await pa.getByText(/is typing/).waitFor();
    await composerB.press("Enter");
    await pa.locator(".timeline").getByText("hello alice").waitFor();

    // Markdown arrives as formatted HTML.
    const composerA = pa.getByRole("textbox", { name: `Message ${roomName}` });
    await composerA.fill("hi **bob**, see `code`");
    await composerA.press("Enter");
    await pb.locator(".html-body strong", { hasText: "bob" }).waitFor();
    await pb.locator(".html-body code", { hasText: "code" }).waitFor();

    // Bob reacts to Alice's message; Alice sees the count.
    const msgB = pb.locator("article.msg", { hasText: "hi bob" });
    await msgB.hover();
    await msgB.getByRole("button", { name: "React", exact: true }).click();
    await msgB.getByRole("button", { name: "React with 👍" }).click();
    await pa.locator(".reaction", { hasText: "👍" }).waitFor();

    // Alice edits her message; Bob sees the edit.
    const msgA = pa.locator("article.msg", { hasText: "hi bob" });
    await msgA.hover();
    await msgA.getByRole("button", { name: "Edit" }).click();
    await pa.getByText("Editing your message").waitFor();
    await waitFor("the composer to hold the message being edited", async () => (await composerA.inputValue()).startsWith("hi **bob**"));
    await composerA.fill("hi **bob**, edited");
    await composerA.press("Enter");
    await pb.locator("article.msg", { hasText: "hi bob, edited" }).getByText("(edited)").waitFor();

    // Bob replies; the quote shows Alice's message.
    const edited = pb.locator("article.msg", { hasText: "hi bob, edited" });
    await edited.hover();
    await edited.getByRole("button", { name: "Reply" }).click();
    await composerB.fill("a reply");
    await composerB.press("Enter");
    await pa.locator("article.msg", { hasText: "a reply" }).locator(".reply-quote").waitFor();

    // Alice uploads an image with the file picker; Bob sees it inline (a blob: URL from the
    // authenticated thumbnail endpoint).
    await pa.locator('input[type="file"]').setInputFiles({ name: "stripe.png", mimeType: "image/png", buffer: makePng() });
    const img = pb.locator("img.msg-image");
    await img.waitFor({ timeout: 30_000 });
    const src = await img.getAttribute("src");
    assert.match(src ?? "", /^blob:/, "the image is shown from a blob: URL");
    await waitFor("the image to decode", () => img.evaluate((el) => el.complete && el.naturalWidth > 0));

    // A file dropped onto the room (drag and drop) arrives as a download.
    const dt = await pa.evaluateHandle(() => {
        const d = new DataTransfer();
        d.items.add(new File(["hello from a dropped file\n"], "notes.txt", { type: "text/plain" }));
        return d;
    });
    await pa.locator("section.room").dispatchEvent("dragover", { dataTransfer: dt });
    await pa.locator("section.room").dispatchEvent("drop", { dataTransfer: dt });
    const fileCard = pb.locator(".file-card", { hasText: "notes.txt" });
    await fileCard.waitFor({ timeout: 30_000 });
    const [download] = await Promise.all([pb.waitForEvent("download"), fileCard.getByRole("button", { name: "Download notes.txt" }).click()]);
    assert.equal(download.suggestedFilename(), "notes.txt");
    const { readFileSync } = await import("node:fs");
    assert.equal(readFileSync(await download.path(), "utf8"), "hello from a dropped file\n");

    // Read receipts: Alice sees that Bob has read.
    await pa.locator(".receipts").first().waitFor({ timeout: 20_000 });

    await shot(pa, "02-chat-desktop");
    await pb.setViewportSize({ width: 390, height: 844 });
    await shot(pb, "03-chat-phone");

    await pb.goto(`${BASE}/`);
    await pb.getByRole("list", { name: "Rooms" }).waitFor();
    await shot(pb, "03b-rooms-phone");
    await pb.getByRole("link", { name: new RegExp(roomName) }).click();

    // The session survives a reload.
    await pb.reload();
    await pb.getByRole("textbox", { name: `Message ${roomName}` }).waitFor({ timeout: 60_000 });

    // Deleting a message.
    const mine = pb.locator("article.msg", { hasText: "hello alice" });
    await mine.hover();
    pb.once("dialog", (d) => d.accept());
    await mine.getByRole("button", { name: "Delete" }).click();
    await pa.locator(".timeline").getByText("Message deleted").first().waitFor();

    // Sign out: back to the sign-in page, and the token no longer works.
    await pb.setViewportSize({ width: 1280, height: 800 });
    await pb.goto(`${BASE}/settings`);
    await pb.getByRole("button", { name: "Sign out" }).click();
    await pb.getByRole("heading", { name: "Sign in" }).waitFor();
    assert.equal(await pb.evaluate(() => localStorage.getItem("converge.session")), null);

    assert.deepEqual([...pa.problems, ...pb.problems], [], "no page errors or CSP violations");
});

test("room list: search as you type and unread counts", { timeout: 120_000 }, async (t) => {
    const a = await newUser("carol");
    const b = await newUser("dave");
    const { api, createRoom, sendEvent } = await import("./lib.mjs");
    const names = [`Garden ${rand()}`, `Kitchen ${rand()}`, `Garage ${rand()}`];
    const ids = [];
    for (const name of names) {
        const id = await createRoom(a, { name, invite: [b.userId] });
        await api("POST", `/_matrix/client/v3/join/${encodeURIComponent(id)}`, { token: b.token, body: {} });
        ids.push(id);
    }
    const page = await person(t);
    await signIn(page, a);
    for (let i = 0; i < 3; i++) await sendEvent(b, ids[1], "m.room.message", { msgtype: "m.text", body: `unread ${i}` });
    await page.getByRole("link", { name: new RegExp(`${names[1]}.*, 3 unread`) }).waitFor({ timeout: 30_000 });
    await page.getByLabel("Search rooms").fill("Ga");
    await waitFor("the list to filter", async () => (await page.locator(".rooms li").count()) === 2);
    await page.getByLabel("Search rooms").fill("");
    await page.getByRole("link", { name: new RegExp(names[1]) }).click();
    // Opening the room sends a read receipt; the count goes away.
    await waitFor("the unread count to clear", async () => (await page.locator(".room-item.current .badge").count()) === 0, 30_000);
    assert.deepEqual(page.problems, []);
});

test("join a public room from the directory, then leave it", { timeout: 120_000 }, async (t) => {
    const [a, b] = await Promise.all([newUser("host"), newUser("guest")]);
    const pa = await person(t);
    await signIn(pa, a);
    const name = `Town square ${rand()}`;
    const alias = `square-${rand()}`;
    await pa.getByRole("button", { name: "New room" }).click();
    await pa.getByLabel("Name").fill(name);
    await pa.getByLabel("Address (optional)").fill(alias);
    await pa.getByLabel("Public: anyone can find and join it").check();
    await pa.getByRole("button", { name: "Create room" }).click();
    await pa.waitForURL(/\/rooms\//);

    const pb = await person(t);
    await signIn(pb, b);
    await pb.getByRole("button", { name: "Join", exact: true }).click();
    const dialog = pb.getByRole("dialog", { name: "Join a room" });
    await dialog.getByLabel("Search public rooms").fill(name);
    await dialog.locator(".directory-item", { hasText: name }).getByRole("button", { name: "Join" }).click();
    await pb.getByRole("textbox", { name: `Message ${name}` }).waitFor({ timeout: 30_000 });
    await pa.locator(".timeline").getByText(/guest-.* joined/).waitFor({ timeout: 30_000 });

    // Joining by address works too (already a member: it opens the room).
    await pb.getByRole("button", { name: "Join", exact: true }).click();
    await dialog.getByLabel("Room address or ID").fill(`#${alias}:${b.userId.split(":")[1]}`);
    await dialog.getByRole("button", { name: "Join", exact: true }).click();
    await pb.getByRole("textbox", { name: `Message ${name}` }).waitFor();

    await pb.getByRole("button", { name: "Leave" }).click();
    await pb.getByRole("dialog", { name: `Leave ${name}?` }).getByRole("button", { name: "Leave" }).click();
    await pb.waitForURL(`${BASE}/`);
    await waitFor("the room to leave the list", async () => (await pb.getByRole("link", { name: new RegExp(name) }).count()) === 0);
    await pa.locator(".timeline").getByText(/guest-.* left/).waitFor({ timeout: 30_000 });
    assert.deepEqual([...pa.problems, ...pb.problems], []);
});

test("a session ended elsewhere returns to the sign-in page", { timeout: 90_000 }, async (t) => {
    const { api, login } = await import("./lib.mjs");
    const u = await newUser("roamer");
    const page = await person(t);
    await signIn(page, u);
    const session = JSON.parse(await page.evaluate(() => localStorage.getItem("converge.session")));
    assert.ok(session.accessToken, "the token is in localStorage");
    assert.equal(await page.evaluate(() => document.cookie), "", "and not in a cookie");
    // Sign out every device of this account from elsewhere.
    const other = await login(u.user, u.password);
    await api("POST", "/_matrix/client/v3/logout/all", { token: other.token, body: {} });
    await page.getByRole("heading", { name: "Sign in" }).waitFor({ timeout: 60_000 });
    assert.equal(await page.evaluate(() => localStorage.getItem("converge.session")), null);
});
