// Min/max downsampling for line charts: split the visible x range into `buckets` equal bins (one or
// two per pixel column) and keep, per bin, the smallest and the largest point in their time order.
// A line drawn through the result has the same silhouette as one drawn through every point, so spikes
// survive, and the chart draws at most 2 × buckets points however many samples there are.
// Points outside [xMin, xMax] are dropped except the nearest one on each side, so the line still
// runs to the edges of the plot. Null and non-finite y values are gaps and are skipped.

export interface Series {
    xs: number[];
    ys: (number | null)[];
}

/** Index of the first x >= value in sorted xs (binary search). */
export function lowerBound(xs: ArrayLike<number>, value: number): number {
    let lo = 0;
    let hi = xs.length;
    while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (xs[mid] < value) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/** Index of the first x > value in sorted xs. */
export function upperBound(xs: ArrayLike<number>, value: number): number {
    let lo = 0;
    let hi = xs.length;
    while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (xs[mid] <= value) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

export function downsampleMinMax(
    xs: ArrayLike<number>,
    ys: ArrayLike<number | null>,
    xMin: number,
    xMax: number,
    buckets: number,
): Series {
    const out: Series = { xs: [], ys: [] };
    const n = Math.min(xs.length, ys.length);
    if (n === 0 || !(xMax > xMin) || buckets < 1) return out;
    let start = Math.min(lowerBound(xs, xMin), n);
    let end = Math.min(upperBound(xs, xMax), n); // exclusive
    // The neighbours just outside the range.
    if (start > 0) start--;
    if (end < n) end++;
    const count = end - start;
    if (count <= buckets * 2) {
        for (let i = start; i < end; i++) {
            const y = ys[i];
            if (y === null || !Number.isFinite(y)) continue;
            out.xs.push(xs[i]);
            out.ys.push(y);
        }
        return out;
    }
    const width = (xMax - xMin) / buckets;
    let bucket = -2; // bucket index of the current run; -1 = before xMin, buckets = after xMax
    let minI = -1;
    let maxI = -1;
    const flush = () => {
        if (minI < 0) return;
        if (minI === maxI) {
            out.xs.push(xs[minI]);
            out.ys.push(ys[minI] as number);
        } else {
            const a = Math.min(minI, maxI);
            const b = Math.max(minI, maxI);
            out.xs.push(xs[a], xs[b]);
            out.ys.push(ys[a] as number, ys[b] as number);
        }
        minI = maxI = -1;
    };
    for (let i = start; i < end; i++) {
        const y = ys[i];
        if (y === null || !Number.isFinite(y)) continue;
        const x = xs[i];
        const b = x < xMin ? -1 : x > xMax ? buckets : Math.min(buckets - 1, Math.floor((x - xMin) / width));
        if (b !== bucket) {
            flush();
            bucket = b;
        }
        if (minI < 0) {
            minI = maxI = i;
        } else {
            if (y < (ys[minI] as number)) minI = i;
            if (y > (ys[maxI] as number)) maxI = i;
        }
    }
    flush();
    return out;
}
