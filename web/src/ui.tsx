// Small shared UI pieces: buttons that show progress, error sentences, dialogs, copy buttons.
import type { ComponentChildren, JSX } from "preact";
import { useEffect, useRef, useState, useCallback } from "preact/hooks";
import { describeError, isMissingEndpoint } from "./lib/errors";
import { onLinkClick } from "./lib/router";

export function Spinner({ label = "Loading" }: { label?: string }) {
    return <span class="spinner" role="status" aria-label={label} />;
}

export function Loading({ what = "Loading" }: { what?: string }) {
    return (
        <p class="loading">
            <Spinner label={what} /> {what}…
        </p>
    );
}

export function ErrorText({ error, context }: { error: unknown; context?: { forbidden?: string; notFound?: string } }) {
    if (!error) return null;
    return (
        <p class="error" role="alert">
            {typeof error === "string" ? error : describeError(error, context)}
        </p>
    );
}

/** For Converge APIs the server may not have yet: a friendly sentence instead of an error. */
export function ApiProblem({ error, feature, forbidden }: { error: unknown; feature: string; forbidden?: string }) {
    if (!error) return null;
    if (isMissingEndpoint(error)) {
        return (
            <div class="notice" role="status">
                <p>
                    <strong>{feature}</strong> isn't available on this server yet. It will appear here once the server is updated.
                </p>
            </div>
        );
    }
    return <ErrorText error={error} context={{ forbidden }} />;
}

type ButtonProps = Omit<JSX.HTMLAttributes<HTMLButtonElement>, "onClick"> & {
    onClick?: (ev: MouseEvent) => unknown;
    busyLabel?: string;
    variant?: "primary" | "danger" | "plain" | "ghost";
    type?: "button" | "submit";
    disabled?: boolean;
};

/** A button whose async onClick shows a spinner and disables it until done. */
export function Button({ onClick, children, busyLabel, variant = "plain", type = "button", disabled, class: cls, ...rest }: ButtonProps) {
    const [busy, setBusy] = useState(false);
    const mounted = useRef(true);
    useEffect(() => () => void (mounted.current = false), []);
    const handle = async (ev: MouseEvent) => {
        if (!onClick) return;
        const r = onClick(ev);
        if (r && typeof (r as Promise<unknown>).then === "function") {
            setBusy(true);
            try {
                await r;
            } finally {
                if (mounted.current) setBusy(false);
            }
        }
    };
    return (
        <button
            {...rest}
            type={type}
            class={`btn btn-${variant} ${cls ?? ""}`}
            disabled={disabled || busy}
            aria-busy={busy}
            onClick={onClick ? handle : undefined}
        >
            {busy && <Spinner label={busyLabel ?? "Working"} />}
            {children}
        </button>
    );
}

/** Runs an async action, keeping its error as a sentence and a busy flag for the form. */
export function useAction<A extends unknown[]>(fn: (...args: A) => Promise<unknown>) {
    const [busy, setBusy] = useState(false);
    const [error, setError] = useState<unknown>(null);
    const run = useCallback(
        async (...args: A) => {
            setBusy(true);
            setError(null);
            try {
                await fn(...args);
                return true;
            } catch (e) {
                console.warn(e);
                setError(e);
                return false;
            } finally {
                setBusy(false);
            }
        },
        [fn],
    );
    return { busy, error, setError, run };
}

/** Loads data on mount (and when deps change), with loading and error state. */
export function useLoad<T>(fn: (signal: AbortSignal) => Promise<T>, deps: unknown[]) {
    const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
    const [n, setN] = useState(0);
    useEffect(() => {
        const ac = new AbortController();
        setState((s) => ({ data: s.data, loading: true }));
        fn(ac.signal).then(
            (data) => !ac.signal.aborted && setState({ data, loading: false }),
            (error) => !ac.signal.aborted && setState({ error, loading: false }),
        );
        return () => ac.abort();
        // eslint-disable-next-line react-hooks/exhaustive-deps
    }, [...deps, n]);
    return { ...state, reload: () => setN((x) => x + 1), setData: (data: T) => setState({ data, loading: false }) };
}

export function Progress({ value, max, label }: { value: number; max: number; label: string }) {
    return <progress class="progress" value={value} max={max || 1} aria-label={label} />;
}

export function Dialog({ open, onClose, title, children, wide }: { open: boolean; onClose: () => void; title: string; children: ComponentChildren; wide?: boolean }) {
    const ref = useRef<HTMLDialogElement>(null);
    useEffect(() => {
        const d = ref.current;
        if (!d) return;
        if (open && !d.open) d.showModal();
        if (!open && d.open) d.close();
    }, [open]);
    const id = useRef(`dlg-${Math.random().toString(36).slice(2)}`).current;
    return (
        <dialog ref={ref} class={`dialog ${wide ? "dialog-wide" : ""}`} aria-labelledby={id} onClose={onClose} onCancel={onClose}>
            <header class="dialog-head">
                <h2 id={id}>{title}</h2>
                <button type="button" class="btn btn-ghost icon" aria-label="Close" onClick={onClose}>
                    ✕
                </button>
            </header>
            {open && <div class="dialog-body">{children}</div>}
        </dialog>
    );
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
    const [done, setDone] = useState(false);
    return (
        <button
            type="button"
            class="btn btn-plain small"
            onClick={async () => {
                try {
                    await navigator.clipboard.writeText(text);
                    setDone(true);
                    setTimeout(() => setDone(false), 1500);
                } catch {
                    /* clipboard refused (no permission): the text is selectable */
                }
            }}
        >
            {done ? "Copied" : label}
        </button>
    );
}

export function Link({ href, children, class: cls, ...rest }: JSX.HTMLAttributes<HTMLAnchorElement> & { href: string }) {
    return (
        <a href={href} class={cls} onClick={onLinkClick} {...rest}>
            {children}
        </a>
    );
}

export function Avatar({ name, id, size = 32 }: { name: string; id: string; size?: number }) {
    const ref = useRef<HTMLSpanElement>(null);
    useEffect(() => {
        // Colour via the CSSOM (no style attribute: CSP style-src 'self').
        let h = 0;
        for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
        ref.current?.style.setProperty("--hue", String(h % 360));
    }, [id]);
    const s = name.replace(/^[@#!+]/, "").trim();
    return (
        <span ref={ref} class={`avatar avatar-${size}`} aria-hidden="true">
            {(Array.from(s)[0] ?? "?").toUpperCase()}
        </span>
    );
}

export function Field({ label, children, hint }: { label: string; children: ComponentChildren; hint?: string }) {
    return (
        <label class="field">
            <span class="field-label">{label}</span>
            {children}
            {hint && <span class="field-hint">{hint}</span>}
        </label>
    );
}
