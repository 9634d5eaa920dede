// A room's devices: a card per device (online state, last seen, latest values), a live chart per
// numeric metric from the telemetry API (1 h / 24 h / 7 d), commands with JSON arguments for members
// with power, and alert rules. Live updates come from the io.converge.device state event in /sync:
// each update fetches only the samples newer than the last one held.
import { RoomEvent, RoomStateEvent, type MatrixEvent } from "./sdk";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import * as api from "../lib/api";
import { downsampleMinMax } from "../lib/downsample";
import { formatDateTime, timeAgo } from "../lib/format";
import { plainText } from "../lib/sanitize";
import { ApiProblem, Button, Dialog, ErrorText, Field, Loading, useAction, useLoad } from "../ui";
import { Chart, PALETTE, type uPlot } from "./Chart";
import { getClient, useEmitter } from "./client";
import { RoomSubHeader } from "./RoomSubHeader";

export const DEVICE_EVENT = "io.converge.device";
export const COMMAND_EVENT = "io.converge.device.command";

interface DeviceState {
    values?: Record<string, unknown>;
    last_seen?: number;
    online?: boolean;
}

const RANGES = [
    { key: "1h", label: "1 hour", ms: 3600_000 },
    { key: "24h", label: "24 hours", ms: 86_400_000 },
    { key: "7d", label: "7 days", ms: 7 * 86_400_000 },
] as const;
type RangeKey = (typeof RANGES)[number]["key"];

/** Flattens nested values into dotted keys (alerts use the same paths). */
export function flattenValues(values: Record<string, unknown>, prefix = "", out: Record<string, unknown> = {}): Record<string, unknown> {
    for (const [k, v] of Object.entries(values ?? {})) {
        const key = prefix ? `${prefix}.${k}` : k;
        if (v && typeof v === "object" && !Array.isArray(v)) flattenValues(v as Record<string, unknown>, key, out);
        else out[key] = v;
    }
    return out;
}

/** A value for people: long fractions rounded (the chart keeps full precision). */
export function formatValue(v: unknown): string {
    if (v && typeof v === "object") return JSON.stringify(v);
    const n = typeof v === "number" ? v : typeof v === "string" && /^-?\d+\.\d{4,}$/.test(v) ? Number(v) : null;
    if (n !== null && Number.isFinite(n) && !Number.isInteger(n)) return String(Number(n.toFixed(3)));
    return String(v);
}

/** A number from a telemetry value (the state event holds non-integers as strings). */
export function numeric(v: unknown): number | null {
    if (typeof v === "number" && Number.isFinite(v)) return v;
    if (typeof v === "boolean") return v ? 1 : 0;
    if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
    return null;
}

export function DevicesPage({ roomId }: { roomId: string }) {
    const client = getClient();
    const room = client.getRoom(roomId);
    useEmitter(room?.currentState, [RoomStateEvent.Events], (ev: MatrixEvent) => ev.getType() === DEVICE_EVENT);
    useEmitter(room, [RoomEvent.Timeline]);
    const rows = useLoad(() => api.listDevices(roomId), [roomId]);
    const [adding, setAdding] = useState(false);
    const states = room?.currentState.getStateEvents(DEVICE_EVENT) ?? [];
    const byId = new Map<string, DeviceState>();
    for (const ev of states) if (ev.getStateKey() && Object.keys(ev.getContent()).length) byId.set(ev.getStateKey()!, ev.getContent() as DeviceState);
    for (const d of rows.data ?? []) if (!byId.has(d.device_id)) byId.set(d.device_id, {});
    const ids = [...byId.keys()].sort();
    const me = client.getUserId()!;
    const canCommand = !!room?.currentState.maySendEvent(COMMAND_EVENT, me);
    const canManage = !!room?.currentState.maySendStateEvent(DEVICE_EVENT, me);

    return (
        <section class="page" aria-label="Devices">
            <RoomSubHeader roomId={roomId} tab="devices" />
            <div class="page-tools">
                <p class="muted">
                    {ids.length ? `${ids.length} device${ids.length === 1 ? "" : "s"} in this room.` : "No devices in this room yet."} Devices publish telemetry over MQTT; their state arrives live.
                </p>
                {canManage && (
                    <Button variant="primary" onClick={() => setAdding(true)}>
                        Add device
                    </Button>
                )}
            </div>
            {ids.length > 0 && canCommand && room && <BotNotice roomId={roomId} />}
            {rows.error && !(rows.error as { status?: number }).status?.toString().startsWith("4") ? <ApiProblem error={rows.error} feature="Device management" /> : null}
            {!room && <Loading />}
            <div class="device-grid">
                {ids.map((id) => (
                    <DeviceCard
                        key={id}
                        roomId={roomId}
                        deviceId={id}
                        state={byId.get(id)!}
                        row={rows.data?.find((d) => d.device_id === id)}
                        canCommand={canCommand}
                        canManage={canManage && !!rows.data}
                        onChanged={rows.reload}
                    />
                ))}
            </div>
            <Dialog open={adding} onClose={() => setAdding(false)} title="Add a device">
                <AddDevice
                    roomId={roomId}
                    onDone={() => {
                        rows.reload();
                    }}
                />
            </Dialog>
        </section>
    );
}

