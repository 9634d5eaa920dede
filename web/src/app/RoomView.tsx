// One room: header, timeline, typing line, uploads and the composer; members in a side panel.
import { ClientEvent, Direction, MatrixEventEvent, RoomEvent, RoomMemberEvent, RoomStateEvent, type Room } from "./sdk";
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { uploadMedia } from "../lib/api";
import { describeError } from "../lib/errors";
import { formatBytes } from "../lib/format";
import { navigate, roomPath } from "../lib/router";
import { Avatar, Button, Dialog, ErrorText, Field, Link, Progress, useAction } from "../ui";
import { getClient, useEmitter } from "./client";
import { encryptAttachment } from "./media";
import { Timeline, type TimelineActions } from "./Timeline";
import { buildRows, type Row } from "./timelineModel";

export function displayName(room: Room | null, userId: string): string {
    const m = room?.getMember(userId);
    return m?.name || m?.rawDisplayName || userId;
}

export function powerLabel(level: number): string {
    if (level >= 100) return "Admin";
    if (level >= 50) return "Moderator";
    if (level > 0) return `Level ${level}`;
    return "";
}

interface Upload {
    id: number;
    name: string;
    size: number;
    loaded: number;
    error?: string;
    abort: AbortController;
}

let uploadSeq = 0;

