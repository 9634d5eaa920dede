// Every error the UI shows goes through describeError: a sentence for a person, never raw JSON.

export class ApiError extends Error {
    constructor(
        public status: number,
        public errcode: string,
        /** The server's own `error` text, if any (not shown as is when we know better). */
        public serverText: string,
        public data: Record<string, unknown> = {},
    ) {
        super(serverText || errcode || `HTTP ${status}`);
        this.name = "ApiError";
    }
}

const SENTENCES: Record<string, string> = {
    M_FORBIDDEN: "You don't have permission to do that.",
    M_UNKNOWN_TOKEN: "Your session has ended. Please sign in again.",
    M_MISSING_TOKEN: "Please sign in first.",
    M_USER_IN_USE: "That username is already taken.",
    M_INVALID_USERNAME: "That username isn't allowed. Use lower-case letters, digits, and . _ = - /",
    M_WEAK_PASSWORD: "That password is too weak. Choose a longer one.",
    M_EXCLUSIVE: "That name is reserved on this server.",
    M_TOO_LARGE: "That is larger than this server accepts.",
    M_ROOM_IN_USE: "A room with that address already exists.",
    M_UNRECOGNIZED: "This server doesn't offer that feature yet.",
    M_NOT_JSON: "The request was malformed.",
    M_BAD_JSON: "The request was malformed.",
    M_UNSUPPORTED_ROOM_VERSION: "This server doesn't support that room version.",
    M_USER_DEACTIVATED: "This account has been deactivated.",
    M_RESOURCE_LIMIT_EXCEEDED: "The server has reached a limit. Try again later.",
};

/** Turns server text like "no such device" into "No such device." */
function sentence(text: string): string {
    const t = text.trim().replace(/\s+/g, " ");
    if (!t || /^[{[<]/.test(t) || t.length > 300) return "";
    const s = t[0].toUpperCase() + t.slice(1);
    return /[.!?]$/.test(s) ? s : `${s}.`;
}

export function describeError(e: unknown, context?: { forbidden?: string; notFound?: string }): string {
    if (e == null) return "Something went wrong.";
    const anyE = e as { errcode?: string; httpStatus?: number; status?: number; data?: { error?: string; retry_after_ms?: number }; serverText?: string; name?: string; message?: string };
    if (anyE.name === "AbortError") return "The request was cancelled.";
    const errcode = anyE.errcode ?? "";
    const status = anyE.status ?? anyE.httpStatus ?? 0;
    const serverText = anyE.serverText ?? anyE.data?.error ?? "";
    if (errcode === "NETWORK" || (e instanceof TypeError && /fetch|network/i.test(String(anyE.message)))) {
        return "Can't reach the server. Check your connection and try again.";
    }
    if (errcode === "M_FORBIDDEN" && context?.forbidden) return context.forbidden;
    if (errcode === "M_FORBIDDEN" && /password|credentials/i.test(serverText)) return "Wrong username or password.";
    if (errcode === "M_LIMIT_EXCEEDED") {
        const ms = anyE.data?.retry_after_ms;
        return ms ? `Too many attempts. Try again in ${Math.ceil(ms / 1000)} seconds.` : "Too many attempts. Try again in a moment.";
    }
    if ((errcode === "M_NOT_FOUND" || status === 404) && context?.notFound) return context.notFound;
    if (errcode === "M_UNRECOGNIZED" || (status === 404 && !errcode) || status === 405 || status === 501) {
        return context?.notFound ?? SENTENCES.M_UNRECOGNIZED;
    }
    if (SENTENCES[errcode]) return SENTENCES[errcode];
    const fromServer = sentence(serverText);
    if (fromServer) return fromServer;
    if (status >= 500) return "The server had a problem. Try again in a moment.";
    if (status === 413) return SENTENCES.M_TOO_LARGE;
    if (status === 403) return SENTENCES.M_FORBIDDEN;
    if (status === 401) return SENTENCES.M_UNKNOWN_TOKEN;
    const msg = sentence(String(anyE.message ?? ""));
    return msg || "Something went wrong.";
}

/** True when the server does not have this endpoint (yet). */
export function isMissingEndpoint(e: unknown): boolean {
    const anyE = e as { errcode?: string; status?: number; httpStatus?: number };
    const status = anyE?.status ?? anyE?.httpStatus;
    return anyE?.errcode === "M_UNRECOGNIZED" || status === 405 || status === 501 || (status === 404 && !anyE?.errcode);
}