/** Commands reach devices through the gateway bot, which must be in the room to see them. */
function BotNotice({ roomId }: { roomId: string }) {
    const client = getClient();
    const room = client.getRoom(roomId)!;
    useEmitter(room.currentState, [RoomStateEvent.Members]);
    const bot = `@converge:${client.getDomain()}`;
    const membership = room.getMember(bot)?.membership;
    const invite = useAction(async () => {
        await client.invite(roomId, bot);
    });
    if (membership === "join") return null;
    return (
        <div class="notice" role="status">
            <p>
                Commands reach devices through the Converge bot ({bot}), which isn't in this room{membership === "invite" ? " yet: it has been invited" : ""}.
            </p>
            {membership !== "invite" && (
                <Button onClick={invite.run} busyLabel="Inviting the bot">
                    Invite the bot
                </Button>
            )}
            <ErrorText error={invite.error} />
        </div>
    );
}

function AddDevice({ roomId, onDone }: { roomId: string; onDone: () => void }) {
    const [id, setId] = useState("");
    const [result, setResult] = useState<{ device_id: string; mqtt_username?: string; mqtt_password?: string } | null>(null);
    const action = useAction(async () => {
        setResult(await api.createDevice(roomId, id.trim()));
        onDone();
    });
    if (result) {
        return (
            <div>
                <p>
                    Device <strong>{result.device_id}</strong> was added. It publishes to <code>converge/devices/{result.device_id}/telemetry</code>.
                </p>
                {result.mqtt_password && (
                    <>
                        <p>
                            <strong>Copy its MQTT password now</strong>; it is shown only once.
                        </p>
                        <pre class="code-block">
                            username: {result.mqtt_username}
                            {"\n"}password: {result.mqtt_password}
                        </pre>
                    </>
                )}
            </div>
        );
    }
    return (
        <form
            onSubmit={(e) => {
                e.preventDefault();
                action.run();
            }}
        >
            <Field label="Device ID" hint="Letters, digits, - and _; it names the MQTT topics.">
                <input required value={id} pattern="[A-Za-z0-9_\-]+" onInput={(e) => setId(e.currentTarget.value)} autoFocus />
            </Field>
            <ApiProblem error={action.error} feature="Adding devices" forbidden="Only room admins can add devices." />
            <Button type="submit" variant="primary" disabled={action.busy} busyLabel="Adding the device">
                Add device
            </Button>
        </form>
    );
}

