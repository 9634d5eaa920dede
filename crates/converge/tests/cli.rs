//! The `converge` binary as an operator uses it: config checks, user and token commands,
//! serving, and a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Kills the server if the test fails half-way, so no process outlives the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn converge(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_converge"));
    command
        .env_clear()
        .env("CONVERGE_DATA_DIR", data_dir)
        .env("CONVERGE_LISTEN", "127.0.0.1:0")
        .env("CONVERGE_LOG_FORMAT", "text");
    command
}

#[test]
fn config_example_is_printed_and_usable() {
    let dir = tempfile::tempdir().unwrap();
    let output = converge(dir.path())
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("server_name = \"localhost\"") && text.contains("[registration]"));
    let path = dir.path().join("converge.toml");
    std::fs::write(&path, &text).unwrap();
    // A config that parses lets a command run against it.
    let output = converge(dir.path())
        .args(["--config", path.to_str().unwrap(), "token", "create"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn bad_configuration_exits_with_code_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = converge(dir.path())
        .env("CONVERGE_REGISTRATION__MODE", "sometimes")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("registration.mode"));

    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "server_name = \"localhost\"\nlisten_port = 8008\n").unwrap();
    let output = converge(dir.path())
        .args(["--config", path.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("listen_port"));

    let output = converge(dir.path())
        .args(["--config", "/nonexistent/converge.toml", "serve"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn user_add_needs_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let output = converge(dir.path())
        .args(["user", "add", "alice"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("password"));
    let output = converge(dir.path())
        .args(["user", "add", "Not Valid", "--password", "pw"])
        .output()
        .unwrap();
    assert!(!output.status.success());
}

#[tokio::test]
async fn an_operator_story_from_user_add_to_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut add = converge(dir.path())
        .args(["user", "add", "alice", "--password-stdin", "--admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"pw-alice-1\n")
        .unwrap();
    let output = add.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        "@alice:localhost"
    );

    let output = converge(dir.path())
        .args(["token", "create", "--uses", "1", "--expires", "1d"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 16);

    let mut server = KillOnDrop(
        converge(dir.path())
            .arg("serve")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let server = &mut server.0;
    let stderr = BufReader::new(server.stderr.take().unwrap());
    let mut lines = stderr.lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        assert!(Instant::now() < deadline, "server did not start");
        let line = lines.next().expect("server log").unwrap();
        if let Some(rest) = line
            .split("addr=")
            .nth(1)
            .filter(|_| line.contains("listening"))
        {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    let login: Value = http
        .post(format!("{base}/_matrix/client/v3/login"))
        .json(&json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "pw-alice-1" }))
        .send().await.unwrap().json().await.unwrap();
    assert_eq!(login["user_id"], "@alice:localhost");
    // Token registration takes the token stage, then the dummy stage.
    let first: Value = http
        .post(format!("{base}/_matrix/client/v3/register"))
        .json(&json!({ "username": "bob", "password": "pw-bob-1", "auth": { "type": "m.login.registration_token", "token": token } }))
        .send().await.unwrap().json().await.unwrap();
    assert_eq!(first["completed"], json!(["m.login.registration_token"]));
    let register = http
        .post(format!("{base}/_matrix/client/v3/register"))
        .json(&json!({ "username": "bob", "password": "pw-bob-1", "auth": { "type": "m.login.dummy", "session": first["session"] } }))
        .send().await.unwrap();
    assert_eq!(register.status(), 200);
    // The default mode is `token`: without one, registration asks for it.
    let challenge: Value = http
        .post(format!("{base}/_matrix/client/v3/register"))
        .json(&json!({ "username": "carol", "password": "pw-1" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        challenge["flows"][0]["stages"][0],
        "m.login.registration_token"
    );

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = server.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
    let log = drain.join().unwrap().join("\n");
    assert!(log.contains("shut down"), "{log}");
    assert!(dir.path().join("converge.db").exists());
}
