import { describe, expect, it } from "vitest";

// uPlot (imported by these pages) asks matchMedia at load time; jsdom has none.
window.matchMedia ??= ((q: string) => ({ matches: false, media: q, addEventListener() {}, removeEventListener() {}, addListener() {}, removeListener() {} })) as never;
const { parsePrometheus } = await import("./Admin");
const { flattenValues, formatValue, numeric } = await import("./Devices");
const { curlExample } = await import("./Hooks");
const { indexAt, prefixOffsets } = await import("./VirtualList");

describe("helpers", () => {
    it("flattens telemetry into dotted keys and reads numbers", () => {
        expect(flattenValues({ temp: 21.5, power: { watts: 120, phase: { a: 1 } }, on: true })).toEqual({ temp: 21.5, "power.watts": 120, "power.phase.a": 1, on: true });
        expect(numeric("21.5")).toBe(21.5);
        expect(numeric(true)).toBe(1);
        expect(numeric("abc")).toBeNull();
        expect(numeric("")).toBeNull();
        expect(formatValue(12.056852241110713)).toBe("12.057");
        expect(formatValue("21.500000001")).toBe("21.5");
        expect(formatValue(42)).toBe("42");
        expect(formatValue({ a: 1 })).toBe('{"a":1}');
    });

    it("parses Prometheus text", () => {
        const s = parsePrometheus('# HELP x y\nconverge_requests_total{route="/sync",method="GET"} 12\nup 1\nbad line\nmem 5.2e7\n');
        expect(s).toEqual([
            { name: "converge_requests_total", labels: '{route="/sync",method="GET"}', value: 12 },
            { name: "up", labels: "", value: 1 },
            { name: "mem", labels: "", value: 5.2e7 },
        ]);
    });

    it("writes a curl example, signed or not", () => {
        expect(curlExample("https://h/_converge/hooks/abc", false)).toContain("curl -X POST 'https://h/_converge/hooks/abc'");
        expect(curlExample("https://h/_converge/hooks/abc", true)).toContain("X-Converge-Signature: t=$T,v1=$SIG");
    });

    it("finds rows by offset in the virtual list", () => {
        const heights = new Map([["a", 10], ["b", 20]]);
        const offs = prefixOffsets(["a", "b", "c"], heights, 50);
        expect(Array.from(offs)).toEqual([0, 10, 30, 80]);
        expect(indexAt(offs, 0)).toBe(0);
        expect(indexAt(offs, 15)).toBe(1);
        expect(indexAt(offs, 30)).toBe(2);
        expect(indexAt(offs, 1000)).toBe(2);
    });
});