function DeviceCard({ roomId, deviceId, state, row, canCommand, canManage, onChanged }: {
    roomId: string;
    deviceId: string;
    state: DeviceState;
    row?: api.DeviceRow;
    canCommand: boolean;
    canManage: boolean;
    onChanged: () => void;
}) {
    const values = flattenValues(state.values ?? {});
    const [range, setRange] = useState<RangeKey>("1h");
    const [, tick] = useState(0);
    useEffect(() => {
        const t = setInterval(() => tick((n) => n + 1), 15_000); // refresh "last seen … ago"
        return () => clearInterval(t);
    }, []);
    const remove = useAction(async () => {
        if (!confirm(`Remove device ${deviceId}? Its telemetry stops arriving in this room.`)) return;
        await api.deleteDevice(deviceId);
        onChanged();
    });
    return (
        <article class="card device-card" aria-labelledby={`dev-${deviceId}`} data-device={deviceId}>
            <header class="device-head">
                <h2 id={`dev-${deviceId}`}>{deviceId}</h2>
                <span class={`status-dot ${state.online ? "online" : "offline"}`} aria-hidden="true" />
                <span class="device-online" data-testid="device-online">
                    {state.online === undefined ? "No status yet" : state.online ? "Online" : "Offline"}
                </span>
                <span class="muted small" title={formatDateTime(state.last_seen)}>
                    Last seen {timeAgo(state.last_seen)}
                </span>
            </header>
            {Object.keys(values).length > 0 ? (
                <dl class="values" aria-label="Latest values">
                    {Object.entries(values).map(([k, v]) => (
                        <div class="value" key={k}>
                            <dt>{k}</dt>
                            <dd data-testid={`value-${k}`} title={String(v)}>{formatValue(v)}</dd>
                        </div>
                    ))}
                </dl>
            ) : (
                <p class="muted">No telemetry yet.</p>
            )}
            <div class="range-picker" role="group" aria-label="Chart range">
                {RANGES.map((r) => (
                    <button key={r.key} type="button" class="btn btn-plain small" aria-pressed={range === r.key} onClick={() => setRange(r.key)}>
                        {r.label}
                    </button>
                ))}
            </div>
            <DeviceCharts deviceId={deviceId} rangeMs={RANGES.find((r) => r.key === range)!.ms} lastSeen={state.last_seen ?? 0} latest={values} />
            {canCommand && <CommandForm roomId={roomId} deviceId={deviceId} />}
            {(row || canManage) && <AlertsEditor deviceId={deviceId} alerts={row?.alerts ?? []} canEdit={canManage} onSaved={onChanged} metrics={Object.keys(values)} />}
            {canManage && row && (
                <div class="device-foot">
                    <Button variant="danger" class="small" onClick={remove.run} busyLabel="Removing">
                        Remove device
                    </Button>
                    <ErrorText error={remove.error} />
                </div>
            )}
        </article>
    );
}

interface SeriesData {
    xs: number[]; // ms
    ys: Map<string, (number | null)[]>;
}

function appendSamples(data: SeriesData, samples: api.TelemetrySample[]) {
    for (const s of samples) {
        if (data.xs.length && s.ts < data.xs[data.xs.length - 1]) continue; // (several samples may share a millisecond)
        const flat = flattenValues(s.values ?? {});
        const n = data.xs.length;
        data.xs.push(s.ts);
        for (const [k, v] of Object.entries(flat)) {
            const num = numeric(v);
            if (num === null) continue;
            let arr = data.ys.get(k);
            if (!arr) {
                arr = new Array(n).fill(null);
                data.ys.set(k, arr);
            }
            arr.push(num);
        }
        for (const arr of data.ys.values()) if (arr.length < n + 1) arr.push(null);
    }
}

function DeviceCharts({ deviceId, rangeMs, lastSeen, latest }: { deviceId: string; rangeMs: number; lastSeen: number; latest: Record<string, unknown> }) {
    const data = useRef<SeriesData>({ xs: [], ys: new Map() });
    const [version, setVersion] = useState(0);
    const [loading, setLoading] = useState(true);
    const [error, setError] = useState<unknown>(null);
    const busy = useRef(false);

    // Full load for the range.
    useEffect(() => {
        const ac = new AbortController();
        setLoading(true);
        setError(null);
        const to = Date.now();
        api.getTelemetry(deviceId, to - rangeMs, to + 60_000, ac.signal).then(
            (samples) => {
                data.current = { xs: [], ys: new Map() };
                appendSamples(data.current, samples);
                setLoading(false);
                setVersion((v) => v + 1);
            },
            (e) => {
                if (ac.signal.aborted) return;
                setError(e);
                setLoading(false);
            },
        );
        return () => ac.abort();
    }, [deviceId, rangeMs]);

    // Incremental: a new state event means new samples.
    useEffect(() => {
        if (loading || busy.current || !lastSeen) return;
        const xs = data.current.xs;
        const from = xs.length ? xs[xs.length - 1] : Date.now() - rangeMs;
        let held = 0;
        for (let i = xs.length - 1; i >= 0 && xs[i] === from; i--) held++;
        busy.current = true;
        api.getTelemetry(deviceId, from, Date.now() + 60_000, undefined, held).then(
            (samples) => {
                busy.current = false;
                if (samples.length) {
                    appendSamples(data.current, samples);
                    setVersion((v) => v + 1);
                }
            },
            () => (busy.current = false),
        );
    }, [lastSeen, JSON.stringify(latest)]);

    if (error) return <ApiProblem error={error} feature="Telemetry history" forbidden="You need to be a member of this room to see its devices' history." />;
    if (loading && !data.current.xs.length) return <Loading what="Loading telemetry" />;
    const metrics = [...data.current.ys.keys()].sort();
    if (!metrics.length) return <p class="muted small">No numeric telemetry in this period.</p>;
    return (
        <div class="metric-charts">
            {metrics.map((m, i) => (
                <MetricChart key={m} metric={m} xs={data.current.xs} ys={data.current.ys.get(m)!} rangeMs={rangeMs} version={version} color={PALETTE[i % PALETTE.length]} />
            ))}
        </div>
    );
}

