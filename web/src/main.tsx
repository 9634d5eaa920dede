// Entry point. This chunk holds only what a signed-out visitor needs (sign in, register, first run);
// the chat, matrix-js-sdk and its Rust crypto (wasm) load lazily after sign-in.
import "./styles.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { ComponentType } from "preact";
import * as api from "./lib/api";
import { isMissingEndpoint } from "./lib/errors";
import { navigate, usePath } from "./lib/router";
import { clearSession, loadSession, saveSession, type Session } from "./lib/session";
import { applyTheme } from "./lib/theme";
import { Button, ErrorText, Field, Link, Loading, useAction } from "./ui";

applyTheme();
window.matchMedia?.("(prefers-color-scheme: dark)").addEventListener?.("change", () => applyTheme());

type ShellModule = { AppShell: ComponentType<{ session: Session; onSignedOut: () => void }> };

function Root() {
    const [session, setSession] = useState<Session | null>(loadSession);
    const [setup, setSetup] = useState<api.SetupInfo | null | undefined>(undefined);
    const [Shell, setShell] = useState<ShellModule | null>(null);
    const [shellError, setShellError] = useState<unknown>(null);
    const path = usePath();

    useEffect(() => {
        api.getSetup().then(setSetup, (e) => {
            if (!isMissingEndpoint(e)) console.warn("setup info", e);
            setSetup(null); // older server: no first-run information
        });
    }, []);

    useEffect(() => {
        api.setAccessToken(session?.accessToken ?? null);
        api.setUnauthorizedHandler(() => signedOut());
        if (session && !Shell) {
            import("./app/AppShell").then((m) => setShell(() => m as unknown as ShellModule), setShellError);
        }
    }, [session]);

    const signedIn = (r: api.LoginResult) => {
        const s = { userId: r.user_id, deviceId: r.device_id, accessToken: r.access_token };
        saveSession(s);
        setSession(s);
        if (path === "/login" || path === "/register" || path === "/setup") navigate("/", true);
    };
    const signedOut = () => {
        clearSession();
        api.setAccessToken(null);
        setSession(null);
        navigate("/login", true);
    };

    if (setup === undefined && !session) return <Loading what="Connecting to the server" />;
    // The first-run page is for the operator; anyone else (or a server run without admins)
    // can go on to sign in or register.
    if (setup && !setup.has_admin && !session && path !== "/login" && path !== "/register") {
        return (
            <FirstRun
                setup={setup}
                onDone={() => api.getSetup().then(setSetup, () => setSetup(null))}
                onSkip={() => navigate("/login")}
            />
        );
    }
    if (!session) {
        if (path === "/register") return <Register setup={setup ?? null} onDone={signedIn} />;
        return <Login setup={setup ?? null} onDone={signedIn} />;
    }
    if (shellError) {
        return (
            <main class="center-card">
                <ErrorText error="The app could not finish loading. Check your connection and reload the page." />
                <Button onClick={() => location.reload()}>Reload</Button>
            </main>
        );
    }
    if (!Shell) return <Loading what="Loading Converge" />;
    return <Shell.AppShell session={session} onSignedOut={signedOut} />;
}

function Brand({ setup }: { setup: api.SetupInfo | null }) {
    return (
        <div class="brand">
            <img src="/favicon.svg" alt="" width={40} height={40} />
            <div>
                <div class="brand-name">Converge</div>
                {setup && <div class="brand-server">{setup.server_name}</div>}
            </div>
        </div>
    );
}

function FirstRun({ setup, onDone, onSkip }: { setup: api.SetupInfo; onDone: () => Promise<unknown>; onSkip: () => void }) {
    const command = "converge user add NAME --password-stdin --admin";
    return (
        <main class="center-card" aria-labelledby="firstrun-title">
            <Brand setup={setup} />
            <h1 id="firstrun-title">Welcome to your new server</h1>
            <p>
                <strong>{setup.server_name}</strong> has no administrator yet. Create the first one on the machine that runs
                Converge, then come back and sign in:
            </p>
            <pre class="code-block">
                {/* Lines may break between the words of the command, never inside an option. */}
                <code>
                    {command.split(" ").map((word, i) => (
                        <>
                            {i > 0 && " "}
                            <span class="no-break">{word}</span>
                        </>
                    ))}
                </code>
            </pre>
            <p class="muted">
                Replace NAME with the username you want, type the password, press Enter and then Ctrl-D. With Docker, run it
                through <code>docker exec -i</code>.
            </p>
            <Button variant="primary" onClick={onDone}>
                I've created it — continue
            </Button>
            <p class="muted">
                Not the operator?{" "}
                <a
                    href="/login"
                    onClick={(e) => {
                        e.preventDefault();
                        onSkip();
                    }}
                >
                    Sign in or create an account
                </a>
            </p>
        </main>
    );
}

