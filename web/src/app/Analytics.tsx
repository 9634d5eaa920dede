// Analytics for server admins: messages per day per room (stacked bars), daily and monthly active
// users, media stored, gateway traffic and the busiest rooms. Each chart has its numbers as a table too.
import { useState } from "preact/hooks";
import * as api from "../lib/api";
import { formatBytes, formatNumber } from "../lib/format";
import { ApiProblem, Loading, useLoad } from "../ui";
import { alignDays, barsPath, Chart, PALETTE, type uPlot } from "./Chart";
import { getClient } from "./client";

const FORBIDDEN = "Only server admins can see analytics.";

function roomName(id: string, fallback?: string | null): string {
    try {
        return fallback || getClient().getRoom(id)?.name || id;
    } catch {
        return fallback || id;
    }
}

export function AnalyticsPage() {
    const [days, setDays] = useState(30);
    const data = useLoad(() => api.getAnalytics(days), [days]);
    const a = data.data;
    return (
        <section class="page analytics" aria-labelledby="analytics-title">
            <div class="page-tools">
                <h1 id="analytics-title">Analytics</h1>
                <div class="range-picker" role="group" aria-label="Period">
                    {[7, 30, 90].map((d) => (
                        <button key={d} type="button" class="btn btn-plain small" aria-pressed={days === d} onClick={() => setDays(d)}>
                            {d} days
                        </button>
                    ))}
                    <button type="button" class="btn btn-ghost small" onClick={data.reload}>
                        Refresh
                    </button>
                </div>
            </div>
            {data.loading && !a && <Loading what="Counting" />}
            <ApiProblem error={data.error} feature="Analytics" forbidden={FORBIDDEN} />
            {a && <AnalyticsView a={a} />}
        </section>
    );
}

function Stat({ label, value, detail }: { label: string; value: string; detail?: string }) {
    return (
        <div class="stat">
            <div class="stat-value" data-testid={`stat-${label}`}>
                {value}
            </div>
            <div class="stat-label">{label}</div>
            {detail && <div class="small muted">{detail}</div>}
        </div>
    );
}

function DataTable({ caption, head, rows }: { caption: string; head: string[]; rows: (string | number)[][] }) {
    return (
        <details class="data-table">
            <summary>Show as a table</summary>
            <div class="table-wrap">
                <table class="table small">
                    <caption class="sr-only">{caption}</caption>
                    <thead>
                        <tr>
                            {head.map((h) => (
                                <th scope="col" key={h}>
                                    {h}
                                </th>
                            ))}
                        </tr>
                    </thead>
                    <tbody>
                        {rows.map((r, i) => (
                            <tr key={i}>
                                {r.map((c, j) => (
                                    <td key={j} class={typeof c === "number" ? "num" : ""}>
                                        {typeof c === "number" ? formatNumber(c) : c}
                                    </td>
                                ))}
                            </tr>
                        ))}
                    </tbody>
                </table>
            </div>
        </details>
    );
}

/** The day list for the period, so empty days still show. */
function periodDays(days: number, seen: string[]): string[] {
    const out: string[] = [];
    const last = seen.length ? Date.parse(`${[...seen].sort().pop()}T00:00:00Z`) : Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
    const end = Math.max(last, Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate()));
    for (let i = days - 1; i >= 0; i--) out.push(new Date(end - i * 86_400_000).toISOString().slice(0, 10));
    return out;
}

const dayFmt = (s: number) => new Date(s * 1000).toLocaleDateString([], { month: "short", day: "numeric", timeZone: "UTC" });