export function MetricChart({ metric, xs, ys, rangeMs, version, color }: { metric: string; xs: number[]; ys: (number | null)[]; rangeMs: number; version: number; color: string }) {
    const [width, setWidth] = useState(600);
    const now = Date.now();
    const xMin = now - rangeMs;
    const xMax = Math.max(now, xs[xs.length - 1] ?? now);
    const aligned = useMemo(() => {
        const d = downsampleMinMax(xs, ys, xMin, xMax, Math.max(50, width));
        return [d.xs.map((x) => x / 1000), d.ys] as uPlot.AlignedData;
        // eslint-disable-next-line react-hooks/exhaustive-deps
    }, [version, width, rangeMs, xs.length]);
    const lastValue = [...ys].reverse().find((v) => v !== null);
    return (
        <figure class="metric">
            <figcaption>
                <span class="metric-name">{metric}</span> <span class="muted small">latest {lastValue === undefined ? "—" : formatValue(lastValue)} · {xs.length.toLocaleString()} samples</span>
            </figcaption>
            <Chart
                label={`${metric} over the last ${rangeMs / 3600_000} hours`}
                shapeKey={`${metric}|${rangeMs}`}
                height={160}
                data={aligned}
                onWidth={setWidth}
                options={() => ({
                    legend: { show: false },
                    cursor: { drag: { x: true, y: false } },
                    scales: { x: { time: true, range: () => [(Date.now() - rangeMs) / 1000, Math.max(Date.now(), xs[xs.length - 1] ?? 0) / 1000] } },
                    series: [{}, { label: metric, stroke: color, width: 1.5, spanGaps: false, points: { show: false } }],
                })}
            />
        </figure>
    );
}

