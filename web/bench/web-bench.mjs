// Converge Web's performance in Chromium, for bench/compare.sh: compressed JavaScript loaded on a
// signed-in first load of the chat view before the crypto (its JS glue and wasm, which load
// lazily) starts, time until the room list is
// interactive, room switches, and a 10,000-message room (back-pagination, scroll frame gaps).
// Prints one JSON line. Needs a running Converge with open registration at CONVERGE_URL (= WEB_URL).
//   WEB_URL=http://127.0.0.1:8008 CONVERGE_URL=http://127.0.0.1:8008 node web/bench/web-bench.mjs
import { api, createRoom, newUser, person, rand, roomUrl, signIn, BASE } from "../tests/lib.mjs";

const MESSAGES = Number(process.env.WEB_BENCH_MESSAGES ?? 10_000);
const cleanups = [];
const t = { after: (fn) => cleanups.push(fn) };

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function seed(session, roomId, n, tag) {
    let next = 0;
    const worker = async () => {
        while (next < n) {
            const i = next++;
            const r = await api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${tag}-${i}`, {
                token: session.token,
                body: { msgtype: "m.text", body: `${tag} message ${i}${i % 7 === 0 ? "\nsecond line" : ""}` },
            });
            if (r.status !== 200) throw new Error(`seed ${i}: ${r.status}`);
        }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    // The newest message, sent last: what a view of the room shows first.
    const r = await api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${tag}-last`, {
        token: session.token,
        body: { msgtype: "m.text", body: `${tag} newest` },
    });
    if (r.status !== 200) throw new Error(`seed last: ${r.status}`);
}

/** A signed-in first load of the chat view with an empty cache: the compressed bytes of the
 *  scripts fetched before the crypto wasm is requested, and the time until the room list shows. */
async function firstLoad(session) {
    const page = await person(t);
    await signIn(page, session);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Network.enable");
    await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
    const scripts = new Map();
    let wasmAt = null;
    let order = 0;
    cdp.on("Network.requestWillBeSent", (e) => {
        order++;
        if (e.request.url.endsWith(".wasm") && wasmAt === null) wasmAt = order;
        if (e.type === "Script") scripts.set(e.requestId, { order, bytes: 0, crypto: /rust-crypto|crypto-wasm/.test(e.request.url) });
    });
    cdp.on("Network.loadingFinished", (e) => {
        const s = scripts.get(e.requestId);
        if (s) s.bytes = e.encodedDataLength;
    });
    const started = Date.now();
    await page.goto(`${BASE}/`);
    await page.getByRole("navigation", { name: "Main" }).waitFor({ timeout: 30_000 });
    await page.getByRole("link", { name: /Room A/ }).waitFor({ timeout: 30_000 });
    const interactive = Date.now() - started;
    await page.waitForTimeout(3000); // let the wasm request start and scripts finish
    const before = [...scripts.values()].filter((s) => wasmAt === null || s.order < wasmAt);
    const kib = (list) => Math.round((list.reduce((sum, s) => sum + s.bytes, 0) / 1024) * 10) / 10;
    return {
        page,
        interactive,
        // The app's own JavaScript, and the crypto's JavaScript glue that loads with the wasm.
        jsKib: kib(before.filter((s) => !s.crypto)),
        cryptoGlueKib: kib(before.filter((s) => s.crypto)),
        wasmSeen: wasmAt !== null,
    };
}

async function main() {
    const user = await newUser("bench");
    const a = await createRoom(user, { name: `Room A ${rand()}` });
    const b = await createRoom(user, { name: `Room B ${rand()}` });
    await seed(user, a, 50, "a");
    await seed(user, b, 50, "b");

    const load = await firstLoad(user);
    const page = load.page;

    // Room switches: click the other room's link, until its newest message is in the
    // timeline and the next frame starts (when it is painted). Timed inside the page, so the
    // figure is the app's and not the round trips of the browser automation around it.
    const switches = [];
    for (let i = 0; i < 6; i++) {
        const [name, tag] = i % 2 === 0 ? ["Room B", "b"] : ["Room A", "a"];
        const link = page.getByRole("link", { name: new RegExp(name) });
        await link.waitFor();
        const ms = await link.evaluate(
            (el, text) =>
                new Promise((resolve, reject) => {
                    const shown = () =>
                        [...document.querySelectorAll('[role="log"] *')].some((n) => n.childElementCount === 0 && n.textContent === text);
                    const t0 = performance.now();
                    const timer = setTimeout(() => reject(new Error(`"${text}" did not show within 10 s`)), 10_000);
                    const done = () => {
                        clearTimeout(timer);
                        requestAnimationFrame(() => resolve(performance.now() - t0));
                    };
                    const observer = new MutationObserver(() => {
                        if (shown()) {
                            observer.disconnect();
                            done();
                        }
                    });
                    observer.observe(document.body, { childList: true, subtree: true, characterData: true });
                    el.click();
                    if (shown()) {
                        observer.disconnect();
                        done();
                    }
                }),
            `${tag} newest`,
        );
        await page.getByRole("log").getByText(`${tag} newest`, { exact: true }).waitFor();
        switches.push(ms);
    }

    // The big room.
    const big = await createRoom(user, { name: `Big ${rand()}` });
    const s0 = Date.now();
    await seed(user, big, MESSAGES, "big");
    const seededMs = Date.now() - s0;
    await page.goto(roomUrl(big));
    const list = page.getByRole("log");
    await list.getByText("big newest", { exact: true }).waitFor({ timeout: 60_000 });
    const p0 = Date.now();
    while (!(await page.getByText("This is the beginning of the room.").isVisible())) {
        await list.evaluate((el) => (el.scrollTop = 0));
        await page.waitForTimeout(50);
        if (Date.now() - p0 > 400_000) throw new Error("pagination did not reach the start");
    }
    const paginateMs = Date.now() - p0;
    const scroll = await list.evaluate(async (el) => {
        const gaps = [];
        let last = performance.now();
        while (el.scrollTop + el.clientHeight < el.scrollHeight - 5) {
            el.scrollTop += el.clientHeight;
            await new Promise((r) => requestAnimationFrame(r));
            const now = performance.now();
            gaps.push(now - last);
            last = now;
        }
        gaps.sort((x, y) => x - y);
        return { frames: gaps.length, p95: gaps[Math.floor(gaps.length * 0.95)], p50: gaps[Math.floor(gaps.length / 2)] };
    });
    const rows = await page.locator(".vlist-row").count();
    console.log(
        JSON.stringify({
            server: "converge",
            scenario: "web",
            js_before_crypto_kib: load.jsKib,
            crypto_glue_kib: load.cryptoGlueKib,
            wasm_requested: load.wasmSeen,
            interactive_ms: load.interactive,
            room_switch_ms: Math.round(median(switches) * 10) / 10,
            room_switch_max_ms: Math.round(Math.max(...switches) * 10) / 10,
            big_room_messages: MESSAGES,
            big_room_seed_ms: seededMs,
            paginate_back_ms: paginateMs,
            scroll_frames: scroll.frames,
            scroll_p50_frame_ms: Math.round(scroll.p50 * 10) / 10,
            scroll_p95_frame_ms: Math.round(scroll.p95 * 10) / 10,
            rows_in_dom: rows,
            problems: page.problems.length,
        }),
    );
}

try {
    await main();
} finally {
    for (const fn of cleanups.reverse()) await fn();
}
