// The header above a room's Devices and Hooks pages: the room's name and its tabs.
import { RoomEvent } from "./sdk";
import { roomPath } from "../lib/router";
import { Avatar, Link } from "../ui";
import { getClient, useEmitter } from "./client";

export function RoomSubHeader({ roomId, tab }: { roomId: string; tab: "chat" | "devices" | "hooks" }) {
    const room = getClient().getRoom(roomId);
    useEmitter(room, [RoomEvent.Name]);
    const name = room?.name ?? roomId;
    const tabs: [typeof tab, string, string][] = [
        ["chat", "Chat", roomPath(roomId)],
        ["devices", "Devices", roomPath(roomId, "devices")],
        ["hooks", "Hooks", roomPath(roomId, "hooks")],
    ];
    return (
        <header class="room-head">
            <Link href="/" class="btn btn-ghost back-button" aria-label="Back to rooms">
                ←
            </Link>
            <Avatar name={name} id={roomId} size={32} />
            <div class="room-title">
                <h1>
                    {name} <span class="muted">· {tab === "devices" ? "Devices" : tab === "hooks" ? "Webhooks" : "Chat"}</span>
                </h1>
            </div>
            <nav class="room-tabs" aria-label="Room views">
                {tabs.map(([t, label, href]) => (
                    <Link key={t} href={href} class="tab" aria-current={t === tab ? "page" : undefined}>
                        {label}
                    </Link>
                ))}
            </nav>
        </header>
    );
}