function CommandForm({ roomId, deviceId }: { roomId: string; deviceId: string }) {
    const client = getClient();
    const room = client.getRoom(roomId);
    const [command, setCommand] = useState("");
    const [args, setArgs] = useState("{}");
    const [sent, setSent] = useState<string | null>(null);
    // Recent commands for this device, with their acks (m.notice replies carrying io.converge.device.ack).
    const events = room?.getLiveTimeline().getEvents() ?? [];
    const acks = new Map<string, { ok?: boolean; text: string }>();
    for (const ev of events) {
        const ack = ev.getContent()["io.converge.device.ack"] as { ok?: boolean; id?: string } | undefined;
        const target = (ev.getContent()["m.relates_to"] as { "m.in_reply_to"?: { event_id?: string } } | undefined)?.["m.in_reply_to"]?.event_id ?? ack?.id;
        if (ack && target) acks.set(target, { ok: ack.ok, text: plainText(ev.getContent()) });
    }
    const recent = events.filter((e) => e.getType() === COMMAND_EVENT && e.getContent().device_id === deviceId).slice(-5).reverse();
    const names = [...new Set(recent.map((e) => String(e.getContent().command)))];
    const send = useAction(async (cmd: string, argText: string) => {
        let parsed: unknown = {};
        try {
            parsed = argText.trim() ? JSON.parse(argText) : {};
        } catch {
            throw new Error("The arguments aren't valid JSON. Use an object like {\"delay\": 5}.");
        }
        if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("The arguments must be a JSON object, like {\"delay\": 5}.");
        if (!cmd.trim()) throw new Error("Enter a command.");
        const r = await client.sendEvent(roomId, COMMAND_EVENT as never, { device_id: deviceId, command: cmd.trim(), args: parsed } as never);
        setSent(r.event_id);
    });
    return (
        <details class="commands">
            <summary>Commands</summary>
            {names.length > 0 && (
                <div class="row-buttons" role="group" aria-label="Recent commands">
                    {names.map((n) => (
                        <Button key={n} class="small" onClick={() => send.run(n, "{}")} busyLabel={`Sending ${n}`}>
                            {n}
                        </Button>
                    ))}
                </div>
            )}
            <form
                class="stack-form"
                onSubmit={(e) => {
                    e.preventDefault();
                    send.run(command, args);
                }}
            >
                <Field label="Command">
                    <input value={command} placeholder="reboot" onInput={(e) => setCommand(e.currentTarget.value)} />
                </Field>
                <Field label="Arguments (JSON)">
                    <textarea class="mono" rows={2} value={args} onInput={(e) => setArgs(e.currentTarget.value)} />
                </Field>
                <Button type="submit" variant="primary" disabled={send.busy} busyLabel="Sending the command">
                    Send command
                </Button>
            </form>
            <ErrorText error={send.error} context={{ forbidden: "You don't have power to send commands in this room." }} />
            {sent && <p role="status" class="small">Command sent; the device's answer appears below when it arrives.</p>}
            {recent.length > 0 && (
                <ul class="command-log">
                    {recent.map((e) => {
                        const ack = acks.get(e.getId() ?? "");
                        return (
                            <li key={e.getId()}>
                                <code>{String(e.getContent().command)}</code> <span class="muted small">{formatDateTime(e.getTs())}</span>{" "}
                                {ack ? <span class={ack.ok === false ? "error small" : "ok small"}>{ack.ok === false ? "failed" : "done"}: {ack.text}</span> : <span class="muted small">waiting for the device</span>}
                            </li>
                        );
                    })}
                </ul>
            )}
        </details>
    );
}

const OPS: api.AlertOp[] = [">", ">=", "<", "<=", "==", "!="];

function AlertsEditor({ deviceId, alerts, canEdit, onSaved, metrics }: { deviceId: string; alerts: api.AlertRule[]; canEdit: boolean; onSaved: () => void; metrics: string[] }) {
    const [rules, setRules] = useState<api.AlertRule[]>(alerts);
    const [editing, setEditing] = useState(false);
    useEffect(() => setRules(alerts), [JSON.stringify(alerts)]);
    const save = useAction(async () => {
        for (const r of rules) {
            if (!r.field.trim()) throw new Error("Every alert needs a field name.");
            if (!Number.isFinite(r.value)) throw new Error(`The threshold for ${r.field} must be a number.`);
        }
        await api.putAlerts(deviceId, rules);
        setEditing(false);
        onSaved();
    });
    const set = (i: number, patch: Partial<api.AlertRule>) => setRules(rules.map((r, j) => (j === i ? { ...r, ...patch } : r)));
    return (
        <details class="alerts">
            <summary>Alerts ({alerts.length})</summary>
            {!editing ? (
                <>
                    {alerts.length === 0 ? (
                        <p class="muted small">No alert rules.</p>
                    ) : (
                        <ul>
                            {alerts.map((a, i) => (
                                <li key={i}>
                                    <code>
                                        {a.field} {a.op} {a.value}
                                    </code>
                                </li>
                            ))}
                        </ul>
                    )}
                    {canEdit && (
                        <Button class="small" onClick={() => setEditing(true)}>
                            Edit alerts
                        </Button>
                    )}
                </>
            ) : (
                <form
                    onSubmit={(e) => {
                        e.preventDefault();
                        save.run();
                    }}
                >
                    <datalist id={`metrics-${deviceId}`}>
                        {metrics.map((m) => (
                            <option key={m} value={m} />
                        ))}
                    </datalist>
                    {rules.map((r, i) => (
                        <div class="alert-row" key={i}>
                            <input aria-label="Field" value={r.field} list={`metrics-${deviceId}`} onInput={(e) => set(i, { field: e.currentTarget.value })} />
                            <select aria-label="Operator" value={r.op} onChange={(e) => set(i, { op: e.currentTarget.value as api.AlertOp })}>
                                {OPS.map((o) => (
                                    <option key={o} value={o}>
                                        {o}
                                    </option>
                                ))}
                            </select>
                            <input aria-label="Threshold" type="number" step="any" value={String(r.value)} onInput={(e) => set(i, { value: Number(e.currentTarget.value) })} />
                            <button type="button" class="btn btn-ghost small" aria-label={`Remove alert ${i + 1}`} onClick={() => setRules(rules.filter((_, j) => j !== i))}>
                                ✕
                            </button>
                        </div>
                    ))}
                    <div class="row-buttons">
                        <button type="button" class="btn btn-plain small" onClick={() => setRules([...rules, { field: metrics[0] ?? "", op: ">", value: 0 }])}>
                            Add rule
                        </button>
                        <Button type="submit" variant="primary" class="small" disabled={save.busy} busyLabel="Saving alerts">
                            Save
                        </Button>
                        <button type="button" class="btn btn-ghost small" onClick={() => { setRules(alerts); setEditing(false); }}>
                            Cancel
                        </button>
                    </div>
                    <ApiProblem error={save.error} feature="Editing alerts" forbidden="Only room admins can change alerts." />
                </form>
            )}
        </details>
    );
}
