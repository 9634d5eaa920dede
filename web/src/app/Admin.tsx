// Server administration: users, registration tokens, rooms, gateway health and metrics. Every call
// is checked by the server (403 for non-admins); the page says so in a sentence.
import { useEffect, useState } from "preact/hooks";
import * as api from "../lib/api";
import { formatDateTime, formatNumber, timeAgo } from "../lib/format";
import { ApiProblem, Button, CopyButton, Dialog, ErrorText, Field, Link, Loading, useAction, useLoad } from "../ui";
import { getClient } from "./client";

const FORBIDDEN = "Only server admins can see this page.";

export function AdminPage({ path }: { path: string }) {
    const tab = path.split("/")[2] || "users";
    const tabs = [
        ["users", "Users"],
        ["tokens", "Registration tokens"],
        ["rooms", "Rooms"],
        ["server", "Server"],
    ];
    return (
        <section class="page" aria-labelledby="admin-title">
            <h1 id="admin-title">Administration</h1>
            <nav class="tabs" aria-label="Administration sections">
                {tabs.map(([t, label]) => (
                    <Link key={t} href={`/admin/${t}`} class="tab" aria-current={tab === t ? "page" : undefined}>
                        {label}
                    </Link>
                ))}
            </nav>
            {tab === "users" && <Users />}
            {tab === "tokens" && <Tokens />}
            {tab === "rooms" && <Rooms />}
            {tab === "server" && <Server />}
        </section>
    );
}

function useDebounced<T>(value: T, ms = 250): T {
    const [v, setV] = useState(value);
    useEffect(() => {
        const t = setTimeout(() => setV(value), ms);
        return () => clearTimeout(t);
    }, [value]);
    return v;
}

function Users() {
    const me = getClient().getUserId();
    const [search, setSearch] = useState("");
    const q = useDebounced(search);
    const [pages, setPages] = useState<string[]>([]);
    const from = pages[pages.length - 1];
    const list = useLoad(() => api.listUsers(q, from), [q, from]);
    const [creating, setCreating] = useState(false);
    const [resetFor, setResetFor] = useState<string | null>(null);
    const act = useAction(async (fn: () => Promise<unknown>) => {
        await fn();
        list.reload();
    });
    return (
        <div class="card">
            <div class="page-tools">
                <input type="search" class="search" aria-label="Search users" placeholder="Search users" value={search} onInput={(e) => { setSearch(e.currentTarget.value); setPages([]); }} />
                <Button variant="primary" onClick={() => setCreating(true)}>
                    Create user
                </Button>
            </div>
            {list.loading && !list.data && <Loading what="Loading users" />}
            <ApiProblem error={list.error} feature="User management" forbidden={FORBIDDEN} />
            {list.data && (
                <div class="table-wrap">
                    <table class="table">
                        <caption class="sr-only">Users</caption>
                        <thead>
                            <tr>
                                <th scope="col">User</th>
                                <th scope="col">Role</th>
                                <th scope="col">Created</th>
                                <th scope="col">Last seen</th>
                                <th scope="col">
                                    <span class="sr-only">Actions</span>
                                </th>
                            </tr>
                        </thead>
                        <tbody>
                            {list.data.users.map((u) => (
                                <tr key={u.user_id} class={u.deactivated ? "dim" : ""}>
                                    <td>
                                        <div class="strong">{u.displayname || u.user_id}</div>
                                        <div class="small muted">{u.user_id}</div>
                                    </td>
                                    <td>{u.deactivated ? <span class="badge">Deactivated</span> : u.admin ? <span class="badge badge-accent">Admin</span> : "User"}</td>
                                    <td class="small">{formatDateTime(u.created_ts)}</td>
                                    <td class="small">{timeAgo(u.last_seen_ts)}</td>
                                    <td class="actions">
                                        {!u.deactivated && (
                                            <>
                                                <Button class="small" onClick={() => setResetFor(u.user_id)}>
                                                    Reset password
                                                </Button>
                                                {u.user_id !== me && (
                                                    <Button class="small" busyLabel="Saving" onClick={() => act.run(() => api.setAdmin(u.user_id, !u.admin))}>
                                                        {u.admin ? "Remove admin" : "Make admin"}
                                                    </Button>
                                                )}
                                                {u.user_id !== me && <Button
                                                    variant="danger"
                                                    class="small"
                                                    busyLabel="Deactivating"
                                                    onClick={() => confirm(`Deactivate ${u.user_id}? They are signed out everywhere and can't sign in again.`) && act.run(() => api.deactivateUser(u.user_id))}
                                                >
                                                    Deactivate
                                                </Button>}
                                            </>
                                        )}
                                    </td>
                                </tr>
                            ))}
                        </tbody>
                    </table>
                </div>
            )}
            {list.data && list.data.users.length === 0 && <p class="muted">No users match.</p>}
            <div class="row-buttons">
                {pages.length > 0 && <Button onClick={() => setPages(pages.slice(0, -1))}>Previous</Button>}
                {list.data?.next_from && <Button onClick={() => setPages([...pages, list.data!.next_from!])}>Next</Button>}
            </div>
            <ErrorText error={act.error} context={{ forbidden: FORBIDDEN }} />
            <Dialog open={creating} onClose={() => setCreating(false)} title="Create a user">
                <CreateUser
                    onDone={() => {
                        setCreating(false);
                        list.reload();
                    }}
                />
            </Dialog>
            <Dialog open={!!resetFor} onClose={() => setResetFor(null)} title={`Reset the password of ${resetFor}`}>
                {resetFor && <ResetPassword userId={resetFor} onDone={() => setResetFor(null)} />}
            </Dialog>
        </div>
    );
}

