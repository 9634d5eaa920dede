// Settings: profile name, theme, encryption set-up (offered, never forced) and sign out.
import { useEffect, useState } from "preact/hooks";
import { getTheme, setTheme, type Theme } from "../lib/theme";
import { Button, Dialog, ErrorText, Field, useAction } from "../ui";
import { getClient, setRecoveryKeyPrompt, stopClient } from "./client";

export function SettingsPage({ onSignedOut }: { onSignedOut: () => void }) {
    const client = getClient();
    const me = client.getUserId()!;
    const [theme, setThemeState] = useState<Theme>(getTheme());
    const [name, setName] = useState(client.getUser(me)?.displayName ?? "");
    const saveName = useAction(async () => {
        await client.setDisplayName(name.trim());
    });
    const signOut = useAction(async () => {
        await stopClient(true);
        onSignedOut();
    });
    return (
        <section class="page" aria-labelledby="settings-title">
            <h1 id="settings-title">Settings</h1>
            <div class="card">
                <h2>Profile</h2>
                <p class="muted">
                    Signed in as <strong>{me}</strong> on device <code>{client.getDeviceId()}</code>.
                </p>
                <form
                    class="inline-form"
                    onSubmit={(e) => {
                        e.preventDefault();
                        saveName.run();
                    }}
                >
                    <Field label="Display name">
                        <input value={name} onInput={(e) => setName(e.currentTarget.value)} maxLength={256} />
                    </Field>
                    <Button type="submit" disabled={saveName.busy} busyLabel="Saving">
                        Save
                    </Button>
                </form>
                <ErrorText error={saveName.error} />
            </div>
            <div class="card">
                <h2>Appearance</h2>
                <fieldset class="radio-group">
                    <legend>Theme</legend>
                    {(["system", "light", "dark"] as Theme[]).map((t) => (
                        <label key={t} class="check">
                            <input
                                type="radio"
                                name="theme"
                                value={t}
                                checked={theme === t}
                                onChange={() => {
                                    setTheme(t);
                                    setThemeState(t);
                                }}
                            />{" "}
                            {t === "system" ? "Same as the system" : t === "light" ? "Light" : "Dark"}
                        </label>
                    ))}
                </fieldset>
            </div>
            <SecurityCard />
            <div class="card">
                <h2>Sign out</h2>
                <p class="muted">Signing out removes this device's session and its encryption keys from this browser.</p>
                <ErrorText error={signOut.error} />
                <Button variant="danger" onClick={signOut.run} busyLabel="Signing out">
                    Sign out
                </Button>
            </div>
        </section>
    );
}

interface SecurityState {
    crossSigning: boolean;
    backupVersion: string | null;
    secretStorage: boolean;
}

function SecurityCard() {
    const client = getClient();
    const crypto = client.getCrypto();
    const [state, setState] = useState<SecurityState | null>(null);
    const [stateError, setStateError] = useState<unknown>(null);
    const [password, setPassword] = useState("");
    const [recoveryKey, setRecoveryKey] = useState<string | null>(null);
    const [askKey, setAskKey] = useState<((v: string | null) => void) | null>(null);
    const [typedKey, setTypedKey] = useState("");
    const [restored, setRestored] = useState<string | null>(null);

    const refresh = async () => {
        if (!crypto) return;
        try {
            const [crossSigning, backupVersion, secretStorage] = await Promise.all([
                crypto.isCrossSigningReady(),
                crypto.getActiveSessionBackupVersion(),
                crypto.isSecretStorageReady(),
            ]);
            setState({ crossSigning, backupVersion, secretStorage });
        } catch (e) {
            setStateError(e);
        }
    };
    useEffect(() => {
        refresh();
        setRecoveryKeyPrompt(() => new Promise((resolve) => setAskKey(() => resolve)));
        return () => setRecoveryKeyPrompt(null);
    }, []);

    const setup = useAction(async () => {
        if (!crypto) return;
        const me = client.getUserId()!;
        await crypto.bootstrapCrossSigning({
            authUploadDeviceSigningKeys: async (makeRequest) => {
                await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: me }, password } as never);
            },
        });
        await crypto.bootstrapSecretStorage({
            createSecretStorageKey: async () => {
                const key = await crypto.createRecoveryKeyFromPassphrase();
                setRecoveryKey(key.encodedPrivateKey ?? null);
                return key;
            },
            setupNewKeyBackup: true,
        });
        setPassword("");
        await refresh();
    });

    const restore = useAction(async () => {
        if (!crypto) return;
        await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
        const r = await crypto.restoreKeyBackup();
        setRestored(`Restored ${r.imported} of ${r.total} message keys.`);
        await refresh();
    });

    if (!crypto) {
        return (
            <div class="card">
                <h2>Encryption</h2>
                <p>Encryption isn't available in this browser session.</p>
            </div>
        );
    }
    return (
        <div class="card">
            <h2>Encryption</h2>
            <p class="muted">
                Cross-signing lets your other devices and contacts trust this one; key backup keeps your encrypted history if you lose
                all your devices. Both are optional.
            </p>
            {stateError ? (
                <ErrorText error="This server doesn't support encryption key management yet." />
            ) : state ? (
                <ul class="status-list">
                    <li>Cross-signing: {state.crossSigning ? "set up" : "not set up"}</li>
                    <li>Secret storage: {state.secretStorage ? "set up" : "not set up"}</li>
                    <li>Key backup: {state.backupVersion ? `on (version ${state.backupVersion})` : "off"}</li>
                </ul>
            ) : (
                <p>Checking…</p>
            )}
            {state && !(state.crossSigning && state.backupVersion) && (
                <form
                    class="inline-form"
                    onSubmit={(e) => {
                        e.preventDefault();
                        setup.run();
                    }}
                >
                    <Field label="Your password (to confirm)">
                        <input type="password" autoComplete="current-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} required />
                    </Field>
                    <Button type="submit" variant="primary" disabled={setup.busy} busyLabel="Setting up encryption">
                        {setup.busy ? "Setting up…" : "Set up cross-signing and backup"}
                    </Button>
                </form>
            )}
            {state?.secretStorage && !state.backupVersion && (
                <Button onClick={restore.run} busyLabel="Restoring keys">
                    Restore from backup with my recovery key
                </Button>
            )}
            {restored && <p role="status">{restored}</p>}
            <ErrorText error={setup.error || restore.error} />
            <Dialog open={!!recoveryKey} onClose={() => setRecoveryKey(null)} title="Save your recovery key">
                <p>Keep this key somewhere safe, like a password manager. You need it to read your encrypted history on a new device. It is shown only once.</p>
                <pre class="code-block recovery-key">{recoveryKey}</pre>
                <Button variant="primary" onClick={() => setRecoveryKey(null)}>
                    I've saved it
                </Button>
            </Dialog>
            <Dialog
                open={!!askKey}
                onClose={() => {
                    askKey?.(null);
                    setAskKey(null);
                }}
                title="Enter your recovery key"
            >
                <form
                    onSubmit={(e) => {
                        e.preventDefault();
                        askKey?.(typedKey);
                        setAskKey(null);
                        setTypedKey("");
                    }}
                >
                    <Field label="Recovery key">
                        <input value={typedKey} onInput={(e) => setTypedKey(e.currentTarget.value)} autoComplete="off" />
                    </Field>
                    <Button type="submit" variant="primary">
                        Continue
                    </Button>
                </form>
            </Dialog>
        </div>
    );
}


