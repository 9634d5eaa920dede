//! The MQTT gateway against the real Mosquitto broker on 127.0.0.1:1883: telemetry turning
//! into a state event another user syncs, commands out and acks back, alerts, status
//! changes, bad input dropped and counted, and reconnection after the broker goes away.
//!
//! Each test uses a topic prefix of its own, so tests share the broker safely.

mod common;

use std::time::Duration;

use common::{
    Api, TestServer, User, V3, command, enc, recent_events, room_with_bot, say, wait_for,
};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const BROKER: (&str, u16) = ("127.0.0.1", 1883);

fn unique(tag: &str) -> String {
    format!("cvt-{tag}-{}-{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

async fn server(prefix: &str, broker_port: u16) -> TestServer {
    let prefix = prefix.to_owned();
    TestServer::start_with(move |c| {
        c.gateways.set("mqtt.enabled", true);
        c.gateways
            .set("mqtt.url", format!("mqtt://127.0.0.1:{broker_port}"));
        c.gateways.set("mqtt.client_id", format!("{prefix}-server"));
        c.gateways.set("mqtt.topic_prefix", prefix);
        c.gateways.set("mqtt.max_payload_bytes", 1024);
    })
    .await
}

/// A device on the broker: publishes, and hands what it receives to a channel.
struct DeviceClient {
    client: AsyncClient,
    received: mpsc::UnboundedReceiver<(String, Value)>,
}

impl DeviceClient {
    async fn connect(id: &str, prefix: &str) -> Self {
        let mut options = MqttOptions::new(format!("{prefix}-{id}"), BROKER.0, BROKER.1);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_last_will(LastWill::new(
            format!("{prefix}/devices/{id}/status"),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        let (client, eventloop) = AsyncClient::new(options, 64);
        let (tx, received) = mpsc::unbounded_channel();
        tokio::spawn(pump(eventloop, tx));
        client
            .subscribe(format!("{prefix}/devices/{id}/commands"), QoS::AtLeastOnce)
            .await
            .unwrap();
        Self { client, received }
    }

    async fn publish(&self, topic: String, payload: impl Into<Vec<u8>>, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .expect("publish");
    }

    async fn next(&mut self, secs: u64) -> Option<(String, Value)> {
        tokio::time::timeout(Duration::from_secs(secs), self.received.recv())
            .await
            .ok()
            .flatten()
    }
}

async fn pump(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<(String, Value)>) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                if tx.send((p.topic.clone(), value)).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Alice's room with bob and the bot, and device `id` added by chat.
async fn room_with_device(t: &TestServer, id: &str) -> (User, User, String) {
    let (alice, bob, room) = room_with_bot(t).await;
    let answer = command(t, &alice, &room, &format!("!device add {id}")).await;
    assert!(answer.contains("added"), "{answer}");
    wait_for(10, "the gateway to connect", || async {
        let (_, health) = t.get("/_converge/health", None).await;
        (health["gateways"]["mqtt"]["connected"] == true).then_some(())
    })
    .await;
    (alice, bob, room)
}

/// The device's state event as `user` sees it in the room state.
async fn device_state(t: &TestServer, user: &User, room: &str, id: &str) -> Option<Value> {
    let (status, body) = t
        .get(
            &format!("{V3}/rooms/{}/state/io.converge.device/{id}", enc(room)),
            Some(&user.token),
        )
        .await;
    (status == reqwest::StatusCode::OK).then_some(body)
}

/// A notice in the room from the device's user whose body contains `text`.
async fn wait_for_notice(t: &TestServer, user: &User, room: &str, text: &str) -> Value {
    wait_for(10, &format!("a notice with {text:?}"), || async {
        recent_events(t, user, room, 40)
            .await
            .into_iter()
            .find(|e| {
                e["content"]["msgtype"] == "m.notice"
                    && e["content"]["body"]
                        .as_str()
                        .is_some_and(|b| b.contains(text))
            })
    })
    .await
}

#[tokio::test]
async fn telemetry_reaches_another_users_sync_and_commands_round_trip() {
    let prefix = unique("flow");
    let t = server(&prefix, BROKER.1).await;
    let (alice, bob, room) = room_with_device(&t, "kitchen").await;
    let (status, body) = t
        .get(&format!("{V3}/sync?timeout=0"), Some(&bob.token))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let mut since = body["next_batch"].as_str().unwrap().to_owned();

    let mut device = DeviceClient::connect("kitchen", &prefix).await;
    for temp in [20.5, 21.0, 21.5] {
        device
            .publish(
                format!("{prefix}/devices/kitchen/telemetry"),
                json!({ "temp": temp, "hum": 40 }).to_string(),
                false,
            )
            .await;
    }

    // Bob's incremental syncs show the coalesced state event from the device's user.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let event = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no device state in bob's sync"
        );
        let (_, body) = t
            .get(
                &format!("{V3}/sync?timeout=2000&since={since}"),
                Some(&bob.token),
            )
            .await;
        let events = body["rooms"]["join"][&room]["timeline"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(event) = events
            .into_iter()
            .find(|e| e["type"] == "io.converge.device" && e["content"]["values"]["temp"] == "21.5")
        {
            break event;
        }
        since = body["next_batch"].as_str().expect("next_batch").to_owned();
    };
    assert_eq!(event["sender"], "@device-kitchen:localhost");
    assert_eq!(event["state_key"], "kitchen");
    assert_eq!(event["content"]["values"]["hum"], 40);
    assert_eq!(event["content"]["online"], true);

    // Every sample is kept for charts.
    let samples = wait_for(10, "three stored samples", || async {
        let (status, body) = t
            .get(
                "/_converge/client/v1/devices/kitchen/telemetry",
                Some(&bob.token),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        let samples = body["samples"].as_array().cloned().unwrap_or_default();
        (samples.len() == 3).then_some(samples)
    })
    .await;
    let temps: Vec<f64> = samples
        .iter()
        .map(|s| s["values"]["temp"].as_f64().unwrap())
        .collect();
    assert_eq!(temps, [20.5, 21.0, 21.5]);

    // A command in the room arrives on the device's topic; its ack is posted as a reply.
    let command_id = say(&t, &alice, &room, "!device kitchen reboot {\"delay\": 2}").await;
    let (topic, payload) = device.next(10).await.expect("a command for the device");
    assert_eq!(topic, format!("{prefix}/devices/kitchen/commands"));
    assert_eq!(payload["command"], "reboot");
    assert_eq!(payload["args"], json!({ "delay": 2 }));
    assert_eq!(payload["id"], command_id.as_str());
    device
        .publish(
            format!("{prefix}/devices/kitchen/acks"),
            json!({ "id": command_id, "ok": true, "uptime": 0 }).to_string(),
            false,
        )
        .await;
    let ack = wait_for_notice(&t, &bob, &room, "kitchen** answered").await;
    assert_eq!(ack["sender"], "@device-kitchen:localhost");
    assert_eq!(
        ack["content"]["m.relates_to"]["m.in_reply_to"]["event_id"],
        command_id.as_str()
    );
    assert_eq!(ack["content"]["io.converge.device.ack"]["ack"]["uptime"], 0);

    // The same through an io.converge.device.command event (moderators only, by default).
    let send_path = || {
        format!(
            "{V3}/rooms/{}/send/io.converge.device.command/{}",
            enc(&room),
            common::next_txn()
        )
    };
    let command = json!({ "device_id": "kitchen", "command": "blink", "args": [1, 2] });
    let refused = t.put(&send_path(), Some(&bob.token), command.clone()).await;
    common::assert_error(&refused, 403, "M_FORBIDDEN");
    let (status, body) = t.put(&send_path(), Some(&alice.token), command).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let (_, payload) = device.next(10).await.expect("a command from the event");
    assert_eq!(payload["command"], "blink");
    assert_eq!(payload["id"], body["event_id"]);
    t.stop().await;
}

#[tokio::test]
async fn alerts_and_status_changes_post_notices() {
    let prefix = unique("alert");
    let t = server(&prefix, BROKER.1).await;
    let (alice, _bob, room) = room_with_device(&t, "boiler").await;
    let answer = command(&t, &alice, &room, "!device boiler alert temp > 30").await;
    assert!(answer.contains("Alert added"), "{answer}");
    let device = DeviceClient::connect("boiler", &prefix).await;
    let telemetry = format!("{prefix}/devices/boiler/telemetry");
    device
        .publish(telemetry.clone(), r#"{"temp": 25}"#, false)
        .await;
    device
        .publish(telemetry.clone(), r#"{"temp": 31}"#, false)
        .await;
    device
        .publish(telemetry.clone(), r#"{"temp": 35}"#, false)
        .await;
    let alert = wait_for_notice(&t, &alice, &room, "alert: temp > 30").await;
    assert!(
        alert["content"]["body"]
            .as_str()
            .unwrap()
            .contains("temp = 31"),
        "{alert}"
    );
    device
        .publish(telemetry.clone(), r#"{"temp": 20}"#, false)
        .await;
    wait_for_notice(&t, &alice, &room, "cleared").await;
    let alerts_fired = recent_events(&t, &alice, &room, 50)
        .await
        .iter()
        .filter(|e| {
            e["content"]["body"]
                .as_str()
                .is_some_and(|b| b.contains("alert: temp > 30"))
        })
        .count();
    assert_eq!(alerts_fired, 1, "35 after 31 is no new crossing");

    // Status (the device's retained status and last will) updates the state and is announced.
    let status = format!("{prefix}/devices/boiler/status");
    device.publish(status.clone(), "offline", true).await;
    wait_for_notice(&t, &alice, &room, "boiler** is offline").await;
    wait_for(10, "the state to say offline", || async {
        device_state(&t, &alice, &room, "boiler")
            .await
            .filter(|c| c["online"] == false)
    })
    .await;
    device
        .publish(status.clone(), r#"{"online": true}"#, true)
        .await;
    wait_for_notice(&t, &alice, &room, "boiler** is online").await;
    // Clear the retained message so the broker forgets this test's topic.
    device.publish(status, "", true).await;
    t.stop().await;
}

#[tokio::test]
async fn bad_input_is_dropped_counted_and_survived() {
    let prefix = unique("bad");
    let t = server(&prefix, BROKER.1).await;
    let (alice, _bob, room) = room_with_device(&t, "probe").await;
    let device = DeviceClient::connect("probe", &prefix).await;
    let topic = format!("{prefix}/devices/probe/telemetry");
    device
        .publish(topic.clone(), "not json at all", false)
        .await;
    device.publish(topic.clone(), "[1, 2, 3]", false).await;
    device
        .publish(
            topic.clone(),
            format!(r#"{{"blob": "{}"}}"#, "x".repeat(4096)),
            false,
        )
        .await;
    device
        .publish(
            format!("{prefix}/devices/stranger/telemetry"),
            r#"{"temp": 1}"#,
            false,
        )
        .await;
    device
        .publish(
            format!("{prefix}/devices/probe/acks"),
            r#"{"id": "$nope"}"#,
            false,
        )
        .await;
    wait_for(10, "five dropped inputs", || async {
        let (_, health) = t.get("/_converge/health", None).await;
        (health["gateways"]["mqtt"]["dropped"] == 5).then_some(())
    })
    .await;
    // The gateway still works.
    device.publish(topic, r#"{"temp": 7}"#, false).await;
    wait_for(10, "the good sample", || async {
        device_state(&t, &alice, &room, "probe")
            .await
            .filter(|c| c["values"]["temp"] == 7)
    })
    .await;
    let (_, health) = t.get("/_converge/health", None).await;
    assert_eq!(health["status"], "ok", "{health}");
    // Only members see telemetry; unknown devices are 404.
    let outsider = t.register("eve", "password-eve").await;
    let (status, _) = t
        .get(
            "/_converge/client/v1/devices/probe/telemetry",
            Some(&outsider.token),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    let (status, _) = t
        .get(
            "/_converge/client/v1/devices/ghost/telemetry",
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    t.stop().await;
}

#[tokio::test]
async fn commands_need_power_in_the_room() {
    let prefix = unique("power");
    let t = server(&prefix, BROKER.1).await;
    let (alice, bob, room) = room_with_device(&t, "door").await;
    // Adding the device made commands a moderator's power (the room had no rule) and
    // gave the device's user the power to post its state.
    let (_, levels) = t
        .get(
            &format!("{V3}/rooms/{}/state/m.room.power_levels/", enc(&room)),
            Some(&alice.token),
        )
        .await;
    assert_eq!(levels["events"]["io.converge.device.command"], 50);
    assert_eq!(levels["users"]["@device-door:localhost"], 50);
    let mut device = DeviceClient::connect("door", &prefix).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = command(&t, &bob, &room, "!device door open").await;
    assert!(
        answer.starts_with("⚠️") && answer.contains("power"),
        "{answer}"
    );
    let answer = command(&t, &bob, &room, "!device add window").await;
    assert!(answer.starts_with("⚠️"), "{answer}");
    assert!(
        device.next(1).await.is_none(),
        "nothing was published for bob"
    );
    let answer = command(&t, &alice, &room, "!device door open").await;
    assert!(answer.contains("Sent"), "{answer}");
    // Alert rules parse whatever the device is called.
    let answer = command(&t, &alice, &room, "!device door alert temp > 30").await;
    assert!(answer.contains("door` temp > 30"), "{answer}");
    let (_, payload) = device.next(10).await.expect("alice's command");
    assert_eq!(payload["command"], "open");
    t.stop().await;
}

/// A TCP relay to the broker that can be cut, to play a broker going away.
async fn relay(listener: TcpListener, mut cut: tokio::sync::watch::Receiver<bool>) {
    loop {
        let (mut inbound, _) = tokio::select! {
            accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
            _ = cut.changed() => return,
        };
        let mut cut = cut.clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(BROKER).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = cut.changed() => {}
            }
        });
    }
}

#[tokio::test]
async fn the_gateway_reconnects_when_the_broker_comes_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (cut, cut_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(relay(listener, cut_rx));
    let prefix = unique("outage");
    let t = server(&prefix, port).await;
    let (alice, _bob, room) = room_with_device(&t, "pump").await;
    let device = DeviceClient::connect("pump", &prefix).await;
    let topic = format!("{prefix}/devices/pump/telemetry");
    device.publish(topic.clone(), r#"{"rpm": 1}"#, false).await;
    wait_for(10, "the first sample", || async {
        device_state(&t, &alice, &room, "pump")
            .await
            .filter(|c| c["values"]["rpm"] == 1)
    })
    .await;

    // The broker "goes away": the relay drops every connection and stops listening.
    cut.send(true).unwrap();
    wait_for(15, "the gateway to notice", || async {
        let (_, health) = t.get("/_converge/health", None).await;
        (health["gateways"]["mqtt"]["connected"] == false).then_some(health)
    })
    .await;
    let (_, health) = t.get("/_converge/health", None).await;
    assert_eq!(health["status"], "degraded");
    // The server stays up meanwhile.
    let (status, _) = t
        .get(&format!("{V3}/sync?timeout=0"), Some(&alice.token))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);

    // It "comes back" on the same port; the gateway reconnects and resubscribes.
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (_cut_again, cut_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(relay(listener, cut_rx));
    wait_for(40, "the gateway to reconnect", || async {
        let (_, health) = t.get("/_converge/health", None).await;
        (health["gateways"]["mqtt"]["connected"] == true).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    device.publish(topic, r#"{"rpm": 2}"#, false).await;
    wait_for(10, "a sample after reconnecting", || async {
        device_state(&t, &alice, &room, "pump")
            .await
            .filter(|c| c["values"]["rpm"] == 2)
    })
    .await;
    t.stop().await;
}

#[tokio::test]
async fn a_flapping_device_does_not_flood_the_room() {
    let prefix = unique("flap");
    let t = server(&prefix, BROKER.1).await;
    let (alice, _bob, room) = room_with_device(&t, "relay").await;
    let device = DeviceClient::connect("relay", &prefix).await;
    let status = format!("{prefix}/devices/relay/status");
    for i in 0..12 {
        let value = if i % 2 == 0 { "online" } else { "offline" };
        device.publish(status.clone(), value, false).await;
    }
    // The last word counts: the state ends offline, whatever was announced.
    wait_for(10, "the state to settle offline", || async {
        let (_, health) = t.get("/_converge/health", None).await;
        let received = health["gateways"]["mqtt"]["messages_in"].as_u64() == Some(12);
        let state = device_state(&t, &alice, &room, "relay").await;
        (received && state.is_some_and(|c| c["online"] == false)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let notices = recent_events(&t, &alice, &room, 100)
        .await
        .iter()
        .filter(|e| {
            e["content"]["body"]
                .as_str()
                .is_some_and(|b| b.contains("**relay** is"))
        })
        .count();
    assert_eq!(notices, 5, "at most five status notices a minute");
    t.stop().await;
}

/// Keeps the benchmark's MQTT scenario working (counts only, never timings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_scenario_runs_at_smoke_size() {
    use converge_bench::scenarios::{Bench, Plan};
    let prefix = unique("bench");
    let t = server(&prefix, BROKER.1).await;
    wait_for(10, "the gateway to connect", || async {
        let (_, health) = t.get("/_converge/health", None).await;
        (health["gateways"]["mqtt"]["connected"] == true).then_some(())
    })
    .await;
    let plan = Plan::smoke();
    let mut bench = Bench::new(&t.base, None, plan.clone());
    bench.register_users().await.unwrap();
    let result = bench.mqtt(BROKER, &prefix).await.unwrap();
    assert_eq!(
        result["samples"],
        plan.mqtt_devices * plan.mqtt_samples,
        "{result}"
    );
    assert!(
        result["all_stored_ms"].is_number(),
        "every sample stored: {result}"
    );
    assert!(
        result["state_current_ms"].is_number(),
        "every state current: {result}"
    );
    t.stop().await;
}
