// Serves web/dist the way the Converge binary will: static files with the strict CSP, an SPA fallback
// to index.html, and the Matrix/Converge APIs passed through to a Converge server on the same origin.
// Used by the tests while the binary does not serve the app itself (run.sh checks).
//   node tests/serve.mjs --dist dist --upstream http://127.0.0.1:8448 --port 8450
import { createReadStream, existsSync, statSync } from "node:fs";
import http from "node:http";
import { extname, join, normalize, resolve } from "node:path";

const args = Object.fromEntries(
    process.argv
        .slice(2)
        .join(" ")
        .split("--")
        .filter(Boolean)
        .map((a) => a.trim().split(/\s+/)),
);
const dist = resolve(args.dist ?? "dist");
const upstream = new URL(args.upstream ?? "http://127.0.0.1:8448");
const port = Number(args.port ?? 8450);

export const CSP =
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; media-src 'self' blob:; frame-ancestors 'none'";

const TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".png": "image/png",
};

function serveFile(res, path, status = 200) {
    const type = TYPES[extname(path)] ?? "application/octet-stream";
    res.writeHead(status, {
        "content-type": type,
        "content-security-policy": CSP,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "cache-control": path.includes("/assets/") ? "public, max-age=31536000, immutable" : "no-cache",
    });
    createReadStream(path).pipe(res);
}

const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (/^\/(_matrix|_converge|\.well-known)\//.test(url.pathname)) {
        const proxied = http.request(
            { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
            (up) => {
                res.writeHead(up.statusCode ?? 502, up.headers);
                up.pipe(res);
            },
        );
        proxied.on("error", () => {
            res.writeHead(502, { "content-type": "application/json" });
            res.end(JSON.stringify({ errcode: "M_UNKNOWN", error: "upstream unreachable" }));
        });
        req.pipe(proxied);
        return;
    }
    const path = normalize(join(dist, decodeURIComponent(url.pathname)));
    if (path.startsWith(dist) && existsSync(path) && statSync(path).isFile()) return serveFile(res, path);
    if (url.pathname.startsWith("/assets/")) {
        res.writeHead(404, { "content-type": "text/plain" });
        return res.end("not found");
    }
    serveFile(res, join(dist, "index.html"));
});

server.listen(port, "127.0.0.1", () => console.log(`serving ${dist} on http://127.0.0.1:${port} (API: ${upstream.origin})`));
