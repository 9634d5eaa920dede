// Media through the authenticated endpoints only: fetched with the access token in a header, turned
// into blob: URLs (allowed by img-src/media-src 'self' blob:). Encrypted attachments are decrypted here
// (AES-256-CTR + SHA-256, as the spec describes) with WebCrypto.
import { useEffect, useState } from "preact/hooks";
import { fetchMedia } from "../lib/api";
import { describeError } from "../lib/errors";

export interface EncryptedFile {
    url: string;
    key: JsonWebKey;
    iv: string;
    hashes: { sha256: string };
    v: string;
    mimetype?: string;
}

const cache = new Map<string, Promise<string>>();

function b64ToBytes(s: string): Uint8Array {
    const std = s.replace(/-/g, "+").replace(/_/g, "/");
    const pad = std + "===".slice((std.length + 3) % 4);
    const bin = atob(pad);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
}
function bytesToB64(b: Uint8Array): string {
    let s = "";
    for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
    return btoa(s).replace(/=+$/, "");
}

export async function decryptAttachment(data: ArrayBuffer, file: EncryptedFile): Promise<ArrayBuffer> {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
    if (bytesToB64(digest) !== file.hashes.sha256.replace(/=+$/, "")) throw new Error("The file doesn't match its checksum.");
    const key = await crypto.subtle.importKey("jwk", file.key, { name: "AES-CTR" }, false, ["encrypt", "decrypt"]);
    return crypto.subtle.decrypt({ name: "AES-CTR", counter: b64ToBytes(file.iv) as BufferSource, length: 64 }, key, data);
}

export async function encryptAttachment(plain: ArrayBuffer): Promise<{ data: ArrayBuffer; info: Omit<EncryptedFile, "url"> }> {
    const key = await crypto.subtle.generateKey({ name: "AES-CTR", length: 256 }, true, ["encrypt", "decrypt"]);
    const iv = new Uint8Array(16);
    crypto.getRandomValues(iv.subarray(0, 8));
    const data = await crypto.subtle.encrypt({ name: "AES-CTR", counter: iv, length: 64 }, key, plain);
    const jwk = await crypto.subtle.exportKey("jwk", key);
    const sha = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
    return {
        data,
        info: { key: { kty: "oct", key_ops: ["encrypt", "decrypt"], alg: "A256CTR", k: jwk.k, ext: true }, iv: bytesToB64(iv), hashes: { sha256: bytesToB64(sha) }, v: "v2" },
    };
}

/** A blob: URL for mxc media (or an encrypted file), cached for the page's life. */
export function mediaUrl(source: { mxc?: string; file?: EncryptedFile; thumb?: { width: number; height: number }; mimetype?: string }): Promise<string> {
    const mxc = source.file?.url ?? source.mxc ?? "";
    const key = `${mxc}|${source.thumb ? `${source.thumb.width}x${source.thumb.height}` : "full"}`;
    let p = cache.get(key);
    if (!p) {
        p = (async () => {
            if (source.file) {
                const blob = await fetchMedia(source.file.url);
                const plain = await decryptAttachment(await blob.arrayBuffer(), source.file);
                return URL.createObjectURL(new Blob([plain], { type: safeMime(source.mimetype ?? source.file.mimetype) }));
            }
            const blob = await fetchMedia(mxc, source.thumb);
            return URL.createObjectURL(new Blob([blob], { type: safeMime(blob.type || source.mimetype) }));
        })();
        cache.set(key, p);
        p.catch(() => cache.delete(key));
    }
    return p;
}

/** Only types a browser shows inertly become the blob's type; anything else downloads as bytes. */
export function safeMime(mime: string | undefined): string {
    const m = (mime ?? "").toLowerCase().split(";")[0].trim();
    if (/^image\/(png|jpeg|gif|webp|avif|bmp)$/.test(m)) return m;
    if (/^(video|audio)\/[a-z0-9.+-]+$/.test(m)) return m;
    if (m === "text/plain" || m === "application/pdf") return m;
    return "application/octet-stream";
}

export function useMediaUrl(source: Parameters<typeof mediaUrl>[0] | null): { url?: string; error?: string } {
    const [state, setState] = useState<{ url?: string; error?: string }>({});
    const dep = source ? `${source.file?.url ?? source.mxc}|${source.thumb?.width}` : "";
    useEffect(() => {
        if (!source) return;
        let live = true;
        setState({});
        mediaUrl(source).then(
            (url) => live && setState({ url }),
            (e) => live && setState({ error: describeError(e, { notFound: "This file is no longer available." }) }),
        );
        return () => void (live = false);
        // eslint-disable-next-line react-hooks/exhaustive-deps
    }, [dep]);
    return state;
}

/** Downloads media to the user's disk through a temporary link with the download attribute. */
export async function downloadMedia(source: Parameters<typeof mediaUrl>[0], filename: string) {
    const url = await mediaUrl({ ...source, thumb: undefined });
    const a = document.createElement("a");
    a.href = url;
    a.download = filename || "download";
    a.rel = "noopener";
    document.body.appendChild(a);
    a.click();
    a.remove();
}

/** Fills <img data-mxc> elements (from sanitised formatted_body) with authenticated blob URLs. */
export function hydrateInlineImages(root: HTMLElement) {
    for (const img of Array.from(root.querySelectorAll<HTMLImageElement>("img[data-mxc]"))) {
        const mxc = img.dataset.mxc!;
        mediaUrl({ mxc, thumb: { width: 800, height: 600 } }).then(
            (url) => (img.src = url),
            () => img.replaceWith(document.createTextNode(img.alt || "[image]")),
        );
    }
}
