// Markdown for outgoing messages: `body` stays the text as typed; `formatted_body` is the rendered
// HTML when it differs from plain text. Raw HTML typed into the composer is shown as text, and the
// output is run through the same allowlist as incoming HTML.
import { Marked } from "marked";
import { sanitizeToString } from "./sanitize";

export function escapeHtml(s: string): string {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

const md = new Marked({
    gfm: true,
    breaks: true,
    renderer: {
        html(token) {
            return escapeHtml(token.text);
        },
    },
});

/** The HTML for a message, or null when Markdown changes nothing (send plain text only). */
export function renderMarkdown(body: string): string | null {
    const html = (md.parse(body, { async: false }) as string).trim();
    const plain = `<p>${escapeHtml(body).replace(/\n/g, "<br>")}</p>`;
    if (html === plain || html === `<p>${escapeHtml(body)}</p>`) return null;
    return sanitizeToString(html);
}
