// The room list: invites first, then rooms by latest activity, with unread and highlight counts and
// search as you type. Plus the dialogs to create, join (by address or from the directory) and DM.
import { ClientEvent, EventType, NotificationCountType, Preset, RoomEvent, Visibility, type Room } from "./sdk";
import { useEffect, useState } from "preact/hooks";
import { navigate, roomPath } from "../lib/router";
import { plainText } from "../lib/sanitize";
import { Avatar, Button, Dialog, ErrorText, Field, Link, Loading, useAction } from "../ui";
import { getClient, useEmitter } from "./client";

export function RoomList({ currentRoomId }: { currentRoomId: string | null }) {
    const client = getClient();
    useEmitter(client, [ClientEvent.Room, ClientEvent.DeleteRoom, RoomEvent.Timeline, RoomEvent.Name, RoomEvent.UnreadNotifications, RoomEvent.Receipt, RoomEvent.MyMembership]);
    const [query, setQuery] = useState("");
    const [dialog, setDialog] = useState<"create" | "join" | "dm" | null>(null);
    const q = query.trim().toLowerCase();
    const rooms = client
        .getRooms()
        .filter((r) => r.getMyMembership() === "join" || r.getMyMembership() === "invite")
        .filter((r) => !q || r.name.toLowerCase().includes(q) || r.roomId.toLowerCase().includes(q) || (r.getCanonicalAlias() ?? "").toLowerCase().includes(q))
        .sort((a, b) => {
            const ia = a.getMyMembership() === "invite" ? 1 : 0;
            const ib = b.getMyMembership() === "invite" ? 1 : 0;
            return ib - ia || b.getLastActiveTimestamp() - a.getLastActiveTimestamp();
        });
    return (
        <div class="room-list">
            <div class="room-list-tools">
                <input
                    type="search"
                    class="search"
                    placeholder="Search rooms"
                    aria-label="Search rooms"
                    value={query}
                    onInput={(e) => setQuery(e.currentTarget.value)}
                    onKeyDown={(e) => {
                        if (e.key === "Enter" && rooms[0]) navigate(roomPath(rooms[0].roomId));
                    }}
                />
                <div class="room-list-buttons">
                    <button type="button" class="btn btn-plain small" onClick={() => setDialog("create")}>
                        New room
                    </button>
                    <button type="button" class="btn btn-plain small" onClick={() => setDialog("dm")}>
                        Message someone
                    </button>
                    <button type="button" class="btn btn-plain small" onClick={() => setDialog("join")}>
                        Join
                    </button>
                </div>
            </div>
            {rooms.length === 0 && <p class="muted pad">{q ? "No rooms match." : "No rooms yet. Create one or join one."}</p>}
            <ul class="rooms" aria-label="Rooms">
                {rooms.map((r) => (
                    <RoomItem key={r.roomId} room={r} current={r.roomId === currentRoomId} />
                ))}
            </ul>
            <Dialog open={dialog === "create"} onClose={() => setDialog(null)} title="New room">
                <CreateRoomForm onDone={() => setDialog(null)} />
            </Dialog>
            <Dialog open={dialog === "dm"} onClose={() => setDialog(null)} title="Message someone">
                <DirectMessageForm onDone={() => setDialog(null)} />
            </Dialog>
            <Dialog open={dialog === "join"} onClose={() => setDialog(null)} title="Join a room" wide>
                <JoinRoomForm onDone={() => setDialog(null)} />
            </Dialog>
        </div>
    );
}

function RoomItem({ room, current }: { room: Room; current: boolean }) {
    const total = room.getUnreadNotificationCount(NotificationCountType.Total);
    const highlight = room.getUnreadNotificationCount(NotificationCountType.Highlight);
    const invite = room.getMyMembership() === "invite";
    const lastEv = [...room.getLiveTimeline().getEvents()].reverse().find((e) => e.getType() === "m.room.message" && !e.isRedacted());
    const preview = lastEv ? plainText(lastEv.getContent()) : "";
    const counts = `${total ? `, ${total} unread` : ""}${highlight ? `, ${highlight} mentioning you` : ""}`;
    return (
        <li>
            <Link href={roomPath(room.roomId)} class={`room-item ${current ? "current" : ""} ${total ? "unread" : ""}`} aria-current={current ? "page" : undefined}>
                <Avatar name={room.name} id={room.roomId} size={32} />
                <span class="room-item-text">
                    <span class="room-item-name">{room.name}</span>
                    <span class="room-item-preview">{invite ? "Invitation" : preview.slice(0, 80)}</span>
                </span>
                {highlight > 0 ? (
                    <span class="badge badge-highlight" aria-hidden="true">
                        {highlight}
                    </span>
                ) : total > 0 ? (
                    <span class="badge badge-unread" aria-hidden="true">
                        {total}
                    </span>
                ) : null}
                {counts && <span class="sr-only">{counts}</span>}
            </Link>
        </li>
    );
}

