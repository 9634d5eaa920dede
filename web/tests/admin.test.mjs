// Server administration: an admin creates a registration token in the UI and a new person registers
// with it; the admin pages draw (or say politely what the server cannot do yet); non-admins are refused
// by the server, not only by hidden buttons.
import assert from "node:assert/strict";
import { test } from "node:test";
import { api, admin, BASE, newUser, person, rand, shot, signIn } from "./lib.mjs";

test("an admin creates a registration token that a new user registers with", { timeout: 120_000 }, async (t) => {
    const a = await admin();
    const page = await person(t);
    await signIn(page, a);
    await page.getByRole("link", { name: "Admin" }).click();
    await page.getByRole("link", { name: "Registration tokens" }).click();
    await page.getByLabel("Uses").fill("1");
    await page.getByLabel("Expires after").selectOption("7d");
    await page.getByRole("button", { name: "Create token" }).click();
    const token = (await page.getByTestId("token").first().textContent()).trim();
    assert.ok(token.length >= 8, `token: ${token}`);
    await shot(page, "09-admin-tokens");

    // A newcomer registers with it in another browser.
    const newcomer = await person(t);
    await newcomer.goto(`${BASE}/register`);
    const username = `newbie-${rand()}`;
    await newcomer.getByLabel("Username").fill(username);
    await newcomer.getByLabel("Password", { exact: true }).fill("correct horse battery");
    await newcomer.getByLabel("Confirm password").fill("correct horse battery");
    const tokenField = newcomer.getByLabel("Registration token");
    if (await tokenField.isVisible()) await tokenField.fill(token);
    await shot(newcomer, "10-register");
    await newcomer.getByRole("button", { name: "Create account" }).click();
    await newcomer.getByRole("navigation", { name: "Main" }).waitFor({ timeout: 60_000 });
    await newcomer.getByText(`@${username}:`, { exact: false }).first().waitFor();

    // The token is used up: a second registration with it is refused with a sentence.
    const again = await person(t);
    await again.goto(`${BASE}/register?token=${encodeURIComponent(token)}`);
    await again.getByLabel("Username").fill(`late-${rand()}`);
    await again.getByLabel("Password", { exact: true }).fill("correct horse battery");
    await again.getByLabel("Confirm password").fill("correct horse battery");
    if (await again.getByLabel("Registration token").isVisible()) {
        await again.getByRole("button", { name: "Create account" }).click();
        await again.getByRole("alert").filter({ hasText: /token/i }).waitFor();
        const text = await again.getByRole("alert").textContent();
        assert.doesNotMatch(text, /[{}]/, "the error is a sentence, not JSON");
    }
    assert.deepEqual([...page.problems, ...newcomer.problems, ...again.problems], []);
});

test("admin pages: users, rooms, server health and metrics", { timeout: 120_000 }, async (t) => {
    const a = await admin();
    const page = await person(t);
    await signIn(page, a);
    await page.goto(`${BASE}/admin/users`);
    await page.locator("table").getByText(a.userId).first().waitFor();
    // Create a user from the UI, then find them with search.
    const name = `made-${rand()}`;
    await page.getByRole("button", { name: "Create user" }).click();
    await page.getByRole("dialog").getByLabel("Username").fill(name);
    await page.getByRole("dialog").getByLabel("Password").fill("a long password");
    await page.getByRole("dialog").getByRole("button", { name: "Create user" }).click();
    await page.getByLabel("Search users").fill(name);
    await page.locator("table").getByText(`@${name}:`).waitFor();
    // The server knows them: they can sign in.
    const login = await api("POST", "/_matrix/client/v3/login", {
        body: { type: "m.login.password", identifier: { type: "m.id.user", user: name }, password: "a long password" },
    });
    assert.equal(login.status, 200);
    await shot(page, "11-admin-users");
    await page.getByRole("link", { name: "Rooms" }).click();
    await page.locator("table").waitFor();
    await shot(page, "12-admin-rooms");
    await page.getByRole("link", { name: "Server" }).click();
    await page.getByText(/Server is healthy|reports a problem/).waitFor();
    await page.getByRole("heading", { name: "webhooks" }).waitFor();
    await shot(page, "13-admin-server");
    assert.deepEqual(page.problems, []);
});

test("a non-admin is refused by the server and sees no admin navigation", { timeout: 60_000 }, async (t) => {
    const u = await newUser("plain");
    const r = await api("POST", "/_converge/admin/v1/registration_tokens", { token: u.token, body: { uses_allowed: 1 } });
    assert.equal(r.status, 403);
    const page = await person(t);
    await signIn(page, u);
    assert.equal(await page.getByRole("link", { name: "Admin" }).count(), 0);
    await page.goto(`${BASE}/admin/tokens`);
    await page.getByRole("button", { name: "Create token" }).click();
    // The page asked the server (for the token list, then to create one) and says what it answered.
    await page.getByRole("alert").filter({ hasText: "Only server admins" }).first().waitFor();
});