function Login({ setup, onDone }: { setup: api.SetupInfo | null; onDone: (r: api.LoginResult) => void }) {
    const [user, setUser] = useState("");
    const [password, setPassword] = useState("");
    const action = useAction(async () => onDone(await api.login(user.trim(), password)));
    const canRegister = !setup || setup.registration !== "closed";
    return (
        <main class="center-card" aria-labelledby="login-title">
            <Brand setup={setup} />
            <h1 id="login-title">Sign in</h1>
            <form
                onSubmit={(e) => {
                    e.preventDefault();
                    action.run();
                }}
            >
                <Field label="Username">
                    <input name="username" autoComplete="username" required value={user} onInput={(e) => setUser(e.currentTarget.value)} autoFocus />
                </Field>
                <Field label="Password">
                    <input name="password" type="password" autoComplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
                </Field>
                <ErrorText error={action.error} context={{ forbidden: "Wrong username or password." }} />
                <Button type="submit" variant="primary" disabled={action.busy} busyLabel="Signing in">
                    {action.busy ? "Signing in…" : "Sign in"}
                </Button>
            </form>
            {canRegister && (
                <p class="muted">
                    New here? <Link href="/register">Create an account</Link>
                </p>
            )}
        </main>
    );
}

function Register({ setup, onDone }: { setup: api.SetupInfo | null; onDone: (r: api.LoginResult) => void }) {
    const initialToken = new URLSearchParams(location.search).get("token") ?? "";
    const [username, setUsername] = useState("");
    const [password, setPassword] = useState("");
    const [confirm, setConfirm] = useState("");
    const [token, setToken] = useState(initialToken);
    const [needsToken, setNeedsToken] = useState<boolean | null>(setup ? setup.registration === "token" : null);
    const [closed, setClosed] = useState(setup?.registration === "closed");

    useEffect(() => {
        api.registrationFlows().then(
            (uia) => {
                if (!uia) return setClosed(true);
                const flows = uia.flows ?? [];
                const withoutToken = flows.some((f) => !f.stages.includes("m.login.registration_token"));
                setNeedsToken(!withoutToken && flows.length > 0);
            },
            () => setNeedsToken((v) => v ?? false),
        );
    }, []);

    const action = useAction(async () => {
        if (password !== confirm) throw new Error("The two passwords don't match.");
        if (needsToken && token.trim() && !(await api.tokenIsValid(token.trim()))) {
            throw new Error("That registration token isn't valid. It may have been used up or have expired.");
        }
        onDone(await api.register(username.trim().replace(/^@/, "").replace(/:.*$/, ""), password, token.trim() || undefined));
    });

    if (closed) {
        return (
            <main class="center-card">
                <Brand setup={setup} />
                <h1>Registration is closed</h1>
                <p>This server doesn't accept new accounts. Ask its administrator to create one for you.</p>
                <Link href="/login">Back to sign in</Link>
            </main>
        );
    }
    return (
        <main class="center-card" aria-labelledby="register-title">
            <Brand setup={setup} />
            <h1 id="register-title">Create an account</h1>
            <form
                onSubmit={(e) => {
                    e.preventDefault();
                    action.run();
                }}
            >
                <Field label="Username" hint="Lower-case letters, digits and . _ = - /">
                    <input name="username" autoComplete="username" required value={username} onInput={(e) => setUsername(e.currentTarget.value)} autoFocus />
                </Field>
                <Field label="Password">
                    <input name="password" type="password" autoComplete="new-password" required minLength={8} value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
                </Field>
                <Field label="Confirm password">
                    <input name="confirm" type="password" autoComplete="new-password" required value={confirm} onInput={(e) => setConfirm(e.currentTarget.value)} />
                </Field>
                {needsToken && (
                    <Field label="Registration token" hint="This server needs a token from its administrator.">
                        <input name="token" required value={token} onInput={(e) => setToken(e.currentTarget.value)} autoComplete="off" />
                    </Field>
                )}
                <ErrorText error={action.error} />
                <Button type="submit" variant="primary" disabled={action.busy || needsToken === null} busyLabel="Creating the account">
                    {action.busy ? "Creating…" : "Create account"}
                </Button>
            </form>
            <p class="muted">
                Already have an account? <Link href="/login">Sign in</Link>
            </p>
        </main>
    );
}

render(<Root />, document.getElementById("app")!);