function CreateUser({ onDone }: { onDone: () => void }) {
    const [localpart, setLocalpart] = useState("");
    const [password, setPassword] = useState("");
    const [admin, setAdmin] = useState(false);
    const action = useAction(async () => {
        await api.createUser(localpart.trim().replace(/^@/, ""), password, admin);
        onDone();
    });
    return (
        <form
            onSubmit={(e) => {
                e.preventDefault();
                action.run();
            }}
        >
            <Field label="Username">
                <input required value={localpart} onInput={(e) => setLocalpart(e.currentTarget.value)} autoFocus autoComplete="off" />
            </Field>
            <Field label="Password">
                <input required type="password" minLength={8} value={password} onInput={(e) => setPassword(e.currentTarget.value)} autoComplete="new-password" />
            </Field>
            <label class="check">
                <input type="checkbox" checked={admin} onChange={(e) => setAdmin(e.currentTarget.checked)} /> Server admin
            </label>
            <ApiProblem error={action.error} feature="Creating users" forbidden={FORBIDDEN} />
            <Button type="submit" variant="primary" disabled={action.busy} busyLabel="Creating the user">
                Create user
            </Button>
        </form>
    );
}

function ResetPassword({ userId, onDone }: { userId: string; onDone: () => void }) {
    const [password, setPassword] = useState("");
    const [logout, setLogout] = useState(true);
    const action = useAction(async () => {
        await api.resetPassword(userId, password, logout);
        onDone();
    });
    return (
        <form
            onSubmit={(e) => {
                e.preventDefault();
                action.run();
            }}
        >
            <Field label="New password">
                <input required type="password" minLength={8} value={password} onInput={(e) => setPassword(e.currentTarget.value)} autoComplete="new-password" autoFocus />
            </Field>
            <label class="check">
                <input type="checkbox" checked={logout} onChange={(e) => setLogout(e.currentTarget.checked)} /> Sign them out of all their devices
            </label>
            <ApiProblem error={action.error} feature="Resetting passwords" forbidden={FORBIDDEN} />
            <Button type="submit" variant="primary" disabled={action.busy} busyLabel="Resetting">
                Reset password
            </Button>
        </form>
    );
}

const EXPIRY = [
    ["1d", "1 day"],
    ["7d", "7 days"],
    ["30d", "30 days"],
    ["", "Never"],
];

