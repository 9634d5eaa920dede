//! The crash check: a burst of concurrent sends, `kill -9` in the middle, a restart, and
//! every event that was acknowledged must be stored exactly once.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::{Client, Result};

/// A `converge serve` process on a free port, killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// Starts `bin serve` on 127.0.0.1:0 with `data_dir`, open registration and no rate
    /// limits, and waits for it to say where it listens.
    pub fn start(bin: &Path, data_dir: &Path) -> Result<Self> {
        let mut child = Command::new(bin)
            .arg("serve")
            .env_clear()
            .env("CONVERGE_DATA_DIR", data_dir)
            .env("CONVERGE_LISTEN", "127.0.0.1:0")
            .env("CONVERGE_REGISTRATION__MODE", "open")
            .env("CONVERGE_RATE_LIMITS__ENABLED", "false")
            .env("CONVERGE_LOG_FORMAT", "text")
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let mut lines = BufReader::new(child.stderr.take().ok_or("no stderr")?).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if Instant::now() > deadline {
                return Err("the server did not start".into());
            }
            let line = lines
                .next()
                .ok_or("the server exited")?
                .map_err(|e| e.to_string())?;
            if let Some(rest) = line
                .split("addr=")
                .nth(1)
                .filter(|_| line.contains("listening"))
            {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        };
        std::thread::spawn(move || lines.map_while(std::result::Result::ok).for_each(drop));
        Ok(Self {
            child,
            base: format!("http://{addr}"),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the crash check with `sends` concurrent sends; fails if an acknowledged event is
/// missing or stored twice.
pub async fn crash_check(bin: &Path, data_dir: &Path, sends: usize) -> Result<Value> {
    let server = Server::start(bin, data_dir)?;
    let client = Client::new(&server.base);
    let user = client.register("crash", "crash-password-1").await?;
    let room = client.create_room(&user, json!({})).await?;
    let burst: Vec<_> = (0..sends)
        .map(|n| {
            let (client, user, room) = (client.clone(), user.clone(), room.clone());
            tokio::spawn(async move {
                let content = json!({ "msgtype": "m.text", "body": format!("m{n}") });
                match client
                    .try_send(&user, &room, &format!("txn{n}"), &content)
                    .await
                {
                    Ok((200, body)) => body["event_id"].as_str().map(|id| (id.to_owned(), n)),
                    _ => None,
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.kill();
    let mut acked: HashMap<String, usize> = HashMap::new();
    for send in burst {
        if let Ok(Some((event_id, n))) = send.await {
            acked.insert(event_id, n);
        }
    }

    let server = Server::start(bin, data_dir)?;
    let client = Client::new(&server.base);
    let events = client.all_messages(&user, &room).await?;
    let mut stored: HashMap<String, usize> = HashMap::new();
    let mut bodies: HashMap<String, usize> = HashMap::new();
    for event in events.iter().filter(|e| e["type"] == "m.room.message") {
        *stored
            .entry(event["event_id"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
        *bodies
            .entry(
                event["content"]["body"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
            .or_default() += 1;
    }
    let lost: Vec<&String> = acked
        .keys()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    let duplicated = bodies.values().filter(|&&count| count > 1).count();
    // A retried transaction returns the event the first attempt created.
    let retry_ok = match acked.iter().next() {
        Some((event_id, n)) => {
            let content = json!({ "msgtype": "m.text", "body": format!("m{n}") });
            client
                .send(&user, &room, &format!("txn{n}"), &content)
                .await?
                == *event_id
        }
        None => true,
    };
    let result = json!({
        "sends": sends,
        "acknowledged": acked.len(),
        "stored": stored.len(),
        "lost": lost.len(),
        "duplicated": duplicated,
        "retry_returns_same_event": retry_ok,
    });
    if !lost.is_empty() || duplicated > 0 || !retry_ok || acked.is_empty() {
        return Err(format!("crash check failed: {result}"));
    }
    Ok(result)
}
