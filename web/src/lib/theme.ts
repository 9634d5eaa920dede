// Light, dark or the system's choice; stored per browser. The choice is an attribute on <html>
// (no inline style or script: index.html stays CSP-clean).
export type Theme = "system" | "light" | "dark";
const KEY = "converge.theme";

export function getTheme(): Theme {
    const t = localStorage.getItem(KEY);
    return t === "light" || t === "dark" ? t : "system";
}

export function applyTheme(t: Theme = getTheme()) {
    const root = document.documentElement;
    if (t === "system") root.removeAttribute("data-theme");
    else root.setAttribute("data-theme", t);
}

export function setTheme(t: Theme) {
    if (t === "system") localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, t);
    applyTheme(t);
}

/** The theme in effect, for charts that draw with canvas colours. */
export function isDark(): boolean {
    const t = getTheme();
    if (t !== "system") return t === "dark";
    return window.matchMedia?.("(prefers-color-scheme: dark)").matches ?? false;
}