function Tokens() {
    const list = useLoad(() => api.listTokens(), []);
    const [uses, setUses] = useState("1");
    const [expiry, setExpiry] = useState("7d");
    const [created, setCreated] = useState<api.RegistrationToken[]>([]);
    const create = useAction(async () => {
        const n = uses.trim() ? Number(uses) : null;
        if (n !== null && (!Number.isInteger(n) || n < 1)) throw new Error("Uses must be a whole number of 1 or more, or empty for unlimited.");
        const t = await api.createToken(n, expiry || null);
        setCreated([t, ...created]);
        list.reload();
    });
    const revoke = useAction(async (token: string) => {
        await api.deleteToken(token);
        setCreated(created.filter((t) => t.token !== token));
        list.reload();
    });
    const missingList = !!list.error && (list.error as { status?: number }).status !== 403;
    const tokens = list.data ?? created;
    const inviteLink = (t: string) => `${location.origin}/register?token=${encodeURIComponent(t)}`;
    return (
        <div class="card">
            <h2>Registration tokens</h2>
            <p class="muted">A token lets someone create an account when registration needs one. Share the invite link.</p>
            <form
                class="inline-form"
                onSubmit={(e) => {
                    e.preventDefault();
                    create.run();
                }}
            >
                <Field label="Uses" hint="Empty for unlimited">
                    <input type="number" min={1} value={uses} onInput={(e) => setUses(e.currentTarget.value)} />
                </Field>
                <Field label="Expires after">
                    <select value={expiry} onChange={(e) => setExpiry(e.currentTarget.value)}>
                        {EXPIRY.map(([v, l]) => (
                            <option key={v} value={v}>
                                {l}
                            </option>
                        ))}
                    </select>
                </Field>
                <Button type="submit" variant="primary" disabled={create.busy} busyLabel="Creating the token">
                    Create token
                </Button>
            </form>
            <ErrorText error={create.error} context={{ forbidden: FORBIDDEN }} />
            {list.loading && !list.data && <Loading what="Loading tokens" />}
            {missingList && created.length === 0 && <ApiProblem error={list.error} feature="The list of tokens" forbidden={FORBIDDEN} />}
            {(list.error as { status?: number })?.status === 403 && <ErrorText error={FORBIDDEN} />}
            {tokens.length > 0 && (
                <div class="table-wrap">
                    <table class="table">
                        <caption class="sr-only">Registration tokens</caption>
                        <thead>
                            <tr>
                                <th scope="col">Token</th>
                                <th scope="col">Used</th>
                                <th scope="col">Expires</th>
                                <th scope="col">
                                    <span class="sr-only">Actions</span>
                                </th>
                            </tr>
                        </thead>
                        <tbody>
                            {tokens.map((t) => (
                                <tr key={t.token}>
                                    <td>
                                        <code class="mono" data-testid="token">
                                            {t.token}
                                        </code>
                                    </td>
                                    <td>
                                        {t.completed} of {t.uses_allowed ?? "unlimited"}
                                    </td>
                                    <td class="small">{t.expiry_time ? formatDateTime(t.expiry_time) : "never"}</td>
                                    <td class="actions">
                                        <CopyButton text={inviteLink(t.token)} label="Copy invite link" />
                                        <Button variant="danger" class="small" busyLabel="Revoking" onClick={() => revoke.run(t.token)}>
                                            Revoke
                                        </Button>
                                    </td>
                                </tr>
                            ))}
                        </tbody>
                    </table>
                </div>
            )}
            <ApiProblem error={revoke.error} feature="Revoking tokens" forbidden={FORBIDDEN} />
        </div>
    );
}

function Rooms() {
    const [search, setSearch] = useState("");
    const q = useDebounced(search);
    const [pages, setPages] = useState<string[]>([]);
    const from = pages[pages.length - 1];
    const list = useLoad(() => api.listRooms(q, from), [q, from]);
    const [result, setResult] = useState<string | null>(null);
    const shutdown = useAction(async (r: api.AdminRoom) => {
        if (!confirm(`Shut down ${r.name ?? r.room_id}? Everyone is removed and nobody can join again.`)) return;
        const out = await api.shutdownRoom(r.room_id);
        setResult(`${r.name ?? r.room_id} was shut down; ${out.kicked_users?.length ?? 0} members were removed.`);
        list.reload();
    });
    return (
        <div class="card">
            <input type="search" class="search" aria-label="Search rooms" placeholder="Search rooms by name, address or ID" value={search} onInput={(e) => { setSearch(e.currentTarget.value); setPages([]); }} />
            {list.loading && !list.data && <Loading what="Loading rooms" />}
            <ApiProblem error={list.error} feature="Room administration" forbidden={FORBIDDEN} />
            {result && <p role="status">{result}</p>}
            {list.data && (
                <div class="table-wrap">
                    <table class="table">
                        <caption class="sr-only">Rooms</caption>
                        <thead>
                            <tr>
                                <th scope="col">Room</th>
                                <th scope="col">Members</th>
                                <th scope="col">Events</th>
                                <th scope="col">Created</th>
                                <th scope="col">
                                    <span class="sr-only">Actions</span>
                                </th>
                            </tr>
                        </thead>
                        <tbody>
                            {list.data.rooms.map((r) => (
                                <tr key={r.room_id}>
                                    <td>
                                        <div class="strong">
                                            {r.name ?? r.canonical_alias ?? "Unnamed room"} {r.public && <span class="badge">Public</span>}
                                        </div>
                                        <div class="small muted mono">{r.canonical_alias ?? r.room_id}</div>
                                    </td>
                                    <td>{formatNumber(r.joined_members)}</td>
                                    <td>{formatNumber(r.events)}</td>
                                    <td class="small">{formatDateTime(r.created_ts)}</td>
                                    <td>
                                        <Button variant="danger" class="small" busyLabel="Shutting down" onClick={() => shutdown.run(r)}>
                                            Shut down
                                        </Button>
                                    </td>
                                </tr>
                            ))}
                        </tbody>
                    </table>
                </div>
            )}
            <div class="row-buttons">
                {pages.length > 0 && <Button onClick={() => setPages(pages.slice(0, -1))}>Previous</Button>}
                {list.data?.next_from && <Button onClick={() => setPages([...pages, list.data!.next_from!])}>Next</Button>}
            </div>
            <ApiProblem error={shutdown.error} feature="Shutting down rooms" forbidden={FORBIDDEN} />
        </div>
    );
}

