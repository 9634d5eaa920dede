// The room timeline: a virtualised list of rows (messages, state changes, notices) with replies,
// reactions, edits, deletions, read receipts and inline media.
import { MatrixEvent, type Room } from "./sdk";
import { getClient } from "./client";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { sanitizeHtml, stripReplyFallback } from "../lib/sanitize";
import { formatBytes, formatDateTime, formatTime } from "../lib/format";
import { Avatar, Dialog } from "../ui";
import { downloadMedia, hydrateInlineImages, useMediaUrl, type EncryptedFile } from "./media";
import type { Reaction, Row } from "./timelineModel";
import { VirtualList } from "./VirtualList";

export interface TimelineActions {
    react: (row: Row, key: string) => void;
    unreact: (reactionEventId: string) => void;
    reply: (row: Row) => void;
    edit: (row: Row) => void;
    remove: (row: Row) => void;
    canRemove: (row: Row) => boolean;
}

const QUICK_REACTIONS = ["👍", "❤️", "😄", "🎉", "😮", "😢"];
const URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

/** Plain text with web links made clickable; everything stays text nodes (no HTML parsing). */
export function Linkified({ text }: { text: string }) {
    const parts: (string | preact.JSX.Element)[] = [];
    let last = 0;
    for (const m of text.matchAll(URL_RE)) {
        if (m.index! > last) parts.push(text.slice(last, m.index));
        parts.push(
            <a href={m[0]} target="_blank" rel="noopener noreferrer nofollow">
                {m[0]}
            </a>,
        );
        last = m.index! + m[0].length;
    }
    if (last < text.length) parts.push(text.slice(last));
    return <>{parts}</>;
}

/** Sanitised formatted_body, appended as nodes (never as an HTML string). */
export function SafeHtml({ html, class: cls }: { html: string; class?: string }) {
    const ref = useRef<HTMLDivElement>(null);
    useLayoutEffect(() => {
        const el = ref.current;
        if (!el) return;
        el.replaceChildren(sanitizeHtml(html));
        hydrateInlineImages(el);
        for (const s of Array.from(el.querySelectorAll<HTMLElement>(".spoiler"))) {
            s.tabIndex = 0;
            s.setAttribute("role", "button");
            s.setAttribute("aria-label", "Spoiler, press to reveal");
            s.addEventListener("click", () => s.classList.add("revealed"));
            s.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && s.classList.add("revealed"));
        }
    }, [html]);
    return <div ref={ref} class={cls} />;
}

function ImageBody({ content }: { content: Record<string, unknown> }) {
    const info = (content.info ?? {}) as { w?: number; h?: number; mimetype?: string; size?: number; thumbnail_url?: string; thumbnail_file?: EncryptedFile };
    const file = content.file as EncryptedFile | undefined;
    const [open, setOpen] = useState(false);
    const thumbSource = file
        ? info.thumbnail_file
            ? { file: info.thumbnail_file, mimetype: "image/png" }
            : { file, mimetype: info.mimetype }
        : { mxc: content.url as string, thumb: { width: 640, height: 480 }, mimetype: info.mimetype };
    const { url, error } = useMediaUrl(typeof content.url === "string" || file ? thumbSource : null);
    const full = useMediaUrl(open ? (file ? { file, mimetype: info.mimetype } : { mxc: content.url as string, mimetype: info.mimetype }) : null);
    const alt = String(content.body ?? "image");
    const w = info.w && info.h ? Math.min(320, info.w) : 320;
    const h = info.w && info.h ? Math.round((w * info.h) / info.w) : 240;
    if (error) return <p class="muted">{error}</p>;
    return (
        <>
            <button type="button" class="image-button" aria-label={`Open image ${alt}`} onClick={() => setOpen(true)}>
                {url ? <img class="msg-image" src={url} alt={alt} width={w} height={h} /> : <span class="msg-image placeholder" aria-label="Loading image" />}
            </button>
            <Dialog open={open} onClose={() => setOpen(false)} title={alt} wide>
                {full.url ? <img class="full-image" src={full.url} alt={alt} /> : full.error ? <p class="error">{full.error}</p> : <p>Loading…</p>}
            </Dialog>
        </>
    );
}

function FileBody({ content }: { content: Record<string, unknown> }) {
    const info = (content.info ?? {}) as { mimetype?: string; size?: number };
    const file = content.file as EncryptedFile | undefined;
    const name = String(content.filename ?? content.body ?? "file");
    const [state, setState] = useState<{ busy?: boolean; error?: string }>({});
    const source = file ? { file, mimetype: info.mimetype } : { mxc: String(content.url ?? ""), mimetype: info.mimetype };
    return (
        <div class="file-card">
            <span class="file-icon" aria-hidden="true">📄</span>
            <div>
                <div class="file-name">{name}</div>
                {info.size ? <div class="muted small">{formatBytes(info.size)}</div> : null}
                {state.error && <div class="error small">{state.error}</div>}
            </div>
            <button
                type="button"
                class="btn btn-plain small"
                disabled={state.busy}
                aria-label={`Download ${name}`}
                onClick={async () => {
                    setState({ busy: true });
                    try {
                        await downloadMedia(source, name);
                        setState({});
                    } catch {
                        setState({ error: "The download failed. Try again." });
                    }
                }}
            >
                {state.busy ? "Downloading…" : "Download"}
            </button>
        </div>
    );
}

