// The signed-in app: starts matrix-js-sdk (and its Rust crypto), draws the navigation and the page
// for the current path. Devices, admin and analytics load as their own chunks (they bring uPlot).
import { ClientEvent, SyncState } from "./sdk";
import type { ComponentType } from "preact";
import { useEffect, useState } from "preact/hooks";
import { isServerAdmin } from "../lib/api";
import { describeError } from "../lib/errors";
import { match, usePath } from "../lib/router";
import type { Session } from "../lib/session";
import { Avatar, Button, ErrorText, Link, Loading } from "../ui";
import { cryptoProblem, getClient, startClient, stopClient, useEmitter, type StartPhase } from "./client";
import { HooksPage } from "./Hooks";
import { RoomList } from "./RoomList";
import { MembersPanel, RoomView } from "./RoomView";
import { SettingsPage } from "./Settings";

type Lazy = ComponentType<Record<string, unknown>>;
const lazyPages: Record<string, () => Promise<Lazy>> = {
    devices: () => import("./Devices").then((m) => m.DevicesPage as Lazy),
    admin: () => import("./Admin").then((m) => m.AdminPage as Lazy),
    analytics: () => import("./Analytics").then((m) => m.AnalyticsPage as Lazy),
};

function LazyPage({ name, props }: { name: keyof typeof lazyPages; props: Record<string, unknown> }) {
    const [Comp, setComp] = useState<Lazy | null>(null);
    const [error, setError] = useState<unknown>(null);
    useEffect(() => {
        lazyPages[name]().then((c) => setComp(() => c), setError);
    }, [name]);
    if (error) return <ErrorText error="This page could not be loaded. Check your connection and reload." />;
    if (!Comp) return <Loading />;
    return <Comp {...props} />;
}

export function AppShell({ session, onSignedOut }: { session: Session; onSignedOut: () => void }) {
    const [phase, setPhase] = useState<StartPhase | "error">("crypto");
    const [error, setError] = useState<unknown>(null);
    const [admin, setAdmin] = useState(false);
    useEffect(() => {
        startClient(session, setPhase, onSignedOut).catch((e) => {
            setError(e);
            setPhase("error");
        });
        isServerAdmin().then(setAdmin, () => setAdmin(false));
    }, []);
    if (phase === "error") {
        return (
            <main class="center-card">
                <ErrorText error={describeError(error)} />
                <Button onClick={() => location.reload()}>Try again</Button>
                <Button onClick={async () => { await stopClient(true); onSignedOut(); }}>Sign out</Button>
            </main>
        );
    }
    if (phase !== "ready") {
        return <Loading what={phase === "crypto" ? "Starting encryption" : "Syncing your rooms"} />;
    }
    return <Layout admin={admin} onSignedOut={onSignedOut} />;
}

function SyncBanner() {
    const client = getClient();
    useEmitter(client, [ClientEvent.Sync]);
    const state = client.getSyncState();
    if (state === SyncState.Error || state === SyncState.Reconnecting) {
        return (
            <div class="banner" role="status">
                Connection to the server lost. Reconnecting…
            </div>
        );
    }
    return null;
}

function Layout({ admin, onSignedOut }: { admin: boolean; onSignedOut: () => void }) {
    const path = usePath();
    const client = getClient();
    const me = client.getUserId()!;
    const [membersOpen, setMembersOpen] = useState(false);
    const roomMatch = match("/rooms/:roomId", path) ?? match("/rooms/:roomId/:tab", path);
    const roomId = roomMatch?.roomId ?? null;
    const tab = roomMatch?.tab ?? "chat";
    const section = path.startsWith("/admin") ? "admin" : path.startsWith("/analytics") ? "analytics" : path.startsWith("/settings") ? "settings" : "chat";
    const user = client.getUser(me);

    let page;
    if (section === "settings") page = <SettingsPage onSignedOut={onSignedOut} />;
    else if (section === "admin") page = <LazyPage name="admin" props={{ path }} />;
    else if (section === "analytics") page = <LazyPage name="analytics" props={{}} />;
    else if (roomId && tab === "devices") page = <LazyPage name="devices" props={{ roomId }} />;
    else if (roomId && tab === "hooks") page = <HooksPage roomId={roomId} />;
    else if (roomId) page = <RoomView roomId={roomId} membersOpen={membersOpen} onToggleMembers={() => setMembersOpen(!membersOpen)} />;
    else page = (
        <section class="room-empty welcome">
            <h1>Welcome{user?.displayName ? `, ${user.displayName}` : ""}</h1>
            <p>Pick a room on the left, or create one. Rooms can hold people, webhooks and devices.</p>
        </section>
    );

    return (
        <div class={`app ${roomId || section !== "chat" ? "has-page" : "no-page"}`}>
            <a class="skip-link" href="#main">
                Skip to content
            </a>
            <nav class="sidebar" aria-label="Main">
                <div class="sidebar-head">
                    <img src="/favicon.svg" alt="" width={28} height={28} />
                    <span class="brand-name">Converge</span>
                </div>
                <ul class="nav-links">
                    <li>
                        <Link href="/" class={`nav-link ${section === "chat" ? "active" : ""}`} aria-current={section === "chat" ? "page" : undefined}>
                            Chats
                        </Link>
                    </li>
                    {admin && (
                        <li>
                            <Link href="/analytics" class={`nav-link ${section === "analytics" ? "active" : ""}`} aria-current={section === "analytics" ? "page" : undefined}>
                                Analytics
                            </Link>
                        </li>
                    )}
                    {admin && (
                        <li>
                            <Link href="/admin/users" class={`nav-link ${section === "admin" ? "active" : ""}`} aria-current={section === "admin" ? "page" : undefined}>
                                Admin
                            </Link>
                        </li>
                    )}
                    <li>
                        <Link href="/settings" class={`nav-link ${section === "settings" ? "active" : ""}`} aria-current={section === "settings" ? "page" : undefined}>
                            Settings
                        </Link>
                    </li>
                </ul>
                <RoomList currentRoomId={roomId} />
                <div class="sidebar-foot">
                    <Avatar name={user?.displayName || me} id={me} size={28} />
                    <span class="small me-id" title={me}>
                        {user?.displayName || me}
                    </span>
                </div>
            </nav>
            <main id="main" class="main" tabIndex={-1}>
                <SyncBanner />
                {cryptoProblem && <div class="banner warn">{cryptoProblem}</div>}
                {section !== "chat" && (
                    <Link href="/" class="btn btn-ghost back-button page-back">
                        ← Menu
                    </Link>
                )}
                {page}
            </main>
            {roomId && tab === "chat" && membersOpen && <MembersPanel roomId={roomId} onClose={() => setMembersOpen(false)} />}
        </div>
    );
}
