// The session (access token, user and device IDs) lives in this origin's localStorage: never in a
// cookie or a URL. Crypto keys live in IndexedDB (matrix-js-sdk's Rust crypto store).
export interface Session {
    userId: string;
    deviceId: string;
    accessToken: string;
}

const KEY = "converge.session";

export function loadSession(): Session | null {
    try {
        const raw = localStorage.getItem(KEY);
        if (!raw) return null;
        const s = JSON.parse(raw) as Session;
        return s && typeof s.accessToken === "string" && typeof s.userId === "string" ? s : null;
    } catch {
        return null;
    }
}

export function saveSession(s: Session) {
    localStorage.setItem(KEY, JSON.stringify(s));
}

export function clearSession() {
    localStorage.removeItem(KEY);
}
