import { describe, expect, it } from "vitest";
import { safeHref, sanitizeHtml, sanitizeToString, stripReplyFallback } from "./sanitize";

const clean = (html: string) => sanitizeToString(html);

describe("sanitizeHtml", () => {
    it("keeps the spec's formatting tags", () => {
        expect(clean("<b>bold</b> <i>it</i> <code>x</code> <del>d</del>")).toBe("<b>bold</b> <i>it</i> <code>x</code> <del>d</del>");
        expect(clean("<ul><li>a</li></ul><blockquote>q</blockquote><pre><code class=\"language-rust\">fn</code></pre>")).toBe(
            '<ul><li>a</li></ul><blockquote>q</blockquote><pre><code class="language-rust">fn</code></pre>',
        );
        expect(clean('<table><thead><tr><th>h</th></tr></thead><tbody><tr><td>c</td></tr></tbody></table>')).toContain("<td>c</td>");
        expect(clean("<details><summary>s</summary>body</details>")).toBe("<details><summary>s</summary>body</details>");
    });

    it("drops scripts, styles and event handlers", () => {
        const out = clean('<img src=x onerror="alert(1)"><script>alert(2)</script><style>body{}</style><b onclick="alert(3)">hi</b>');
        expect(out).toBe("<b>hi</b>");
        expect(out).not.toMatch(/onerror|onclick|script|style|alert/);
    });

    it("drops svg, math, iframes, objects and forms with their content or tags", () => {
        expect(clean('<svg><script>alert(1)</script></svg><math><mtext>x</mtext></math><iframe src="https://e"></iframe>ok')).toBe("ok");
        expect(clean('<form action="https://e"><input value="x"><button>go</button></form>')).toBe("go");
        expect(clean('<object data="x"></object><embed src="x">t')).toBe("t");
    });

    it("keeps only safe link schemes and opens links in a new tab", () => {
        expect(clean('<a href="javascript:alert(1)">x</a>')).toBe("<a>x</a>");
        expect(clean('<a href=" JaVaScRiPt:alert(1)">x</a>')).toBe("<a>x</a>");
        expect(clean('<a href="data:text/html,<script>alert(1)</script>">x</a>')).toBe("<a>x</a>");
        expect(clean('<a href="vbscript:x">x</a>')).toBe("<a>x</a>");
        expect(clean('<a href="/relative">x</a>')).toBe("<a>x</a>");
        expect(clean('<a href="https://example.org/a?b=1">x</a>')).toBe('<a href="https://example.org/a?b=1" target="_blank" rel="noopener noreferrer nofollow">x</a>');
        expect(clean('<a href="mailto:a@example.org">m</a>')).toContain('href="mailto:a@example.org"');
        expect(safeHref("matrix:r/room:example.org")).toBe("matrix:r/room:example.org");
    });

    it("keeps images only with mxc sources, never as a src", () => {
        expect(clean('<img src="mxc://example.org/abc123" alt="cat" width="100">')).toBe('<img data-mxc="mxc://example.org/abc123" alt="cat" width="100" loading="lazy">');
        expect(clean('<img src="https://tracker.example/p.gif" alt="pixel">')).toBe("pixel");
        expect(clean('<img src="mxc://example.org/../../x">')).toBe("");
    });

    it("turns colours into CSSOM styles only when they are #rrggbb", () => {
        const frag = sanitizeHtml('<font data-mx-color="#ff0000">red</font><span data-mx-bg-color="red;background:url(x)">x</span>');
        const font = frag.firstChild as HTMLElement;
        expect(font.style.color).toBe("rgb(255, 0, 0)");
        const span = frag.childNodes[1] as HTMLElement;
        expect(span.getAttribute("style")).toBeNull();
        expect(span.getAttribute("data-mx-bg-color")).toBeNull();
    });

    it("removes the reply fallback", () => {
        expect(clean("<mx-reply><blockquote>quoted <b>x</b></blockquote></mx-reply>answer")).toBe("answer");
        expect(stripReplyFallback("> <@a:x> hi\n> there\n\nreal")).toBe("real");
        expect(stripReplyFallback("> a quote\nno blank line")).toBe("> a quote\nno blank line");
    });

    it("keeps the text of unknown elements, escaped", () => {
        expect(clean("<marquee>moving <b>bold</b></marquee>")).toBe("moving <b>bold</b>");
        expect(clean("&lt;script&gt;alert(1)&lt;/script&gt;")).toBe("&lt;script&gt;alert(1)&lt;/script&gt;");
        expect(clean("<!-- comment --><p>p</p>")).toBe("<p>p</p>");
    });

    it("filters attributes per tag", () => {
        expect(clean('<p class="x" id="y" title="t">p</p>')).toBe("<p>p</p>");
        expect(clean('<ol start="3" type="a"><li>x</li></ol>')).toBe('<ol start="3"><li>x</li></ol>');
        expect(clean('<ol start="javascript:1"><li>x</li></ol>')).toBe("<ol><li>x</li></ol>");
        expect(clean('<code class="language-js evil">x</code>')).toBe('<code class="language-js">x</code>');
        expect(clean('<span data-mx-spoiler="why">s</span>')).toBe('<span data-mx-spoiler="why" class="spoiler">s</span>');
    });

    it("survives deep nesting and mutation-XSS shapes", () => {
        const deep = "<b>".repeat(300) + "x" + "</b>".repeat(300);
        expect(clean(deep)).toContain("x");
        const mxss = clean('<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>');
        expect(mxss).not.toMatch(/onerror|<img/);
        const tmpl = clean('<template><img src=x onerror=alert(1)></template>after');
        expect(tmpl).toBe("after");
    });
});
