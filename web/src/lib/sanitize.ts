// An allowlist sanitiser for Matrix `formatted_body` HTML (org.matrix.custom.html).
//
// The input is parsed with DOMParser (a document that never runs scripts or loads resources), then
// walked; a *new* tree is built in the target document from the allowed tags and attributes only.
// The result is a DocumentFragment that is appended as nodes: it is never serialised and parsed again,
// so nothing can change meaning between sanitising and showing (no mutation XSS).
//
// Tags and attributes are those the Matrix client-server spec suggests clients allow
// (spec "m.room.message msgtypes", section on HTML), minus what we cannot show safely:
// - <img> is kept only with an mxc:// source, and its pixels are then loaded through the
//   authenticated media API by the caller (the tag gets data-mxc; it never gets a src here);
// - colours (data-mx-color, data-mx-bg-color, font color) are accepted only as #rrggbb and set with
//   the CSSOM (allowed under a strict style-src CSP), never as a style attribute;
// - links are kept only for http, https, ftp, mailto, magnet and matrix URIs, open in a new tab with
//   rel=noopener noreferrer;
// - <mx-reply> (the reply fallback) is dropped with its content, as the spec asks.

export const ALLOWED_TAGS = new Set([
    "font", "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol", "sup", "sub",
    "li", "b", "i", "u", "strong", "em", "s", "strike", "code", "hr", "br", "div", "table", "thead",
    "tbody", "tr", "th", "td", "caption", "pre", "span", "img", "details", "summary",
]);

const ALLOWED_ATTRS: Record<string, Set<string>> = {
    font: new Set(["data-mx-bg-color", "data-mx-color", "color"]),
    span: new Set(["data-mx-bg-color", "data-mx-color", "data-mx-spoiler", "data-mx-maths"]),
    div: new Set(["data-mx-maths"]),
    a: new Set(["name", "target", "href"]),
    img: new Set(["width", "height", "alt", "title", "src"]),
    ol: new Set(["start"]),
    code: new Set(["class"]),
};

// Dropped together with everything inside them (their text is not content).
const DROP_WITH_CONTENT = new Set([
    "mx-reply", "script", "style", "template", "iframe", "object", "embed", "noscript", "svg", "math",
    "head", "title", "textarea", "select", "option", "frame", "frameset", "noembed", "xmp", "plaintext",
]);

const LINK_SCHEMES = new Set(["http:", "https:", "ftp:", "mailto:", "magnet:", "matrix:"]);
const MAX_DEPTH = 100;
const COLOR = /^#[0-9a-fA-F]{6}$/;
const MXC = /^mxc:\/\/[A-Za-z0-9.:-]+\/[A-Za-z0-9_-]+$/;

export function safeHref(href: string): string | null {
    const trimmed = href.trim();
    try {
        const url = new URL(trimmed, "https://invalid.example/");
        if (!LINK_SCHEMES.has(url.protocol)) return null;
        // A relative link would point into this app: keep only absolute ones.
        if (!/^[a-z][a-z0-9+.-]*:/i.test(trimmed)) return null;
        return url.href;
    } catch {
        return null;
    }
}

