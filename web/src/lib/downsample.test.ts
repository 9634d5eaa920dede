import { describe, expect, it } from "vitest";
import { downsampleMinMax, lowerBound, upperBound } from "./downsample";

describe("downsampleMinMax", () => {
    it("returns everything when there are few points", () => {
        const r = downsampleMinMax([1, 2, 3], [5, null, 7], 0, 10, 100);
        expect(r).toEqual({ xs: [1, 3], ys: [5, 7] });
    });

    it("keeps at most two points per bucket, and keeps the extremes", () => {
        const n = 100_000;
        const xs = Array.from({ length: n }, (_, i) => i);
        const ys = xs.map((i) => Math.sin(i / 500));
        ys[54_321] = 42; // a spike
        ys[12_345] = -42; // a dip
        const r = downsampleMinMax(xs, ys, 0, n - 1, 800);
        expect(r.xs.length).toBeLessThanOrEqual(2 * 800 + 2);
        expect(Math.max(...(r.ys as number[]))).toBe(42);
        expect(Math.min(...(r.ys as number[]))).toBe(-42);
        // time order is preserved
        for (let i = 1; i < r.xs.length; i++) expect(r.xs[i]).toBeGreaterThan(r.xs[i - 1]);
    });

    it("keeps the neighbours just outside the range so lines reach the edges", () => {
        const xs = Array.from({ length: 10_000 }, (_, i) => i * 10);
        const ys = xs.map((x) => x);
        const r = downsampleMinMax(xs, ys, 50_000, 60_000, 20);
        expect(r.xs[0]).toBe(49_990);
        expect(r.xs[r.xs.length - 1]).toBe(60_010);
    });

    it("skips gaps and non-finite values", () => {
        const xs = Array.from({ length: 1000 }, (_, i) => i);
        const ys = xs.map((i) => (i % 3 === 0 ? null : i % 7 === 0 ? Number.NaN : i));
        const r = downsampleMinMax(xs, ys, 0, 999, 10);
        expect(r.ys.every((y) => y !== null && Number.isFinite(y))).toBe(true);
    });

    it("handles empty input and empty ranges", () => {
        expect(downsampleMinMax([], [], 0, 1, 10)).toEqual({ xs: [], ys: [] });
        expect(downsampleMinMax([1], [1], 5, 5, 10)).toEqual({ xs: [], ys: [] });
    });

    it("draws 100,000 points quickly", () => {
        const n = 100_000;
        const xs = Array.from({ length: n }, (_, i) => 1_700_000_000_000 + i * 1000);
        const ys = xs.map((_, i) => Math.random() * 10 + (i % 1000) / 100);
        const t0 = performance.now();
        for (let k = 0; k < 10; k++) downsampleMinMax(xs, ys, xs[0], xs[n - 1], 1200);
        const per = (performance.now() - t0) / 10;
        expect(per).toBeLessThan(50);
    });
});

describe("binary searches", () => {
    it("find bounds", () => {
        const xs = [1, 2, 2, 2, 5];
        expect(lowerBound(xs, 2)).toBe(1);
        expect(upperBound(xs, 2)).toBe(4);
        expect(lowerBound(xs, 0)).toBe(0);
        expect(upperBound(xs, 9)).toBe(5);
    });
});
