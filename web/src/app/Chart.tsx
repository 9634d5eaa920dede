// uPlot charts: a wrapper that sizes the chart to its box, follows the theme, and updates data in
// place (setData) instead of rebuilding, so live charts stay cheap.
import "uplot/dist/uPlot.min.css";
import uPlot from "uplot";
import { useEffect, useLayoutEffect, useRef } from "preact/hooks";

export const PALETTE = ["#2f6fde", "#e0662d", "#2a9d5c", "#b5449b", "#c9a227", "#4aa3b5", "#7b61d9", "#d64545"];

function cssVar(name: string, fallback: string): string {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

export interface ChartProps {
    /** Builds the uPlot options for a width; axes colours are filled in from the theme. */
    options: (width: number) => Omit<uPlot.Options, "width" | "height">;
    data: uPlot.AlignedData;
    height?: number;
    label: string;
    /** Changing this rebuilds the chart (e.g. when the series change); data changes do not. */
    shapeKey: string;
    onWidth?: (plotWidth: number) => void;
}

export function Chart({ options, data, height = 220, label, shapeKey, onWidth }: ChartProps) {
    const box = useRef<HTMLDivElement>(null);
    const plot = useRef<uPlot | null>(null);
    const dataRef = useRef(data);
    dataRef.current = data;
    const onWidthRef = useRef(onWidth);
    onWidthRef.current = onWidth;

    useLayoutEffect(() => {
        const el = box.current;
        if (!el) return;
        const build = () => {
            plot.current?.destroy();
            const width = Math.max(200, el.clientWidth);
            const axis = cssVar("--chart-axis", "#888");
            const grid = cssVar("--chart-grid", "rgba(128,128,128,.2)");
            const opts = options(width);
            const axes = (opts.axes ?? [{}, {}]).map((a) => ({ stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, ...a }));
            plot.current = new uPlot({ ...opts, axes, width, height }, dataRef.current, el);
            onWidthRef.current?.(Math.round(plot.current.bbox.width / devicePixelRatio));
        };
        build();
        let lastWidth = el.clientWidth;
        const ro = new ResizeObserver(() => {
            const w = el.clientWidth;
            if (Math.abs(w - lastWidth) < 2 || !plot.current) return;
            lastWidth = w;
            plot.current.setSize({ width: Math.max(200, w), height });
            onWidthRef.current?.(Math.round(plot.current.bbox.width / devicePixelRatio));
        });
        ro.observe(el);
        const mq = window.matchMedia?.("(prefers-color-scheme: dark)");
        const themeObserver = new MutationObserver(build);
        themeObserver.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
        mq?.addEventListener?.("change", build);
        return () => {
            ro.disconnect();
            themeObserver.disconnect();
            mq?.removeEventListener?.("change", build);
            plot.current?.destroy();
            plot.current = null;
        };
        // eslint-disable-next-line react-hooks/exhaustive-deps
    }, [shapeKey, height]);

    useEffect(() => {
        plot.current?.setData(data, true);
    }, [data]);

    return <div ref={box} class="chart" role="img" aria-label={label} />;
}

export function dayToSeconds(day: string): number {
    return Date.parse(`${day}T00:00:00Z`) / 1000;
}

/** Aligns several day series on one x axis of days (missing days count 0). */
export function alignDays(series: { day: string; count: number }[][], days?: string[]): { x: number[]; ys: number[][]; days: string[] } {
    const all = days ?? [...new Set(series.flatMap((s) => s.map((p) => p.day)))].sort();
    const ys = series.map((s) => {
        const m = new Map(s.map((p) => [p.day, p.count]));
        return all.map((d) => m.get(d) ?? 0);
    });
    return { x: all.map(dayToSeconds), ys, days: all };
}

export const barsPath = uPlot.paths.bars!({ size: [0.7, 60], align: 0 });
export { uPlot };
