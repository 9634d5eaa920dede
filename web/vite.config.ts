/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// Deterministic, CSP-friendly build: hashed names, no inline script or style, no source maps,
// no timestamps. The Converge binary embeds dist/ and serves it at / with an SPA fallback.
export default defineConfig({
    base: "/",
    oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
    build: {
        outDir: "dist",
        emptyOutDir: true,
        target: "es2022",
        sourcemap: false,
        // Everything becomes a file under assets/: nothing is inlined as a data: URL into CSS or JS.
        assetsInlineLimit: 0,
        cssCodeSplit: true,
        modulePreload: { polyfill: false },
        reportCompressedSize: true,
        chunkSizeWarningLimit: 1200,
    },
    server: {
        host: "127.0.0.1",
        proxy: {
            "/_matrix": process.env.CONVERGE_URL ?? "http://127.0.0.1:8448",
            "/_converge": process.env.CONVERGE_URL ?? "http://127.0.0.1:8448",
        },
    },
    test: {
        environment: "jsdom",
        include: ["src/**/*.test.ts"],
    },
});
