// A room's webhooks: incoming hooks (create, reveal URL and secret once, revoke, a curl example) and
// outgoing subscriptions (create with filters, delivery status, retry now, remove).
import { useState } from "preact/hooks";
import * as api from "../lib/api";
import { formatDateTime, timeAgo } from "../lib/format";
import { ApiProblem, Button, CopyButton, Dialog, ErrorText, Field, Loading, useAction, useLoad } from "../ui";
import { RoomSubHeader } from "./RoomSubHeader";

export function curlExample(url: string, signed: boolean): string {
    const body = `{"text":"**build 42** passed"}`;
    if (!signed) return `curl -X POST '${url}' \\\n  -H 'content-type: application/json' \\\n  -d '${body}'`;
    return [
        `BODY='${body}'; T=$(date +%s)`,
        `SIG=$(printf '%s.%s' "$T" "$BODY" | openssl dgst -sha256 -hmac "$SECRET" | awk '{print $NF}')`,
        `curl -X POST '${url}' \\`,
        `  -H 'content-type: application/json' -H "X-Converge-Signature: t=$T,v1=$SIG" \\`,
        `  -d "$BODY"`,
    ].join("\n");
}

export function HooksPage({ roomId }: { roomId: string }) {
    return (
        <section class="page" aria-label="Webhooks">
            <RoomSubHeader roomId={roomId} tab="hooks" />
            <IncomingHooks roomId={roomId} />
            <Subscriptions roomId={roomId} />
        </section>
    );
}

function IncomingHooks({ roomId }: { roomId: string }) {
    const hooks = useLoad(() => api.listWebhooks(roomId), [roomId]);
    const [name, setName] = useState("");
    const [signed, setSigned] = useState(false);
    const [created, setCreated] = useState<api.NewWebhook | null>(null);
    const create = useAction(async () => {
        const hook = await api.createWebhook(roomId, name.trim(), signed);
        setCreated(hook);
        setName("");
        hooks.reload();
    });
    const revoke = useAction(async (id: string) => {
        if (!confirm("Revoke this webhook? Anything still posting to it will be refused.")) return;
        await api.deleteWebhook(id);
        hooks.reload();
    });
    return (
        <div class="card">
            <h2>Incoming webhooks</h2>
            <p class="muted">Other systems post messages into this room with a URL. Slack- and Discord-style JSON, plain text and Markdown work.</p>
            <form
                class="inline-form"
                onSubmit={(e) => {
                    e.preventDefault();
                    create.run();
                }}
            >
                <Field label="Name">
                    <input value={name} placeholder="CI" onInput={(e) => setName(e.currentTarget.value)} />
                </Field>
                <label class="check">
                    <input type="checkbox" checked={signed} onChange={(e) => setSigned(e.currentTarget.checked)} /> Require signed requests (HMAC)
                </label>
                <Button type="submit" variant="primary" disabled={create.busy} busyLabel="Creating the webhook">
                    Create webhook
                </Button>
            </form>
            <ApiProblem error={create.error} feature="Webhooks" forbidden="Only room admins can manage this room's webhooks." />
            {hooks.loading && !hooks.data && <Loading what="Loading webhooks" />}
            <ApiProblem error={hooks.error} feature="Webhooks" forbidden="Only room admins can see this room's webhooks." />
            {hooks.data && hooks.data.length === 0 && <p class="muted">No webhooks yet.</p>}
            {hooks.data && hooks.data.length > 0 && (
                <table class="table">
                    <caption class="sr-only">Incoming webhooks</caption>
                    <thead>
                        <tr>
                            <th scope="col">Webhook</th>
                            <th scope="col">Signed</th>
                            <th scope="col">Created</th>
                            <th scope="col">
                                <span class="sr-only">Actions</span>
                            </th>
                        </tr>
                    </thead>
                    <tbody>
                        {hooks.data.map((h) => (
                            <tr key={h.hook_id}>
                                <td>
                                    <div class="strong">{h.name ?? h.user_id}</div>
                                    <div class="small muted mono">{h.hook_id}</div>
                                </td>
                                <td>{h.signed ? "Yes" : "No"}</td>
                                <td>{formatDateTime(h.created_ts)}</td>
                                <td>
                                    <Button variant="danger" class="small" onClick={() => revoke.run(h.hook_id)} aria-label={`Revoke webhook ${h.hook_id}`} busyLabel="Revoking">
                                        Revoke
                                    </Button>
                                </td>
                            </tr>
                        ))}
                    </tbody>
                </table>
            )}
            <ErrorText error={revoke.error} />
            <Dialog open={!!created} onClose={() => setCreated(null)} title="Your new webhook" wide>
                {created && (
                    <div class="reveal">
                        <p>
                            <strong>Copy these now.</strong> The secret is shown only this once.
                        </p>
                        <Field label="URL">
                            <div class="copy-row">
                                <input readOnly value={created.url} class="mono" data-testid="hook-url" />
                                <CopyButton text={created.url} />
                            </div>
                        </Field>
                        <Field label="Secret">
                            <div class="copy-row">
                                <input readOnly value={created.secret} class="mono" data-testid="hook-secret" />
                                <CopyButton text={created.secret} />
                            </div>
                        </Field>
                        <p>Try it:</p>
                        <pre class="code-block">
                            <code>{curlExample(created.url, created.signed)}</code>
                        </pre>
                        <CopyButton text={curlExample(created.url, created.signed)} label="Copy the example" />
                    </div>
                )}
            </Dialog>
        </div>
    );
}