/** Parses Prometheus text exposition into samples (name, labels, value); comments skipped. */
export function parsePrometheus(text: string): { name: string; labels: string; value: number }[] {
    const out: { name: string; labels: string; value: number }[] = [];
    for (const line of text.split("\n")) {
        if (!line || line.startsWith("#")) continue;
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|NaN|[-+]?Inf)(?:\s+\d+)?\s*$/.exec(line);
        if (m) out.push({ name: m[1], labels: m[2] ?? "", value: Number(m[3]) });
    }
    return out;
}

function Server() {
    const health = useLoad(() => api.getHealth(), []);
    const metrics = useLoad(() => api.getMetrics(), []);
    const [filter, setFilter] = useState("");
    useEffect(() => {
        const t = setInterval(() => health.reload(), 10_000);
        return () => clearInterval(t);
    }, []);
    const samples = metrics.data ? parsePrometheus(metrics.data) : [];
    const shown = samples.filter((s) => !filter || s.name.includes(filter) || s.labels.includes(filter)).slice(0, 400);
    return (
        <>
            <div class="card">
                <h2>Health</h2>
                {health.loading && !health.data && <Loading what="Checking the server" />}
                <ErrorText error={health.error} />
                {health.data && (
                    <>
                        <p>
                            Server {health.data.status === "ok" ? <span class="ok">is healthy</span> : <span class="error">reports a problem</span>}
                            {health.data.version && <> · version {health.data.version}</>}
                            {health.data.store && <> · store {health.data.store.backend} {health.data.store.ok ? "OK" : "failing"}</>}
                        </p>
                        <div class="gateway-grid">
                            {Object.entries(health.data.gateways ?? {}).map(([name, g]) => (
                                <div class="gateway" key={name}>
                                    <h3>
                                        <span class={`status-dot ${g.ok ? "online" : "offline"}`} aria-hidden="true" /> {name}{" "}
                                        <span class="small muted">{g.ok ? "OK" : "failing"}</span>
                                    </h3>
                                    <dl class="values">
                                        {g.connected !== undefined && (
                                            <div class="value">
                                                <dt>Broker</dt>
                                                <dd>{g.connected ? "connected" : "disconnected"}</dd>
                                            </div>
                                        )}
                                        <div class="value">
                                            <dt>In</dt>
                                            <dd>{formatNumber(g.messages_in ?? 0)}</dd>
                                        </div>
                                        <div class="value">
                                            <dt>Out</dt>
                                            <dd>{formatNumber(g.messages_out ?? 0)}</dd>
                                        </div>
                                        <div class="value">
                                            <dt>Errors</dt>
                                            <dd>{formatNumber(g.errors ?? 0)}</dd>
                                        </div>
                                        <div class="value">
                                            <dt>Dropped</dt>
                                            <dd>{formatNumber(g.dropped ?? 0)}</dd>
                                        </div>
                                    </dl>
                                </div>
                            ))}
                        </div>
                    </>
                )}
            </div>
            <div class="card">
                <h2>Metrics</h2>
                <ApiProblem error={metrics.error} feature="The metrics view" forbidden={FORBIDDEN} />
                {metrics.data && (
                    <>
                        <div class="page-tools">
                            <input type="search" class="search" aria-label="Filter metrics" placeholder="Filter metrics" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
                            <Button onClick={metrics.reload}>Refresh</Button>
                        </div>
                        <div class="table-wrap">
                            <table class="table small">
                                <caption class="sr-only">Prometheus metrics</caption>
                                <thead>
                                    <tr>
                                        <th scope="col">Metric</th>
                                        <th scope="col">Labels</th>
                                        <th scope="col">Value</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {shown.map((s, i) => (
                                        <tr key={i}>
                                            <td class="mono">{s.name}</td>
                                            <td class="mono break">{s.labels}</td>
                                            <td class="num">{Number.isInteger(s.value) ? formatNumber(s.value) : s.value.toPrecision(4)}</td>
                                        </tr>
                                    ))}
                                </tbody>
                            </table>
                        </div>
                    </>
                )}
            </div>
        </>
    );
}