async function e2eeSupported(): Promise<boolean> {
    const client = getClient();
    if (!client.getCrypto()) return false;
    try {
        await client.http.authedRequest("POST" as never, "/keys/query", undefined, { device_keys: { [client.getUserId()!]: [] } });
        return true;
    } catch {
        return false;
    }
}

function CreateRoomForm({ onDone }: { onDone: () => void }) {
    const client = getClient();
    const [name, setName] = useState("");
    const [topic, setTopic] = useState("");
    const [alias, setAlias] = useState("");
    const [isPublic, setPublic] = useState(false);
    const [encrypted, setEncrypted] = useState(false);
    const [canEncrypt, setCanEncrypt] = useState(false);
    useEffect(() => {
        e2eeSupported().then(setCanEncrypt);
    }, []);
    const action = useAction(async () => {
        const { room_id } = await client.createRoom({
            name: name.trim(),
            topic: topic.trim() || undefined,
            room_alias_name: alias.trim().replace(/^#/, "").replace(/:.*$/, "") || undefined,
            preset: isPublic ? Preset.PublicChat : Preset.PrivateChat,
            visibility: isPublic ? Visibility.Public : Visibility.Private,
            initial_state: encrypted && !isPublic ? [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }] : [],
        });
        onDone();
        navigate(roomPath(room_id));
    });
    return (
        <form
            onSubmit={(e) => {
                e.preventDefault();
                action.run();
            }}
        >
            <Field label="Name">
                <input required value={name} onInput={(e) => setName(e.currentTarget.value)} autoFocus />
            </Field>
            <Field label="Topic (optional)">
                <input value={topic} onInput={(e) => setTopic(e.currentTarget.value)} />
            </Field>
            <Field label="Address (optional)" hint="People can join with #address:server">
                <input value={alias} onInput={(e) => setAlias(e.currentTarget.value)} placeholder="ops" />
            </Field>
            <label class="check">
                <input type="checkbox" checked={isPublic} onChange={(e) => setPublic(e.currentTarget.checked)} /> Public: anyone can find and join it
            </label>
            <label class="check">
                <input type="checkbox" checked={encrypted} disabled={isPublic || !canEncrypt} onChange={(e) => setEncrypted(e.currentTarget.checked)} /> End-to-end encrypted
                {!canEncrypt && <span class="muted small"> (this server or browser doesn't support encryption yet)</span>}
            </label>
            <ErrorText error={action.error} />
            <Button type="submit" variant="primary" disabled={action.busy} busyLabel="Creating the room">
                {action.busy ? "Creating…" : "Create room"}
            </Button>
        </form>
    );
}

function DirectMessageForm({ onDone }: { onDone: () => void }) {
    const client = getClient();
    const [userId, setUserId] = useState("");
    const [encrypted, setEncrypted] = useState(false);
    const [canEncrypt, setCanEncrypt] = useState(false);
    const [results, setResults] = useState<{ user_id: string; display_name?: string }[]>([]);
    useEffect(() => {
        e2eeSupported().then((ok) => {
            setCanEncrypt(ok);
            setEncrypted(ok);
        });
    }, []);
    useEffect(() => {
        const term = userId.trim();
        if (term.length < 2) return setResults([]);
        const t = setTimeout(() => {
            client.searchUserDirectory({ term, limit: 8 }).then((r) => setResults(r.results), () => setResults([]));
        }, 250);
        return () => clearTimeout(t);
    }, [userId]);
    const action = useAction(async () => {
        const target = userId.trim();
        if (!/^@[^:]+:.+$/.test(target)) throw new Error("Enter a full user ID, like @name:server.");
        const { room_id } = await client.createRoom({
            is_direct: true,
            invite: [target],
            preset: Preset.TrustedPrivateChat,
            initial_state: encrypted ? [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }] : [],
        });
        const direct = (client.getAccountData(EventType.Direct)?.getContent() ?? {}) as Record<string, string[]>;
        direct[target] = [...(direct[target] ?? []), room_id];
        await client.setAccountData(EventType.Direct, direct as never).catch(() => {});
        onDone();
        navigate(roomPath(room_id));
    });
    return (
        <form
            onSubmit={(e) => {
                e.preventDefault();
                action.run();
            }}
        >
            <Field label="User ID">
                <input required value={userId} placeholder="@name:server" onInput={(e) => setUserId(e.currentTarget.value)} autoFocus list="dm-suggestions" />
            </Field>
            <datalist id="dm-suggestions">
                {results.map((r) => (
                    <option key={r.user_id} value={r.user_id}>
                        {r.display_name ?? r.user_id}
                    </option>
                ))}
            </datalist>
            <label class="check">
                <input type="checkbox" checked={encrypted} disabled={!canEncrypt} onChange={(e) => setEncrypted(e.currentTarget.checked)} /> End-to-end encrypted
                {!canEncrypt && <span class="muted small"> (not available on this server yet)</span>}
            </label>
            <ErrorText error={action.error} />
            <Button type="submit" variant="primary" disabled={action.busy} busyLabel="Starting the conversation">
                Start conversation
            </Button>
        </form>
    );
}

interface PublicRoom {
    room_id: string;
    name?: string;
    topic?: string;
    canonical_alias?: string;
    num_joined_members: number;
}

function JoinRoomForm({ onDone }: { onDone: () => void }) {
    const client = getClient();
    const [address, setAddress] = useState("");
    const [search, setSearch] = useState("");
    const [rooms, setRooms] = useState<PublicRoom[] | null>(null);
    const [dirError, setDirError] = useState<unknown>(null);
    useEffect(() => {
        const t = setTimeout(() => {
            client
                .publicRooms({ limit: 30, filter: search.trim() ? { generic_search_term: search.trim() } : undefined })
                .then((r) => setRooms(r.chunk as PublicRoom[]), (e) => setDirError(e));
        }, 250);
        return () => clearTimeout(t);
    }, [search]);
    const join = useAction(async (idOrAlias: string) => {
        const target = idOrAlias.trim();
        if (!/^[#!][^:]+:.+$/.test(target)) throw new Error("Enter a room address like #name:server or a room ID like !id:server.");
        const room = await client.joinRoom(target);
        onDone();
        navigate(roomPath(room.roomId));
    });
    return (
        <div>
            <form
                onSubmit={(e) => {
                    e.preventDefault();
                    join.run(address);
                }}
            >
                <Field label="Room address or ID">
                    <input value={address} placeholder="#room:server" onInput={(e) => setAddress(e.currentTarget.value)} autoFocus />
                </Field>
                <Button type="submit" variant="primary" disabled={join.busy || !address.trim()} busyLabel="Joining">
                    Join
                </Button>
            </form>
            <ErrorText error={join.error} context={{ notFound: "No room has that address.", forbidden: "You can't join that room: it needs an invitation." }} />
            <h3>Public rooms</h3>
            <input type="search" class="search" aria-label="Search public rooms" placeholder="Search public rooms" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
            <ErrorText error={dirError} />
            {!rooms && !dirError && <Loading what="Loading the directory" />}
            {rooms && rooms.length === 0 && <p class="muted">No public rooms found.</p>}
            <ul class="directory">
                {rooms?.map((r) => (
                    <li key={r.room_id} class="directory-item">
                        <div>
                            <div class="strong">{r.name ?? r.canonical_alias ?? r.room_id}</div>
                            {r.topic && <div class="small muted">{r.topic}</div>}
                            <div class="small muted">
                                {r.canonical_alias ?? r.room_id} · {r.num_joined_members} members
                            </div>
                        </div>
                        <Button onClick={() => join.run(r.canonical_alias ?? r.room_id)} busyLabel="Joining">
                            {client.getRoom(r.room_id)?.getMyMembership() === "join" ? "Open" : "Join"}
                        </Button>
                    </li>
                ))}
            </ul>
        </div>
    );
}
