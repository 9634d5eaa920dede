// A virtualised vertical list for the timeline: only the rows near the viewport are in the DOM.
// Rows have varying heights: each rendered row is measured (and re-measured by a ResizeObserver when an
// image loads); unmeasured rows count with an estimate. Spacers above and below stand in for the rest.
// It sticks to the bottom while the reader is there, and keeps the row under the reader in place when
// older rows are added above (back-pagination) or rows change height.
import { Component, type ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useReducer, useRef } from "preact/hooks";

export interface VirtualListProps<T> {
    items: T[];
    itemKey: (item: T) => string;
    render: (item: T, index: number) => ComponentChildren;
    estimate?: number;
    overscan?: number;
    onNearTop?: () => void;
    label: string;
    class?: string;
    /** Changes to this value scroll to the bottom (e.g. the room ID, or my own new message). */
    bottomSignal?: unknown;
}

/** One row: re-renders only when its item changes or the list's parent re-rendered (gen), not on scroll. */
class RowShell<T> extends Component<{ item: T; index: number; gen: number; render: (item: T, index: number) => ComponentChildren }> {
    shouldComponentUpdate(next: { item: T; index: number; gen: number }) {
        return next.item !== this.props.item || next.gen !== this.props.gen || next.index !== this.props.index;
    }
    render() {
        return <>{this.props.render(this.props.item, this.props.index)}</>;
    }
}

export function prefixOffsets(keys: string[], heights: Map<string, number>, estimate: number): Float64Array {
    const out = new Float64Array(keys.length + 1);
    for (let i = 0; i < keys.length; i++) out[i + 1] = out[i] + (heights.get(keys[i]) ?? estimate);
    return out;
}

/** The last index i with offsets[i] <= y (0 when y is above everything). */
export function indexAt(offsets: Float64Array, y: number): number {
    let lo = 0;
    let hi = offsets.length - 1;
    while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if (offsets[mid] <= y) lo = mid;
        else hi = mid - 1;
    }
    return Math.min(lo, Math.max(0, offsets.length - 2));
}

export function VirtualList<T>({ items, itemKey, render, estimate = 56, overscan = 400, onNearTop, label, class: cls, bottomSignal }: VirtualListProps<T>) {
    const scroller = useRef<HTMLDivElement>(null);
    const heights = useRef(new Map<string, number>());
    const atBottom = useRef(true);
    const anchor = useRef<{ key: string; offset: number } | null>(null);
    const view = useRef({ top: 0, height: 800 });
    const [, force] = useReducer((n: number) => n + 1, 0);
    const rowEls = useRef(new Map<string, HTMLElement>());
    const observer = useRef<ResizeObserver | null>(null);
    const nearTopRef = useRef(onNearTop);
    nearTopRef.current = onNearTop;
    // A new render function means the parent re-rendered (new data): rows must re-render too.
    const lastRender = useRef(render);
    const gen = useRef(0);
    if (lastRender.current !== render) {
        lastRender.current = render;
        gen.current++;
    }

    const keys = items.map(itemKey);
    const offsets = prefixOffsets(keys, heights.current, estimate);
    const total = offsets[keys.length];
    const { top, height } = view.current;
    const start = keys.length ? indexAt(offsets, Math.max(0, top - overscan)) : 0;
    const end = keys.length ? Math.min(keys.length, indexAt(offsets, top + height + overscan) + 1) : 0;

    // Measure what was rendered, then fix the scroll position (before paint).
    useLayoutEffect(() => {
        const el = scroller.current;
        if (!el) return;
        let changed = false;
        for (const [key, row] of rowEls.current) {
            const h = row.offsetHeight;
            if (h > 0 && heights.current.get(key) !== h) {
                heights.current.set(key, h);
                changed = true;
            }
        }
        if (atBottom.current) {
            el.scrollTop = el.scrollHeight;
        } else if (anchor.current) {
            const idx = keys.indexOf(anchor.current.key);
            if (idx >= 0) {
                const offs = changed ? prefixOffsets(keys, heights.current, estimate) : offsets;
                const want = offs[idx] + anchor.current.offset;
                if (Math.abs(el.scrollTop - want) > 1) el.scrollTop = want;
            }
        }
        view.current = { top: el.scrollTop, height: el.clientHeight };
        if (changed) force(0);
        // Near the top (also when nothing scrolled: the content may not fill the view yet).
        if (el.scrollTop < 800) nearTopRef.current?.();
    });

    useEffect(() => {
        atBottom.current = true;
        anchor.current = null;
        force(0);
    }, [bottomSignal]);

    useEffect(() => {
        const ro = new ResizeObserver((entries) => {
            let changed = false;
            for (const entry of entries) {
                const key = (entry.target as HTMLElement).dataset.key;
                const h = (entry.target as HTMLElement).offsetHeight;
                if (key && h > 0 && heights.current.get(key) !== h) {
                    heights.current.set(key, h);
                    changed = true;
                }
            }
            if (changed) force(0);
        });
        observer.current = ro;
        const viewRo = new ResizeObserver(() => {
            const el = scroller.current;
            if (!el) return;
            view.current = { top: el.scrollTop, height: el.clientHeight };
            force(0);
        });
        if (scroller.current) viewRo.observe(scroller.current);
        return () => {
            ro.disconnect();
            viewRo.disconnect();
        };
    }, []);

    const onScroll = () => {
        const el = scroller.current;
        if (!el) return;
        atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
        const offs = prefixOffsets(keys, heights.current, estimate);
        // The anchor is the row at the top of the view; never the first row, which may be a header
        // that stays first when older rows arrive (the anchor's offset may then be negative).
        let idx = keys.length ? indexAt(offs, el.scrollTop) : -1;
        if (idx === 0 && keys.length > 1) idx = 1;
        anchor.current = idx >= 0 ? { key: keys[idx], offset: el.scrollTop - offs[idx] } : null;
        const prevTop = view.current.top;
        view.current = { top: el.scrollTop, height: el.clientHeight };
        if (el.scrollTop < 800) nearTopRef.current?.();
        // Re-render only when the window of rows may change.
        if (Math.abs(prevTop - el.scrollTop) > overscan / 4 || el.scrollTop < overscan) force(0);
    };

    const refFor = (key: string) => (node: HTMLElement | null) => {
        const old = rowEls.current.get(key);
        if (old && old !== node) {
            observer.current?.unobserve(old);
            rowEls.current.delete(key);
        }
        if (node) {
            rowEls.current.set(key, node);
            observer.current?.observe(node);
        }
    };

    return (
        <div ref={scroller} class={`vlist ${cls ?? ""}`} onScroll={onScroll} tabIndex={0} role="log" aria-label={label} aria-live="polite">
            <div class="vlist-spacer" style={{ height: `${offsets[start]}px` }} aria-hidden="true" />
            {items.slice(start, end).map((item, i) => {
                const key = keys[start + i];
                return (
                    <div key={key} data-key={key} ref={refFor(key)} class="vlist-row">
                        <RowShell item={item} index={start + i} gen={gen.current} render={render} />
                    </div>
                );
            })}
            <div class="vlist-spacer" style={{ height: `${Math.max(0, total - offsets[end])}px` }} aria-hidden="true" />
        </div>
    );
}
