export function formatBytes(n: number): string {
    if (!Number.isFinite(n)) return "";
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
    }
    return i === 0 ? `${v} ${v === 1 ? "byte" : "bytes"}` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

// Formatters are made once: toLocaleString with options builds a new one on every call, which is
// slow enough to show when a timeline renders dozens of rows per frame.
const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const DAY_TIME = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function formatTime(ts: number | null | undefined): string {
    if (!ts) return "";
    const d = new Date(ts);
    const now = new Date();
    const sameDay = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate();
    return sameDay ? TIME.format(d) : DAY_TIME.format(d);
}

export function formatDateTime(ts: number | null | undefined): string {
    if (!ts) return "never";
    return DATE_TIME.format(ts);
}

export function timeAgo(ts: number | null | undefined, now = Date.now()): string {
    if (!ts) return "never";
    const s = Math.round((now - ts) / 1000);
    if (s < 10) return "just now";
    if (s < 60) return `${s} seconds ago`;
    const m = Math.round(s / 60);
    if (m < 60) return m === 1 ? "a minute ago" : `${m} minutes ago`;
    const h = Math.round(m / 60);
    if (h < 48) return h === 1 ? "an hour ago" : `${h} hours ago`;
    const d = Math.round(h / 24);
    return `${d} days ago`;
}

const NUMBER = new Intl.NumberFormat();
export function formatNumber(n: number): string {
    return NUMBER.format(n);
}

/** Initials for an avatar: the first letter of the name, or of the user ID after the sigil. */
export function initial(name: string): string {
    const s = name.replace(/^[@#!+]/, "").trim();
    return (Array.from(s)[0] ?? "?").toUpperCase();
}

/** A stable hue for a user ID. */
export function hue(id: string): number {
    let h = 0;
    for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
    return h % 360;
}