function AnalyticsView({ a }: { a: api.Analytics }) {
    const totalMessages = a.messages_per_day.reduce((s, d) => s + d.count, 0);
    const today = a.daily_active_users[a.daily_active_users.length - 1]?.count ?? 0;
    const seen = [...a.messages_per_day, ...a.daily_active_users].map((d) => d.day);
    const days = periodDays(a.days, seen);

    // Messages per room per day: the six busiest rooms, the rest as "Other rooms".
    const byRoom = new Map<string, number>();
    for (const r of a.messages_per_room_per_day) byRoom.set(r.room_id, (byRoom.get(r.room_id) ?? 0) + r.count);
    const top = [...byRoom.entries()].sort((x, y) => y[1] - x[1]).slice(0, 6).map(([id]) => id);
    const topSet = new Set(top);
    const groups = [...top, ...(byRoom.size > top.length ? ["__other"] : [])];
    const perGroup = groups.map((g) => {
        const m = new Map<string, number>();
        for (const r of a.messages_per_room_per_day) {
            const key = topSet.has(r.room_id) ? r.room_id : "__other";
            if (key === g) m.set(r.day, (m.get(r.day) ?? 0) + r.count);
        }
        return [...m.entries()].map(([day, count]) => ({ day, count }));
    });
    const topNames = new Map(a.top_rooms.map((r) => [r.room_id, r.name]));
    const groupName = (g: string) => (g === "__other" ? "Other rooms" : roomName(g, topNames.get(g)));
    const aligned = alignDays(perGroup.length ? perGroup : [a.messages_per_day], days);
    // Stack: series i holds the sum of groups 0..i; drawn from the tallest down so each shows.
    const stacked = aligned.ys.map((_, i) => aligned.x.map((_, k) => aligned.ys.slice(0, i + 1).reduce((s, ys) => s + ys[k], 0)));
    const order = stacked.map((_, i) => stacked.length - 1 - i);
    const msgData = [aligned.x, ...order.map((i) => stacked[i])] as uPlot.AlignedData;

    const dau = alignDays([a.daily_active_users], days);
    const gw = a.gateways ?? {};
    const gwKeys = (["hook_posts", "device_samples", "commands", "deliveries", "delivery_failures"] as const).filter((k) => gw[k]);
    const gwNames: Record<string, string> = { hook_posts: "Webhook posts", device_samples: "Device samples", commands: "Commands", deliveries: "Deliveries", delivery_failures: "Delivery failures" };
    const gwAligned = alignDays(gwKeys.map((k) => gw[k] ?? []), days);
    const maxTop = Math.max(1, ...a.top_rooms.map((r) => r.messages));

    return (
        <>
            <div class="stats">
                <Stat label="Messages" value={formatNumber(totalMessages)} detail={`in ${a.days} days`} />
                <Stat label="Monthly active users" value={formatNumber(a.monthly_active_users)} />
                <Stat label="Active today" value={formatNumber(today)} />
                <Stat label="Media stored" value={formatBytes(a.media.bytes)} detail={`${formatNumber(a.media.count)} files`} />
            </div>
            <div class="card">
                <h2>Messages per day</h2>
                <Chart
                    label={`Messages per day by room over ${a.days} days; ${totalMessages} in total`}
                    shapeKey={`msgs|${groups.join(",")}|${days.length}`}
                    height={260}
                    data={msgData}
                    options={() => ({
                        // Half a day of room on each side so the first and last bars show whole.
                        scales: { x: { time: true, range: (_u, min, max) => [min - 43_200, max + 43_200] }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
                        axes: [{ values: (_u, splits) => splits.map(dayFmt) }, {}],
                        series: [
                            { value: (_u, v) => (v == null ? "" : dayFmt(v)) },
                            ...order.map((i) => ({
                                label: groupName(groups[i] ?? "messages"),
                                fill: PALETTE[i % PALETTE.length],
                                stroke: PALETTE[i % PALETTE.length],
                                paths: barsPath,
                                points: { show: false },
                                value: (_u: uPlot, _v: number | null, _si: number, idx: number | null) => (idx == null ? "" : String(aligned.ys[i]?.[idx] ?? 0)),
                            })),
                        ],
                    })}
                />
                <DataTable
                    caption="Messages per day by room"
                    head={["Day", ...groups.map(groupName)]}
                    rows={days.map((d, k) => [d, ...aligned.ys.map((ys) => ys[k])])}
                />
            </div>
            <div class="two-col">
                <div class="card">
                    <h2>Daily active users</h2>
                    <Chart
                        label={`Daily active users over ${a.days} days; ${a.monthly_active_users} monthly`}
                        shapeKey={`dau|${days.length}`}
                        height={200}
                        data={[dau.x, dau.ys[0]]}
                        options={() => ({
                            legend: { show: false },
                            scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
                            axes: [{ values: (_u, splits) => splits.map(dayFmt) }, {}],
                            series: [{}, { label: "Active users", stroke: PALETTE[2], fill: "rgba(42,157,92,.15)", width: 2 }],
                        })}
                    />
                    <DataTable caption="Daily active users" head={["Day", "Active users"]} rows={days.map((d, k) => [d, dau.ys[0][k]])} />
                </div>
                <div class="card">
                    <h2>Gateway traffic</h2>
                    {gwKeys.length === 0 ? (
                        <p class="muted">No gateway traffic in this period.</p>
                    ) : (
                        <>
                            <Chart
                                label="Gateway traffic per day"
                                shapeKey={`gw|${gwKeys.join(",")}|${days.length}`}
                                height={200}
                                data={[gwAligned.x, ...gwAligned.ys]}
                                options={() => ({
                                    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
                                    axes: [{ values: (_u, splits) => splits.map(dayFmt) }, {}],
                                    series: [{ value: (_u, v) => (v == null ? "" : dayFmt(v)) }, ...gwKeys.map((k, i) => ({ label: gwNames[k], stroke: k === "delivery_failures" ? "#d64545" : PALETTE[(i + 3) % PALETTE.length], width: 2 }))],
                                })}
                            />
                            <DataTable caption="Gateway traffic" head={["Day", ...gwKeys.map((k) => gwNames[k])]} rows={days.map((d, k) => [d, ...gwAligned.ys.map((ys) => ys[k])])} />
                        </>
                    )}
                </div>
            </div>
            <div class="card">
                <h2>Busiest rooms</h2>
                {a.top_rooms.length === 0 ? (
                    <p class="muted">No messages in this period.</p>
                ) : (
                    <ol class="bar-list">
                        {a.top_rooms.map((r, i) => (
                            <li key={r.room_id}>
                                <span class="bar-label">{roomName(r.room_id, r.name)}</span>
                                <span class="bar-track">
                                    <span class="bar" style={{ width: `${(100 * r.messages) / maxTop}%`, background: PALETTE[i % PALETTE.length] }} />
                                </span>
                                <span class="bar-value" data-testid="top-room-count">
                                    {formatNumber(r.messages)}
                                </span>
                            </li>
                        ))}
                    </ol>
                )}
            </div>
        </>
    );
}
