import { afterEach, describe, expect, it, vi } from "vitest";
import { getTelemetry, TELEMETRY_PAGE } from "./api";

// A fake telemetry endpoint over `samples` (ordered by ts), answering like the server: ts in
// [from, to], oldest first, at most `limit`.
function serve(samples: { ts: number; values: object }[]) {
    const calls: string[] = [];
    vi.stubGlobal("fetch", async (url: string) => {
        const u = new URL(url, "http://x");
        calls.push(u.search);
        const from = Number(u.searchParams.get("from"));
        const to = Number(u.searchParams.get("to"));
        const limit = Number(u.searchParams.get("limit"));
        const page = samples.filter((s) => s.ts >= from && s.ts <= to).slice(0, limit);
        return new Response(JSON.stringify({ device_id: "d", samples: page }), { status: 200 });
    });
    return calls;
}

afterEach(() => vi.unstubAllGlobals());

describe("getTelemetry", () => {
    it("follows pages without losing samples that share a millisecond", async () => {
        const samples = Array.from({ length: 25_000 }, (_, i) => ({ ts: 1000 + Math.floor(i / 3), values: { i } }));
        const calls = serve(samples);
        const got = await getTelemetry("d", 0, 1e9);
        expect(got.length).toBe(25_000);
        expect(got.map((s) => (s.values as { i: number }).i)).toEqual(samples.map((_, i) => i));
        expect(calls.length).toBe(3);
    });

    it("skips the samples a caller already holds at `from`", async () => {
        const samples = [1, 2, 2, 2, 3].map((ts, i) => ({ ts, values: { i } }));
        serve(samples);
        const got = await getTelemetry("d", 2, 10, undefined, 2);
        expect(got.map((s) => (s.values as { i: number }).i)).toEqual([3, 4]);
    });

    it("stops on a short page", async () => {
        const calls = serve(Array.from({ length: TELEMETRY_PAGE - 1 }, (_, i) => ({ ts: i, values: {} })));
        expect((await getTelemetry("d", 0, 1e9)).length).toBe(TELEMETRY_PAGE - 1);
        expect(calls.length).toBe(1);
    });
});
