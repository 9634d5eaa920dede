// Turns a room's timeline events into the rows the timeline shows: messages with their latest edit,
// reactions and reply targets folded in; edits and reactions themselves are not rows.
import type { MatrixEvent, Room } from "./sdk";

export interface Reaction {
    key: string;
    count: number;
    senders: string[];
    /** The event ID of my own reaction with this key, to undo it. */
    mine?: string;
}

export interface Row {
    key: string;
    kind: "message" | "state" | "notice" | "undecryptable" | "redacted";
    event: MatrixEvent;
    /** The content to show (the latest edit's m.new_content for edited messages). */
    content: Record<string, unknown>;
    edited: boolean;
    reactions: Reaction[];
    replyTo?: string;
    /** Same sender as the row above, within five minutes: the name is not repeated. */
    continued: boolean;
    /** Users whose read receipt is at this event (not the sender, not me). */
    readBy: string[];
    text?: string;
}

const HIDDEN_STATE = new Set(["m.room.power_levels", "m.room.join_rules", "m.room.history_visibility", "m.room.guest_access", "io.converge.device", "m.room.encryption"]);

export function relation(ev: MatrixEvent): { rel_type?: string; event_id?: string; key?: string; "m.in_reply_to"?: { event_id?: string } } | undefined {
    const c = ev.getWireContent?.() ?? ev.getContent();
    const r = (ev.getContent()["m.relates_to"] ?? c["m.relates_to"]) as Record<string, unknown> | undefined;
    return r as never;
}

export function describeState(ev: MatrixEvent, name: (id: string) => string): string | null {
    const type = ev.getType();
    const c = ev.getContent();
    const who = name(ev.getSender() ?? "");
    switch (type) {
        case "m.room.create":
            return `${who} created the room`;
        case "m.room.name":
            return c.name ? `${who} named the room "${c.name}"` : `${who} removed the room name`;
        case "m.room.topic":
            return c.topic ? `${who} set the topic to "${c.topic}"` : `${who} removed the topic`;
        case "m.room.avatar":
            return `${who} changed the room picture`;
        case "m.room.canonical_alias":
            return c.alias ? `${who} set the room address to ${c.alias}` : null;
        case "m.room.encryption":
            return `${who} turned on end-to-end encryption`;
        case "m.room.member": {
            const target = ev.getStateKey() ?? "";
            const targetName = (c.displayname as string) || target;
            const prev = ev.getPrevContent().membership;
            switch (c.membership) {
                case "join":
                    if (prev === "join") return c.displayname !== ev.getPrevContent().displayname ? `${ev.getPrevContent().displayname ?? target} is now ${targetName}` : null;
                    return `${targetName} joined`;
                case "invite":
                    return `${who} invited ${targetName}`;
                case "leave":
                    if (target === ev.getSender()) return `${name(target)} left`;
                    return prev === "invite" ? `${who} withdrew ${name(target)}'s invitation` : `${who} removed ${name(target)}`;
                case "ban":
                    return `${who} banned ${name(target)}`;
                case "knock":
                    return `${name(target)} asked to join`;
            }
            return null;
        }
        case "io.converge.device.command": {
            const args = c.args && Object.keys(c.args as object).length ? ` ${JSON.stringify(c.args)}` : "";
            return `${who} sent command "${String(c.command)}"${args} to device ${String(c.device_id)}`;
        }
    }
    return null;
}

export function buildRows(room: Room, events: MatrixEvent[], me: string, name: (id: string) => string): Row[] {
    const edits = new Map<string, MatrixEvent>();
    const reactions = new Map<string, Map<string, Reaction>>();
    for (const ev of events) {
        if (ev.isRedacted()) continue;
        const rel = relation(ev);
        if (!rel?.event_id) continue;
        if (rel.rel_type === "m.replace" && ev.getType() === "m.room.message") {
            const prev = edits.get(rel.event_id);
            if (!prev || prev.getTs() <= ev.getTs()) edits.set(rel.event_id, ev);
        } else if (rel.rel_type === "m.annotation" && ev.getType() === "m.reaction" && typeof rel.key === "string") {
            let byKey = reactions.get(rel.event_id);
            if (!byKey) reactions.set(rel.event_id, (byKey = new Map()));
            let r = byKey.get(rel.key);
            if (!r) byKey.set(rel.key, (r = { key: rel.key, count: 0, senders: [] }));
            const sender = ev.getSender() ?? "";
            if (r.senders.includes(sender)) continue;
            r.senders.push(sender);
            r.count++;
            if (sender === me) r.mine = ev.getId();
        }
    }

    // Read receipts: the newest event each user has read (my own and senders' are not shown).
    const readAt = new Map<string, string[]>();
    for (const m of room.getJoinedMembers()) {
        if (m.userId === me) continue;
        const id = room.getEventReadUpTo(m.userId, true);
        if (!id) continue;
        const list = readAt.get(id) ?? [];
        list.push(m.userId);
        readAt.set(id, list);
    }

    const rows: Row[] = [];
    let prev: Row | null = null;
    for (const ev of events) {
        const type = ev.getType();
        const id = ev.getId() ?? ev.getTxnId() ?? `${ev.getTs()}`;
        const rel = relation(ev);
        let row: Row | null = null;
        const base = { key: id, event: ev, edited: false, reactions: [] as Reaction[], continued: false, readBy: [] as string[] };
        if (ev.isRedacted()) {
            if (type === "m.reaction" || rel?.rel_type === "m.replace") continue;
            if (type === "m.room.message" || type === "m.room.encrypted" || type === "m.sticker") row = { ...base, kind: "redacted", content: {} };
        } else if (type === "m.room.message" || type === "m.sticker") {
            if (rel?.rel_type === "m.replace") continue;
            const edit = edits.get(id);
            const editContent = edit && edit.getSender() === ev.getSender() ? (edit.getContent()["m.new_content"] as Record<string, unknown> | undefined) : undefined;
            row = {
                ...base,
                kind: "message",
                content: editContent ?? ev.getContent(),
                edited: !!editContent,
                replyTo: rel?.["m.in_reply_to"]?.event_id,
            };
        } else if (type === "m.room.encrypted") {
            row = { ...base, kind: "undecryptable", content: {} };
        } else if (type === "m.reaction") {
            continue;
        } else if (ev.isState() && HIDDEN_STATE.has(type) && type !== "m.room.encryption") {
            continue;
        } else {
            const text = describeState(ev, name);
            if (!text) continue;
            row = { ...base, kind: type === "io.converge.device.command" ? "notice" : "state", content: ev.getContent(), text };
        }
        if (!row) continue;
        const r = reactions.get(id);
        if (r) row.reactions = [...r.values()];
        row.readBy = readAt.get(id) ?? [];
        row.continued =
            !!prev &&
            prev.kind === "message" &&
            row.kind === "message" &&
            prev.event.getSender() === ev.getSender() &&
            ev.getTs() - prev.event.getTs() < 5 * 60_000 &&
            !row.replyTo;
        rows.push(row);
        prev = row;
    }
    return rows;
}