function Subscriptions({ roomId }: { roomId: string }) {
    const subs = useLoad(() => api.listSubscriptions(roomId), [roomId]);
    const [url, setUrl] = useState("");
    const [types, setTypes] = useState("m.room.message");
    const [filterKind, setFilterKind] = useState<"none" | "prefix" | "regex">("none");
    const [filter, setFilter] = useState("");
    const [secret, setSecret] = useState<string | null>(null);
    const create = useAction(async () => {
        const body: { url: string; event_types: string[]; prefix?: string; regex?: string } = {
            url: url.trim(),
            event_types: types.split(",").map((t) => t.trim()).filter(Boolean),
        };
        if (filterKind === "prefix" && filter) body.prefix = filter;
        if (filterKind === "regex" && filter) body.regex = filter;
        const sub = await api.createSubscription(roomId, body);
        setSecret(sub.secret);
        setUrl("");
        setFilter("");
        subs.reload();
    });
    const remove = useAction(async (id: string) => {
        if (!confirm("Stop sending this room's events to this URL?")) return;
        await api.deleteSubscription(id);
        subs.reload();
    });
    const retry = useAction(async (id: string) => {
        await api.retrySubscription(id);
        subs.reload();
    });
    return (
        <div class="card">
            <h2>Outgoing webhooks</h2>
            <p class="muted">This room's events are POSTed to a URL, signed with a secret, retried with backoff when the receiver fails.</p>
            <form
                class="stack-form"
                onSubmit={(e) => {
                    e.preventDefault();
                    create.run();
                }}
            >
                <Field label="Receiver URL">
                    <input type="url" required value={url} placeholder="https://ci.example.org/converge" onInput={(e) => setUrl(e.currentTarget.value)} />
                </Field>
                <Field label="Event types" hint="Comma-separated; empty means all.">
                    <input value={types} onInput={(e) => setTypes(e.currentTarget.value)} />
                </Field>
                <fieldset class="radio-group">
                    <legend>Only messages that</legend>
                    <label class="check">
                        <input type="radio" name="fk" checked={filterKind === "none"} onChange={() => setFilterKind("none")} /> any message
                    </label>
                    <label class="check">
                        <input type="radio" name="fk" checked={filterKind === "prefix"} onChange={() => setFilterKind("prefix")} /> start with
                    </label>
                    <label class="check">
                        <input type="radio" name="fk" checked={filterKind === "regex"} onChange={() => setFilterKind("regex")} /> match a regular expression
                    </label>
                </fieldset>
                {filterKind !== "none" && (
                    <Field label={filterKind === "prefix" ? "Prefix" : "Regular expression"}>
                        <input value={filter} placeholder={filterKind === "prefix" ? "!deploy" : "^!(deploy|rollback)"} onInput={(e) => setFilter(e.currentTarget.value)} />
                    </Field>
                )}
                <Button type="submit" variant="primary" disabled={create.busy} busyLabel="Creating the subscription">
                    Add outgoing webhook
                </Button>
            </form>
            <ApiProblem error={create.error} feature="Outgoing webhooks" forbidden="Only room admins can manage this room's webhooks." />
            {subs.loading && !subs.data && <Loading what="Loading subscriptions" />}
            <ApiProblem error={subs.error} feature="Outgoing webhooks" forbidden="Only room admins can see this room's webhooks." />
            {subs.data && subs.data.length === 0 && <p class="muted">No outgoing webhooks yet.</p>}
            {subs.data && subs.data.length > 0 && (
                <div class="table-wrap">
                    <table class="table">
                        <caption class="sr-only">Outgoing webhooks</caption>
                        <thead>
                            <tr>
                                <th scope="col">Receiver</th>
                                <th scope="col">Filter</th>
                                <th scope="col">Last success</th>
                                <th scope="col">Failures</th>
                                <th scope="col">Queued</th>
                                <th scope="col">
                                    <span class="sr-only">Actions</span>
                                </th>
                            </tr>
                        </thead>
                        <tbody>
                            {subs.data.map((s) => (
                                <tr key={s.subscription_id}>
                                    <td>
                                        <div class="mono small break">{s.url}</div>
                                        {s.last_error && <div class="small error">Last error: {s.last_error}</div>}
                                    </td>
                                    <td class="small">
                                        {s.event_types.length ? s.event_types.join(", ") : "all events"}
                                        {s.pattern && <div class="mono">{s.pattern}</div>}
                                    </td>
                                    <td class="small">{s.last_success_ts === undefined ? "—" : timeAgo(s.last_success_ts)}</td>
                                    <td>
                                        <span class={s.failures ? "badge badge-highlight" : "badge"}>{s.failures}</span>
                                    </td>
                                    <td>{s.queued}</td>
                                    <td class="actions">
                                        <Button class="small" onClick={() => retry.run(s.subscription_id)} busyLabel="Retrying" disabled={!s.queued && !s.failures}>
                                            Retry now
                                        </Button>
                                        <Button variant="danger" class="small" onClick={() => remove.run(s.subscription_id)} busyLabel="Removing">
                                            Remove
                                        </Button>
                                    </td>
                                </tr>
                            ))}
                        </tbody>
                    </table>
                </div>
            )}
            <ApiProblem error={retry.error} feature="Retrying deliveries" />
            <ErrorText error={remove.error} />
            <Dialog open={!!secret} onClose={() => setSecret(null)} title="Signing secret">
                <p>Requests to your receiver carry an <code>X-Converge-Signature</code> header made with this secret. It is shown only once.</p>
                <div class="copy-row">
                    <input readOnly value={secret ?? ""} class="mono" aria-label="Signing secret" />
                    <CopyButton text={secret ?? ""} />
                </div>
            </Dialog>
        </div>
    );
}
