// A tiny History-API router: the server answers every unknown path with index.html (SPA fallback).
import { useEffect, useState } from "preact/hooks";

type Listener = () => void;
const listeners = new Set<Listener>();

export function currentPath(): string {
    return location.pathname;
}

export function navigate(to: string, replace = false) {
    if (to === location.pathname + location.search) return;
    if (replace) history.replaceState(null, "", to);
    else history.pushState(null, "", to);
    for (const l of listeners) l();
}

window.addEventListener("popstate", () => {
    for (const l of listeners) l();
});

export function usePath(): string {
    const [path, setPath] = useState(currentPath());
    useEffect(() => {
        const l = () => setPath(currentPath());
        listeners.add(l);
        return () => void listeners.delete(l);
    }, []);
    return path;
}

/** Matches "/rooms/:id/devices" against a path; returns decoded params or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
    const p = pattern.split("/").filter(Boolean);
    const s = path.split("/").filter(Boolean);
    if (p.length !== s.length) return null;
    const out: Record<string, string> = {};
    for (let i = 0; i < p.length; i++) {
        if (p[i].startsWith(":")) {
            try {
                out[p[i].slice(1)] = decodeURIComponent(s[i]);
            } catch {
                return null;
            }
        } else if (p[i] !== s[i]) return null;
    }
    return out;
}

export const roomPath = (roomId: string, sub?: string) => `/rooms/${encodeURIComponent(roomId)}${sub ? `/${sub}` : ""}`;

/** Click handler for in-app links: plain clicks navigate without a page load. */
export function onLinkClick(ev: MouseEvent) {
    const a = (ev.currentTarget as HTMLAnchorElement);
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const href = a.getAttribute("href");
    if (!href || !href.startsWith("/")) return;
    ev.preventDefault();
    navigate(href);
}