function copyAttributes(src: Element, dst: HTMLElement, tag: string) {
    const allowed = ALLOWED_ATTRS[tag];
    if (!allowed) return;
    for (const attr of Array.from(src.attributes)) {
        const name = attr.name.toLowerCase();
        const value = attr.value;
        if (!allowed.has(name)) continue;
        switch (name) {
            case "href": {
                const href = safeHref(value);
                if (href) {
                    dst.setAttribute("href", href);
                    dst.setAttribute("target", "_blank");
                    dst.setAttribute("rel", "noopener noreferrer nofollow");
                }
                break;
            }
            case "target":
                break; // always _blank, set with href
            case "src":
                if (MXC.test(value)) dst.setAttribute("data-mxc", value);
                break;
            case "width":
            case "height":
            case "start":
                if (/^\d{1,5}$/.test(value)) dst.setAttribute(name, value);
                break;
            case "class":
                // Only language hints on <code>.
                {
                    const cls = value.split(/\s+/).filter((c) => /^language-[A-Za-z0-9_+-]{1,30}$/.test(c));
                    if (cls.length) dst.setAttribute("class", cls.join(" "));
                }
                break;
            case "color":
            case "data-mx-color":
                if (COLOR.test(value)) dst.style.color = value;
                break;
            case "data-mx-bg-color":
                if (COLOR.test(value)) dst.style.backgroundColor = value;
                break;
            case "data-mx-spoiler":
                dst.setAttribute("data-mx-spoiler", value.slice(0, 200));
                dst.classList.add("spoiler");
                break;
            default:
                dst.setAttribute(name, value.slice(0, 1000));
        }
    }
}

function walk(src: Node, dst: Node, doc: Document, depth: number) {
    for (const child of Array.from(src.childNodes)) {
        if (child.nodeType === Node.TEXT_NODE) {
            dst.appendChild(doc.createTextNode(child.textContent ?? ""));
            continue;
        }
        if (child.nodeType !== Node.ELEMENT_NODE) continue; // comments, processing instructions, CDATA
        const el = child as Element;
        const tag = el.localName.toLowerCase();
        if (DROP_WITH_CONTENT.has(tag) || el.namespaceURI !== "http://www.w3.org/1999/xhtml") continue;
        if (depth >= MAX_DEPTH) {
            dst.appendChild(doc.createTextNode(el.textContent ?? ""));
            continue;
        }
        if (!ALLOWED_TAGS.has(tag)) {
            // Unknown element: keep its (sanitised) content, drop the element itself.
            walk(el, dst, doc, depth + 1);
            continue;
        }
        if (tag === "img" && !MXC.test(el.getAttribute("src") ?? "")) {
            const alt = el.getAttribute("alt");
            if (alt) dst.appendChild(doc.createTextNode(alt));
            continue;
        }
        const out = doc.createElement(tag === "strike" ? "s" : tag);
        copyAttributes(el, out, tag);
        if (tag === "img") out.setAttribute("loading", "lazy");
        walk(el, out, doc, depth + 1);
        dst.appendChild(out);
    }
}

/** Sanitises Matrix HTML into a fragment of `doc` (default: the current document). */
export function sanitizeHtml(html: string, doc: Document = document): DocumentFragment {
    const parsed = new DOMParser().parseFromString(`<!doctype html><body>${html}`, "text/html");
    const fragment = doc.createDocumentFragment();
    walk(parsed.body, fragment, doc, 0);
    return fragment;
}

/** For tests and previews only: the sanitised tree serialised (never fed back into innerHTML by the app). */
export function sanitizeToString(html: string, doc: Document = document): string {
    const div = doc.createElement("div");
    div.appendChild(sanitizeHtml(html, doc));
    return div.innerHTML;
}

/** Removes the plain-text reply fallback ("> <@user> text" lines followed by an empty line). */
export function stripReplyFallback(body: string): string {
    const lines = body.split("\n");
    let i = 0;
    while (i < lines.length && lines[i].startsWith("> ")) i++;
    if (i > 0 && lines[i] === "") return lines.slice(i + 1).join("\n");
    return body;
}

/** The text of a message for previews: formatted_body's text when there is one (parsed inertly), else body. */
export function plainText(content: Record<string, unknown>): string {
    if (content.format === "org.matrix.custom.html" && typeof content.formatted_body === "string") {
        const doc = new DOMParser().parseFromString(`<!doctype html><body>${content.formatted_body}`, "text/html");
        doc.querySelectorAll("mx-reply").forEach((n) => n.remove());
        return (doc.body.textContent ?? "").replace(/\s+/g, " ").trim();
    }
    return stripReplyFallback(String(content.body ?? ""));
}
