//! Acknowledged writes survive a crash: `kill -9` during a burst of concurrent sends, then
//! a restart, and every event that got a 200 is there exactly once.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data_dir: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_converge"))
        .arg("serve")
        .env_clear()
        .env("CONVERGE_DATA_DIR", data_dir)
        .env("CONVERGE_LISTEN", "127.0.0.1:0")
        .env("CONVERGE_REGISTRATION__MODE", "open")
        .env("CONVERGE_RATE_LIMITS__ENABLED", "false")
        .stderr(Stdio::piped())
        .spawn()
        .expect("server starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        assert!(Instant::now() < deadline, "server did not start");
        let line = lines.next().expect("server log").unwrap();
        if let Some(rest) = line.split("addr=").nth(1).filter(|_| line.contains("listening")) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    Server { child, base: format!("http://{addr}/_matrix/client/v3") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sends_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let server = start(dir.path());
    let login: Value = http
        .post(format!("{}/register", server.base))
        .json(&json!({ "username": "alice", "password": "pw-alice-1", "auth": { "type": "m.login.dummy" } }))
        .send().await.unwrap().json().await.unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let room: Value = http
        .post(format!("{}/createRoom", server.base))
        .bearer_auth(&token)
        .json(&json!({}))
        .send().await.unwrap().json().await.unwrap();
    let room_id = room["room_id"].as_str().unwrap().to_owned();

    // A burst of concurrent sends; the server is killed while they are in flight.
    let sends: Vec<_> = (0..400)
        .map(|n| {
            let http = http.clone();
            let url = format!("{}/rooms/{room_id}/send/m.room.message/txn{n}", server.base);
            let token = token.clone();
            tokio::spawn(async move {
                let response = http.put(url).bearer_auth(token).json(&json!({ "msgtype": "m.text", "body": format!("m{n}") })).send().await.ok()?;
                if response.status() != 200 {
                    return None;
                }
                let body: Value = response.json().await.ok()?;
                Some((n, body["event_id"].as_str()?.to_owned()))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut server = server;
    server.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    server.child.wait().unwrap();
    let mut acked = HashMap::new();
    for send in sends {
        if let Some((n, event_id)) = send.await.unwrap() {
            acked.insert(event_id, n);
        }
    }
    drop(server);
    assert!(!acked.is_empty(), "some sends were acknowledged before the kill");

    let server = start(dir.path());
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut bodies: HashMap<String, usize> = HashMap::new();
    let mut from: Option<String> = None;
    loop {
        let mut url = format!("{}/rooms/{room_id}/messages?dir=f&limit=100", server.base);
        if let Some(from) = &from {
            url.push_str(&format!("&from={from}"));
        }
        let page: Value = http.get(url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        for event in page["chunk"].as_array().unwrap() {
            if event["type"] == "m.room.message" {
                *seen.entry(event["event_id"].as_str().unwrap().to_owned()).or_default() += 1;
                *bodies.entry(event["content"]["body"].as_str().unwrap().to_owned()).or_default() += 1;
            }
        }
        match page["end"].as_str() {
            Some(end) => from = Some(end.to_owned()),
            None => break,
        }
    }
    for (event_id, n) in &acked {
        assert_eq!(seen.get(event_id), Some(&1), "acknowledged send m{n} ({event_id}) is stored exactly once");
    }
    assert!(bodies.values().all(|&count| count == 1), "no message is stored twice");
    // A retry of an acknowledged transaction after the restart returns the same event.
    let (event_id, n) = acked.iter().next().unwrap();
    let again: Value = http
        .put(format!("{}/rooms/{room_id}/send/m.room.message/txn{n}", server.base))
        .bearer_auth(&token)
        .json(&json!({ "msgtype": "m.text", "body": format!("m{n}") }))
        .send().await.unwrap().json().await.unwrap();
    assert_eq!(again["event_id"].as_str(), Some(event_id.as_str()));
}