function MediaPlayer({ content, kind }: { content: Record<string, unknown>; kind: "video" | "audio" }) {
    const info = (content.info ?? {}) as { mimetype?: string };
    const file = content.file as EncryptedFile | undefined;
    const [play, setPlay] = useState(false);
    const { url, error } = useMediaUrl(play ? (file ? { file, mimetype: info.mimetype } : { mxc: String(content.url ?? ""), mimetype: info.mimetype }) : null);
    if (!play) {
        return (
            <button type="button" class="btn btn-plain" onClick={() => setPlay(true)}>
                ▶ Play {kind} “{String(content.body ?? "")}”
            </button>
        );
    }
    if (error) return <p class="error">{error}</p>;
    if (!url) return <p class="muted">Loading {kind}…</p>;
    return kind === "video" ? <video class="msg-video" src={url} controls /> : <audio src={url} controls />;
}

export function MessageBody({ content, emote, sender }: { content: Record<string, unknown>; emote?: boolean; sender?: string }) {
    const msgtype = String(content.msgtype ?? "");
    if (msgtype === "m.image" || (!msgtype && content.url && (content.info as { mimetype?: string })?.mimetype?.startsWith("image/"))) return <ImageBody content={content} />;
    if (msgtype === "m.file") return <FileBody content={content} />;
    if (msgtype === "m.video") return <MediaPlayer content={content} kind="video" />;
    if (msgtype === "m.audio") return <MediaPlayer content={content} kind="audio" />;
    const isHtml = content.format === "org.matrix.custom.html" && typeof content.formatted_body === "string";
    const body = stripReplyFallback(String(content.body ?? ""));
    return (
        <div class={`msg-body ${msgtype === "m.notice" ? "notice" : ""}`}>
            {emote && <span class="emote-sender">* {sender} </span>}
            {isHtml ? <SafeHtml html={content.formatted_body as string} class="html-body" /> : <span class="text-body"><Linkified text={body} /></span>}
        </div>
    );
}

function ReplyQuote({ room, eventId, name, rowFor }: { room: Room; eventId: string; name: (id: string) => string; rowFor: (id: string) => Row | undefined }) {
    const ev = room.findEventById(eventId);
    const row = rowFor(eventId);
    const [loaded, setLoaded] = useState<MatrixEvent | null>(null);
    const target = ev ?? loaded;
    useEffect(() => {
        if (ev) return;
        // Not in the loaded timeline: fetch it once (it may be far back).
        (async () => {
            try {
                const c = getClient();
                const mev = new MatrixEvent(await c.fetchRoomEvent(room.roomId, eventId));
                if (mev.isEncrypted()) await c.decryptEventIfNeeded(mev);
                setLoaded(mev);
            } catch {
                /* the quote says "a message" */
            }
        })();
    }, [eventId]);
    const body = row?.kind === "redacted" || target?.isRedacted() ? "Message deleted" : String(row?.content.body ?? target?.getContent().body ?? "");
    const text = target ? stripReplyFallback(body) : "a message";
    return (
        <blockquote class="reply-quote">
            <span class="reply-sender">{target ? name(target.getSender() ?? "") : "In reply to"}</span> <span class="reply-text">{text.slice(0, 200)}</span>
        </blockquote>
    );
}

function Reactions({ row, actions, me, name }: { row: Row; actions: TimelineActions; me: string; name: (id: string) => string }) {
    if (!row.reactions.length) return null;
    return (
        <div class="reactions" role="group" aria-label="Reactions">
            {row.reactions.map((r: Reaction) => (
                <button
                    type="button"
                    class={`reaction ${r.mine ? "mine" : ""}`}
                    aria-pressed={!!r.mine}
                    title={r.senders.map(name).join(", ")}
                    aria-label={`${r.key} ${r.count}: ${r.senders.map((s) => (s === me ? "you" : name(s))).join(", ")}`}
                    onClick={() => (r.mine ? actions.unreact(r.mine) : actions.react(row, r.key))}
                >
                    {r.key} <span class="count">{r.count}</span>
                </button>
            ))}
        </div>
    );
}