const MARKDOWN_HINT = /[*_`~#>[\]|\\<&]|^\s*([-+]|\d+\.)\s|https?:/m;

export function RoomView({ roomId, onToggleMembers, membersOpen }: { roomId: string; onToggleMembers: () => void; membersOpen: boolean }) {
    const client = getClient();
    const me = client.getUserId()!;
    const room = client.getRoom(roomId);
    useEmitter(client, [ClientEvent.Room, RoomMemberEvent.Typing, MatrixEventEvent.Decrypted, RoomMemberEvent.Membership]);
    useEmitter(room, [RoomEvent.Timeline, RoomEvent.LocalEchoUpdated, RoomEvent.Redaction, RoomEvent.Receipt, RoomEvent.Name, RoomEvent.TimelineReset, RoomEvent.MyMembership]);
    useEmitter(room?.currentState, [RoomStateEvent.Members, RoomStateEvent.Events]);

    const [loadingOlder, setLoadingOlder] = useState(false);
    const [replyTo, setReplyTo] = useState<Row | null>(null);
    const [editing, setEditing] = useState<Row | null>(null);
    const [uploads, setUploads] = useState<Upload[]>([]);
    const [dragging, setDragging] = useState(false);
    const [bottomSignal, setBottomSignal] = useState(0);
    const [confirmLeave, setConfirmLeave] = useState(false);
    const [actionError, setActionError] = useState<unknown>(null);

    useEffect(() => {
        setReplyTo(null);
        setEditing(null);
        setActionError(null);
    }, [roomId]);

    const name = useCallback((id: string) => displayName(room, id), [room]);
    const events = room?.getLiveTimeline().getEvents() ?? [];
    const rows = room ? buildRows(room, events, me, name) : [];
    const atStart = !!room && room.getLiveTimeline().getPaginationToken(Direction.Backward) === null;

    // Read receipt for the newest event, while the page is visible.
    const last = [...events].reverse().find((e) => e.getId() && !e.getId()!.startsWith("~") && e.status === null);
    useEffect(() => {
        if (!room || !last || document.visibilityState !== "visible") return;
        if (room.getEventReadUpTo(me) === last.getId() || last.getSender() === me) return;
        client.sendReadReceipt(last).catch((e) => console.warn("receipt", e));
    }, [last?.getId()]);

    const loadOlder = useCallback(async () => {
        if (!room || loadingOlder || atStart) return;
        setLoadingOlder(true);
        try {
            await client.scrollback(room, 80);
        } catch (e) {
            console.warn("pagination", e);
        } finally {
            setLoadingOlder(false);
        }
    }, [room, loadingOlder, atStart]);

    // Fill the first screen if the initial sync gave only a few events.
    useEffect(() => {
        if (room && rows.length < 20 && !atStart && !loadingOlder) loadOlder();
    }, [roomId, rows.length < 20]);

    const send = async (content: Record<string, unknown>) => {
        setActionError(null);
        try {
            await client.sendMessage(roomId, content as never);
        } catch (e) {
            setActionError(e);
        }
    };

    const actions: TimelineActions = {
        react: (row, key) => {
            client.sendEvent(roomId, "m.reaction" as never, { "m.relates_to": { rel_type: "m.annotation", event_id: row.key, key } } as never).catch(setActionError);
        },
        unreact: (id) => {
            client.redactEvent(roomId, id).catch(setActionError);
        },
        reply: (row) => {
            setEditing(null);
            setReplyTo(row);
            document.getElementById("composer-input")?.focus();
        },
        edit: (row) => {
            setReplyTo(null);
            setEditing(row);
            document.getElementById("composer-input")?.focus();
        },
        remove: (row) => {
            if (!confirm("Delete this message for everyone?")) return;
            client.redactEvent(roomId, row.key).catch(setActionError);
        },
        canRemove: (row) => !!room && (row.event.getSender() === me || room.currentState.maySendRedactionForEvent(row.event, me)),
    };

    const startUploads = (files: File[]) => {
        for (const file of files) {
            const up: Upload = { id: ++uploadSeq, name: file.name, size: file.size, loaded: 0, abort: new AbortController() };
            setUploads((u) => [...u, up]);
            const update = (patch: Partial<Upload>) => setUploads((list) => list.map((x) => (x.id === up.id ? { ...x, ...patch } : x)));
            uploadAndSend(roomId, file, (loaded) => update({ loaded }), up.abort.signal).then(
                () => setUploads((list) => list.filter((x) => x.id !== up.id)),
                (e) => {
                    if ((e as Error).name === "AbortError") setUploads((list) => list.filter((x) => x.id !== up.id));
                    else update({ error: describeError(e) });
                },
            );
        }
    };

    if (!room) {
        return (
            <section class="room-empty">
                <p>This room isn't in your list. You may have left it, or it may still be loading.</p>
                <JoinByIdButton roomId={roomId} />
            </section>
        );
    }
    const membership = room.getMyMembership();
    if (membership === "invite") return <InviteCard room={room} />;

    const typing = room.getMembers().filter((m) => m.typing && m.userId !== me);
    const encrypted = room.hasEncryptionStateEvent();
    return (
        <section
            class={`room ${dragging ? "dragging" : ""}`}
            aria-label={room.name}
            onDragOver={(e) => {
                if (e.dataTransfer?.types.includes("Files")) {
                    e.preventDefault();
                    setDragging(true);
                }
            }}
            onDragLeave={(e) => {
                if (e.currentTarget === e.target) setDragging(false);
            }}
            onDrop={(e) => {
                e.preventDefault();
                setDragging(false);
                const files = Array.from(e.dataTransfer?.files ?? []);
                if (files.length) startUploads(files);
            }}
        >
            <header class="room-head">
                <Link href="/" class="btn btn-ghost back-button" aria-label="Back to rooms">
                    ←
                </Link>
                <Avatar name={room.name} id={room.roomId} size={32} />
                <div class="room-title">
                    <h1>
                        {room.name} {encrypted && <span title="End-to-end encrypted" aria-label="Encrypted">🔒</span>}
                    </h1>
                    {room.currentState.getStateEvents("m.room.topic", "")?.getContent().topic && (
                        <p class="topic">{String(room.currentState.getStateEvents("m.room.topic", "")!.getContent().topic)}</p>
                    )}
                </div>
                <nav class="room-tabs" aria-label="Room views">
                    <Link href={roomPath(roomId)} class="tab" aria-current="page">
                        Chat
                    </Link>
                    <Link href={roomPath(roomId, "devices")} class="tab">
                        Devices
                    </Link>
                    <Link href={roomPath(roomId, "hooks")} class="tab">
                        Hooks
                    </Link>
                </nav>
                <button type="button" class="btn btn-plain" aria-pressed={membersOpen} onClick={onToggleMembers}>
                    Members <span class="count">{room.getJoinedMemberCount()}</span>
                </button>
                <button type="button" class="btn btn-ghost leave-button" onClick={() => setConfirmLeave(true)}>
                    Leave
                </button>
            </header>
            <Timeline rows={rows} room={room} me={me} name={name} actions={actions} onNearTop={loadOlder} loadingOlder={loadingOlder} atStart={atStart} bottomSignal={`${roomId}:${bottomSignal}`} />
            {dragging && <div class="drop-overlay" aria-hidden="true">Drop files to upload</div>}
            <div class="typing" aria-live="polite">
                {typing.length > 0 && `${typing.map((m) => m.name).join(", ")} ${typing.length === 1 ? "is" : "are"} typing…`}
            </div>
            {uploads.length > 0 && (
                <ul class="uploads" aria-label="Uploads">
                    {uploads.map((u) => (
                        <li key={u.id} class="upload">
                            <span class="upload-name">{u.name}</span>
                            {u.error ? (
                                <span class="error small">{u.error}</span>
                            ) : (
                                <>
                                    <Progress value={u.loaded} max={u.size} label={`Uploading ${u.name}`} />
                                    <span class="small muted">
                                        {formatBytes(u.loaded)} of {formatBytes(u.size)}
                                    </span>
                                </>
                            )}
                            <button type="button" class="btn btn-ghost small" onClick={() => (u.error ? setUploads((l) => l.filter((x) => x.id !== u.id)) : u.abort.abort())}>
                                {u.error ? "Dismiss" : "Cancel"}
                            </button>
                        </li>
                    ))}
                </ul>
            )}
            <ErrorText error={actionError} />
            <Composer
                room={room}
                replyTo={replyTo}
                editing={editing}
                name={name}
                onCancel={() => {
                    setReplyTo(null);
                    setEditing(null);
                }}
                onSend={async (content) => {
                    setReplyTo(null);
                    setEditing(null);
                    setBottomSignal((n) => n + 1);
                    await send(content);
                }}
                onFiles={startUploads}
                onEditLast={() => {
                    const mine = [...rows].reverse().find((r) => r.kind === "message" && r.event.getSender() === me && r.content.msgtype === "m.text");
                    if (mine) setEditing(mine);
                }}
            />
            <Dialog open={confirmLeave} onClose={() => setConfirmLeave(false)} title={`Leave ${room.name}?`}>
                <LeaveForm room={room} onDone={() => setConfirmLeave(false)} />
            </Dialog>
        </section>
    );
}

function LeaveForm({ room, onDone }: { room: Room; onDone: () => void }) {
    const action = useAction(async () => {
        await getClient().leave(room.roomId);
        onDone();
        navigate("/");
    });
    return (
        <div>
            <p>You will stop receiving messages from this room. You can come back if you are invited again or the room is public.</p>
            <ErrorText error={action.error} />
            <div class="row-buttons">
                <Button onClick={onDone}>Stay</Button>
                <Button variant="danger" onClick={action.run} busyLabel="Leaving">
                    Leave
                </Button>
            </div>
        </div>
    );
}

function JoinByIdButton({ roomId }: { roomId: string }) {
    const action = useAction(async () => {
        await getClient().joinRoom(roomId);
    });
    return (
        <>
            <Button variant="primary" onClick={action.run} busyLabel="Joining">
                Join this room
            </Button>
            <ErrorText error={action.error} context={{ forbidden: "You can't join this room: it needs an invitation." }} />
        </>
    );
}

function InviteCard({ room }: { room: Room }) {
    const client = getClient();
    const inviter = room.getMember(client.getUserId()!)?.events.member?.getSender();
    const accept = useAction(async () => void (await client.joinRoom(room.roomId)));
    const decline = useAction(async () => {
        await client.leave(room.roomId);
        navigate("/");
    });
    return (
        <section class="room-empty">
            <h1>{room.name}</h1>
            <p>{inviter ? `${displayName(room, inviter)} invited you to this room.` : "You were invited to this room."}</p>
            <div class="row-buttons">
                <Button variant="primary" onClick={accept.run} busyLabel="Joining">
                    Accept
                </Button>
                <Button onClick={decline.run} busyLabel="Declining">
                    Decline
                </Button>
            </div>
            <ErrorText error={accept.error || decline.error} />
        </section>
    );
}

async function imageSize(file: File): Promise<{ w: number; h: number } | null> {
    try {
        const bmp = await createImageBitmap(file);
        const size = { w: bmp.width, h: bmp.height };
        bmp.close();
        return size;
    } catch {
        return null;
    }
}

export async function uploadAndSend(roomId: string, file: File, onProgress: (loaded: number) => void, signal: AbortSignal) {
    const client = getClient();
    const encrypted = (await client.getCrypto()?.isEncryptionEnabledInRoom(roomId)) ?? false;
    const mimetype = file.type || "application/octet-stream";
    const kind = mimetype.startsWith("image/") ? "m.image" : mimetype.startsWith("video/") ? "m.video" : mimetype.startsWith("audio/") ? "m.audio" : "m.file";
    const info: Record<string, unknown> = { mimetype, size: file.size };
    if (kind === "m.image") Object.assign(info, await imageSize(file));
    let body: Blob = file;
    let encInfo: Awaited<ReturnType<typeof encryptAttachment>>["info"] | null = null;
    if (encrypted) {
        const enc = await encryptAttachment(await file.arrayBuffer());
        body = new Blob([enc.data], { type: "application/octet-stream" });
        encInfo = enc.info;
    }
    const mxc = await uploadMedia(body, file.name, (loaded) => onProgress(loaded), signal);
    const content: Record<string, unknown> = { msgtype: kind, body: file.name, filename: file.name, info };
    if (encInfo) content.file = { ...encInfo, url: mxc, mimetype };
    else content.url = mxc;
    if (signal.aborted) return;
    await client.sendMessage(roomId, content as never);
}

function Composer({ room, replyTo, editing, name, onCancel, onSend, onFiles, onEditLast }: {
    room: Room;
    replyTo: Row | null;
    editing: Row | null;
    name: (id: string) => string;
    onCancel: () => void;
    onSend: (content: Record<string, unknown>) => Promise<void>;
    onFiles: (files: File[]) => void;
    onEditLast: () => void;
}) {
    const client = getClient();
    const [text, setText] = useState("");
    const fileInput = useRef<HTMLInputElement>(null);
    const typingSent = useRef(0);
    const drafts = useRef(new Map<string, string>());

    useEffect(() => {
        setText(drafts.current.get(room.roomId) ?? "");
        return () => {
            client.sendTyping(room.roomId, false, 0).catch(() => {});
        };
    }, [room.roomId]);
    // A layout effect, so the message being edited is in the composer before the next paint and
    // nothing typed after clicking "Edit" is overwritten by it.
    useLayoutEffect(() => {
        if (editing) setText(String(editing.content.body ?? ""));
    }, [editing]);

    const setDraft = (v: string) => {
        setText(v);
        drafts.current.set(room.roomId, v);
        const now = Date.now();
        if (v && now - typingSent.current > 3000) {
            typingSent.current = now;
            client.sendTyping(room.roomId, true, 5000).catch(() => {});
        } else if (!v && typingSent.current) {
            typingSent.current = 0;
            client.sendTyping(room.roomId, false, 0).catch(() => {});
        }
    };

    const submit = async () => {
        const raw = text.trim();
        if (!raw) return;
        let msgtype = "m.text";
        let body = raw;
        if (raw.startsWith("/me ")) {
            msgtype = "m.emote";
            body = raw.slice(4);
        }
        // The Markdown renderer loads only when the text could be Markdown.
        const html = MARKDOWN_HINT.test(body) ? (await import("../lib/markdown")).renderMarkdown(body) : null;
        const inner: Record<string, unknown> = { msgtype, body };
        if (html) Object.assign(inner, { format: "org.matrix.custom.html", formatted_body: html });
        let content: Record<string, unknown> = inner;
        if (editing) {
            content = { ...inner, body: `* ${body}`, "m.new_content": inner, "m.relates_to": { rel_type: "m.replace", event_id: editing.key } };
            if (html) content.formatted_body = `* ${html}`;
        } else if (replyTo) {
            content = { ...inner, "m.relates_to": { "m.in_reply_to": { event_id: replyTo.key } } };
        }
        setText("");
        drafts.current.delete(room.roomId);
        typingSent.current = 0;
        client.sendTyping(room.roomId, false, 0).catch(() => {});
        await onSend(content);
    };

    return (
        <form
            class="composer"
            onSubmit={(e) => {
                e.preventDefault();
                submit();
            }}
        >
            {(replyTo || editing) && (
                <div class="composer-context">
                    <span>
                        {editing ? "Editing your message" : `Replying to ${name(replyTo!.event.getSender() ?? "")}: ${String(replyTo!.content.body ?? "").slice(0, 80)}`}
                    </span>
                    <button type="button" class="btn btn-ghost small" onClick={() => { onCancel(); if (editing) setText(""); }}>
                        Cancel
                    </button>
                </div>
            )}
            <div class="composer-row">
                <button type="button" class="btn btn-ghost icon" aria-label="Attach files" onClick={() => fileInput.current?.click()}>
                    <svg width="20" height="20" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">
                        <path d="M21 11.5l-8.6 8.6a5.5 5.5 0 01-7.8-7.8l8.6-8.6a3.7 3.7 0 015.2 5.2l-8.6 8.6a1.8 1.8 0 01-2.6-2.6l7.9-7.9" />
                    </svg>
                </button>
                <input
                    ref={fileInput}
                    type="file"
                    multiple
                    hidden
                    aria-label="Choose files to upload"
                    onChange={(e) => {
                        const files = Array.from(e.currentTarget.files ?? []);
                        e.currentTarget.value = "";
                        if (files.length) onFiles(files);
                    }}
                />
                <textarea
                    id="composer-input"
                    class="composer-input"
                    rows={1}
                    aria-label={`Message ${room.name}`}
                    placeholder={`Message ${room.name}`}
                    value={text}
                    onInput={(e) => setDraft(e.currentTarget.value)}
                    onPaste={(e) => {
                        const files = Array.from(e.clipboardData?.files ?? []);
                        if (files.length) {
                            e.preventDefault();
                            onFiles(files);
                        }
                    }}
                    onKeyDown={(e) => {
                        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
                            e.preventDefault();
                            submit();
                        } else if (e.key === "Escape") {
                            onCancel();
                        } else if (e.key === "ArrowUp" && !text) {
                            onEditLast();
                        }
                    }}
                />
                <button type="submit" class="btn btn-primary" disabled={!text.trim()}>
                    Send
                </button>
            </div>
        </form>
    );
}

export function MembersPanel({ roomId, onClose }: { roomId: string; onClose: () => void }) {
    const client = getClient();
    const room = client.getRoom(roomId);
    useEmitter(room?.currentState, [RoomStateEvent.Members, RoomStateEvent.Events, RoomStateEvent.NewMember]);
    const [invitee, setInvitee] = useState("");
    const [filter, setFilter] = useState("");
    const invite = useAction(async () => {
        const id = invitee.trim();
        if (!/^@[^:]+:.+$/.test(id)) throw new Error("Enter a full user ID, like @name:server.");
        await client.invite(roomId, id);
        setInvitee("");
    });
    useEffect(() => {
        room?.loadMembersIfNeeded().catch(() => {});
    }, [roomId]);
    if (!room) return null;
    const members = room
        .getMembers()
        .filter((m) => m.membership === "join" || m.membership === "invite")
        .filter((m) => !filter || m.name.toLowerCase().includes(filter.toLowerCase()) || m.userId.includes(filter))
        .sort((a, b) => b.powerLevel - a.powerLevel || a.name.localeCompare(b.name));
    return (
        <aside class="members-panel" aria-label="Members">
            <header class="panel-head">
                <h2>Members</h2>
                <button type="button" class="btn btn-ghost icon" aria-label="Close members" onClick={onClose}>
                    ✕
                </button>
            </header>
            <form
                class="invite-form"
                onSubmit={(e) => {
                    e.preventDefault();
                    invite.run();
                }}
            >
                <Field label="Invite someone">
                    <input value={invitee} placeholder="@name:server" onInput={(e) => setInvitee(e.currentTarget.value)} />
                </Field>
                <Button type="submit" disabled={invite.busy || !invitee.trim()} busyLabel="Inviting">
                    Invite
                </Button>
                <ErrorText error={invite.error} context={{ forbidden: "You don't have permission to invite people here." }} />
            </form>
            <input class="search" type="search" aria-label="Filter members" placeholder="Filter members" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
            <ul class="member-list">
                {members.map((m) => (
                    <li key={m.userId} class="member">
                        <Avatar name={m.name} id={m.userId} size={28} />
                        <div class="member-names">
                            <span class="member-name">{m.name}</span>
                            <span class="member-id small muted">{m.userId}</span>
                        </div>
                        {m.membership === "invite" ? <span class="badge">Invited</span> : powerLabel(m.powerLevel) && <span class="badge">{powerLabel(m.powerLevel)}</span>}
                    </li>
                ))}
            </ul>
        </aside>
    );
}