function MessageActions({ row, actions, me }: { row: Row; actions: TimelineActions; me: string }) {
    const [picker, setPicker] = useState(false);
    const mine = row.event.getSender() === me;
    const textual = ["m.text", "m.emote", "m.notice"].includes(String(row.content.msgtype));
    return (
        <div class="msg-actions" role="toolbar" aria-label="Message actions">
            <button type="button" class="btn btn-ghost small" aria-label="React" aria-expanded={picker} onClick={() => setPicker(!picker)}>
                ☺
            </button>
            <button type="button" class="btn btn-ghost small" onClick={() => actions.reply(row)}>
                Reply
            </button>
            {mine && textual && (
                <button type="button" class="btn btn-ghost small" onClick={() => actions.edit(row)}>
                    Edit
                </button>
            )}
            {actions.canRemove(row) && (
                <button type="button" class="btn btn-ghost small" onClick={() => actions.remove(row)}>
                    Delete
                </button>
            )}
            {picker && (
                <div class="emoji-picker" role="group" aria-label="Pick a reaction">
                    {QUICK_REACTIONS.map((k) => (
                        <button
                            type="button"
                            class="btn btn-ghost"
                            aria-label={`React with ${k}`}
                            onClick={() => {
                                setPicker(false);
                                const existing = row.reactions.find((r) => r.key === k && r.mine);
                                if (existing?.mine) actions.unreact(existing.mine);
                                else actions.react(row, k);
                            }}
                        >
                            {k}
                        </button>
                    ))}
                </div>
            )}
        </div>
    );
}

export function TimelineRow({ row, room, me, name, actions, rowFor }: { row: Row; room: Room; me: string; name: (id: string) => string; actions: TimelineActions; rowFor: (id: string) => Row | undefined }) {
    const ev = row.event;
    const sender = ev.getSender() ?? "";
    const ts = ev.getTs();
    if (row.kind === "state" || row.kind === "notice") {
        return (
            <div class={`row-state ${row.kind === "notice" ? "row-command" : ""}`}>
                <span>{row.text}</span> <time dateTime={new Date(ts).toISOString()} title={formatDateTime(ts)}>{formatTime(ts)}</time>
            </div>
        );
    }
    const pending = !!ev.status && ev.status !== "sent";
    const failed = ev.status === "not_sent";
    const ack = row.content["io.converge.device.ack"] as { ok?: boolean } | undefined;
    return (
        <article class={`msg ${row.continued ? "continued" : ""} ${pending ? "pending" : ""} ${ack ? (ack.ok === false ? "ack-fail" : "ack-ok") : ""}`} aria-label={`${name(sender)}, ${formatDateTime(ts)}`}>
            {!row.continued ? <Avatar name={name(sender)} id={sender} size={36} /> : <span class="avatar-gap" />}
            <div class="msg-main">
                {!row.continued && (
                    <header class="msg-head">
                        <span class="sender">{name(sender)}</span>{" "}
                        <time dateTime={new Date(ts).toISOString()} title={formatDateTime(ts)}>
                            {formatTime(ts)}
                        </time>
                    </header>
                )}
                {row.replyTo && <ReplyQuote room={room} eventId={row.replyTo} name={name} rowFor={rowFor} />}
                {row.kind === "redacted" ? (
                    <p class="muted italic">Message deleted</p>
                ) : row.kind === "undecryptable" ? (
                    <p class="muted italic">🔒 This message couldn't be decrypted on this device yet.</p>
                ) : (
                    <MessageBody content={row.content} emote={row.content.msgtype === "m.emote"} sender={name(sender)} />
                )}
                {row.edited && <span class="muted small"> (edited)</span>}
                {failed && <span class="error small"> Not sent.</span>}
                {pending && !failed && <span class="muted small"> Sending…</span>}
                <Reactions row={row} actions={actions} me={me} name={name} />
                {row.readBy.length > 0 && (
                    <div class="receipts" aria-label={`Seen by ${row.readBy.map(name).join(", ")}`} title={`Seen by ${row.readBy.map(name).join(", ")}`}>
                        {row.readBy.slice(0, 5).map((u) => (
                            <Avatar name={name(u)} id={u} size={16} />
                        ))}
                        {row.readBy.length > 5 && <span class="small muted">+{row.readBy.length - 5}</span>}
                    </div>
                )}
            </div>
            {row.kind === "message" && <MessageActions row={row} actions={actions} me={me} />}
        </article>
    );
}

export function Timeline({ rows, room, me, name, actions, onNearTop, loadingOlder, atStart, bottomSignal }: {
    rows: Row[];
    room: Room;
    me: string;
    name: (id: string) => string;
    actions: TimelineActions;
    onNearTop: () => void;
    loadingOlder: boolean;
    atStart: boolean;
    bottomSignal: unknown;
}) {
    type Item = Row | { key: "__top"; top: true };
    const byId = new Map(rows.map((r) => [r.key, r]));
    const rowFor = (id: string) => byId.get(id);
    const items: Item[] = [{ key: "__top", top: true }, ...rows];
    return (
        <VirtualList<Item>
            items={items}
            itemKey={(r) => r.key}
            label={`Messages in ${room.name}`}
            class="timeline"
            onNearTop={onNearTop}
            bottomSignal={bottomSignal}
            render={(item) =>
                "top" in item ? (
                    <div class="timeline-top">{atStart ? "This is the beginning of the room." : loadingOlder ? "Loading older messages…" : " "}</div>
                ) : (
                    <TimelineRow row={item} room={room} me={me} name={name} actions={actions} rowFor={rowFor} />
                )
            }
        />
    );
}
