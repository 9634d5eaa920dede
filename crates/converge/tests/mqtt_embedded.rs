//! The embedded MQTT broker: devices log in with the password they got when added, reach
//! only their own topics, and their telemetry, commands and last wills flow as with an
//! external broker. No Mosquitto involved.

mod common;

use std::time::Duration;

use common::{
    Api, TestServer, User, V3, assert_error, command, enc, private_answer, recent_events,
    room_with_bot, say, wait_for,
};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Packet, QoS,
    SubscribeReasonCode,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const PREFIX: &str = "cv";

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.gateways.set("mqtt.enabled", true);
        c.gateways.set("mqtt.topic_prefix", PREFIX);
        c.gateways.set("mqtt.broker.enabled", true);
        c.gateways.set("mqtt.broker.listen", "127.0.0.1:0");
    })
    .await
}

/// The embedded broker's port, once the gateway is connected to it.
async fn broker_port(t: &TestServer) -> u16 {
    wait_for(10, "the gateway on its own broker", || async {
        let (_, health) = t.get("/_converge/health", None).await;
        let mqtt = &health["gateways"]["mqtt"];
        if mqtt["connected"] != true {
            return None;
        }
        let listen = mqtt["broker"]["listen"].as_str()?;
        listen.rsplit_once(':')?.1.parse().ok()
    })
    .await
}

/// What a client saw: its packets, or how its connection failed.
enum Seen {
    Packet(Packet),
    Failed(String),
}

struct Device {
    client: AsyncClient,
    seen: mpsc::UnboundedReceiver<Seen>,
    pump: tokio::task::JoinHandle<()>,
}

impl Device {
    fn connect(port: u16, id: &str, login: Option<(&str, &str)>) -> Self {
        let mut options = MqttOptions::new(format!("test-{id}"), "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_last_will(LastWill::new(
            format!("{PREFIX}/devices/{id}/status"),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (tx, seen) = mpsc::unbounded_channel();
        let pump = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(packet)) => {
                        if tx.send(Seen::Packet(packet)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        let refused = matches!(err, ConnectionError::ConnectionRefused(_));
                        let _ = tx.send(Seen::Failed(format!("{err:?}")));
                        if refused {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Self { client, seen, pump }
    }

    /// The next packet or failure matching `pick`, within 10 s.
    async fn expect<T>(&mut self, what: &str, mut pick: impl FnMut(&Seen) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let seen = tokio::time::timeout_at(deadline, self.seen.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .expect("the client runs");
            if let Some(found) = pick(&seen) {
                return found;
            }
        }
    }

    async fn connected(&mut self) {
        self.expect("CONNACK", |s| match s {
            Seen::Packet(Packet::ConnAck(ack)) => {
                assert_eq!(ack.code, ConnectReturnCode::Success);
                Some(())
            }
            Seen::Failed(err) => panic!("connection failed: {err}"),
            _ => None,
        })
        .await
    }

    /// The return codes of the next SUBACK.
    async fn suback(&mut self) -> Vec<SubscribeReasonCode> {
        self.expect("SUBACK", |s| match s {
            Seen::Packet(Packet::SubAck(ack)) => Some(ack.return_codes.clone()),
            _ => None,
        })
        .await
    }

    async fn publish(&self, kind: &str, id: &str, payload: impl Into<Vec<u8>>, retain: bool) {
        self.client
            .publish(
                format!("{PREFIX}/devices/{id}/{kind}"),
                QoS::AtLeastOnce,
                retain,
                payload,
            )
            .await
            .expect("publish");
    }
}

async fn device_state(t: &TestServer, user: &User, room: &str, id: &str) -> Option<Value> {
    let (status, body) = t
        .get(
            &format!("{V3}/rooms/{}/state/io.converge.device/{id}", enc(room)),
            Some(&user.token),
        )
        .await;
    (status == reqwest::StatusCode::OK).then_some(body)
}

#[tokio::test]
async fn devices_log_in_and_reach_only_their_own_topics() {
    let t = server().await;
    let port = broker_port(&t).await;
    let (alice, _bob, room) = room_with_bot(&t).await;

    // Added by chat: the password comes in a direct message, never in the room.
    let answer = command(&t, &alice, &room, "!device add kitchen").await;
    assert!(answer.contains("direct message"), "{answer}");
    let dm = private_answer(&t, &alice, "with username `kitchen`").await;
    let password: String = dm
        .split("password `")
        .nth(1)
        .expect("a password in the message")
        .chars()
        .take_while(|c| *c != '`')
        .collect();
    for event in recent_events(&t, &alice, &room, 50).await {
        assert!(
            !event.to_string().contains(&password),
            "the password stays private"
        );
    }
    // Added by the admin API: the password is in the answer.
    let (status, garage) = t
        .post(
            &format!("/_converge/admin/v1/rooms/{}/devices", enc(&room)),
            Some(&alice.token),
            json!({ "device_id": "garage" }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{garage}");
    assert_eq!(garage["mqtt_username"], "garage");

    // Wrong, missing and unknown logins are refused at CONNECT.
    for login in [
        Some(("kitchen", "wrong")),
        None,
        Some(("ghost", password.as_str())),
    ] {
        let mut intruder = Device::connect(port, "x", login);
        let refusal = intruder
            .expect("a refusal", |s| match s {
                Seen::Failed(err) => Some(err.clone()),
                Seen::Packet(Packet::ConnAck(_)) => panic!("{login:?} was let in"),
                _ => None,
            })
            .await;
        assert!(refusal.contains("BadUserNamePassword"), "{refusal}");
    }

    let mut kitchen = Device::connect(port, "kitchen", Some(("kitchen", &password)));
    kitchen.connected().await;
    kitchen
        .publish("telemetry", "kitchen", r#"{"temp": 21}"#, false)
        .await;
    wait_for(10, "the kitchen's state", || async {
        device_state(&t, &alice, &room, "kitchen")
            .await
            .filter(|c| c["values"]["temp"] == 21)
    })
    .await;

    // The kitchen cannot speak for the garage, nor listen to everything.
    kitchen
        .publish("telemetry", "garage", r#"{"temp": 99}"#, false)
        .await;
    kitchen
        .client
        .subscribe("#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let codes = kitchen.suback().await;
    assert_eq!(codes, [SubscribeReasonCode::Failure]);
    kitchen
        .client
        .subscribe(
            format!("{PREFIX}/devices/kitchen/commands"),
            QoS::AtLeastOnce,
        )
        .await
        .unwrap();
    let codes = kitchen.suback().await;
    assert_eq!(codes, [SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    let (_, health) = t.get("/_converge/health", None).await;
    assert_eq!(
        health["gateways"]["mqtt"]["broker"]["undelivered"], 1,
        "{health}"
    );
    assert!(
        device_state(&t, &alice, &room, "garage").await.is_none(),
        "no garage state"
    );

    // Commands reach the device; its ack comes back as a reply.
    let command_id = say(&t, &alice, &room, "!device kitchen light {\"on\": true}").await;
    let payload = kitchen
        .expect("a command", |s| match s {
            Seen::Packet(Packet::Publish(p)) => serde_json::from_slice::<Value>(&p.payload).ok(),
            _ => None,
        })
        .await;
    assert_eq!(payload["command"], "light");
    assert_eq!(payload["id"], command_id.as_str());
    kitchen
        .publish(
            "acks",
            "kitchen",
            json!({ "id": command_id, "ok": true }).to_string(),
            false,
        )
        .await;
    wait_for(10, "the ack in the room", || async {
        recent_events(&t, &alice, &room, 30)
            .await
            .into_iter()
            .find(|e| {
                e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == command_id.as_str()
                    && e["sender"] == "@device-kitchen:localhost"
            })
    })
    .await;

    // A device that vanishes without DISCONNECT: its last will says offline.
    kitchen.publish("status", "kitchen", "online", true).await;
    wait_for(10, "online", || async {
        device_state(&t, &alice, &room, "kitchen")
            .await
            .filter(|c| c["online"] == true)
    })
    .await;
    kitchen.pump.abort();
    drop(kitchen);
    wait_for(10, "the last will", || async {
        device_state(&t, &alice, &room, "kitchen")
            .await
            .filter(|c| c["online"] == false)
    })
    .await;

    // A removed device is disconnected and cannot log in again.
    let garage_password = garage["mqtt_password"].as_str().unwrap().to_owned();
    let mut garage_client = Device::connect(port, "garage", Some(("garage", &garage_password)));
    garage_client.connected().await;
    let (status, _) = t
        .call(
            reqwest::Method::DELETE,
            "/_converge/admin/v1/devices/garage",
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let refusal = garage_client
        .expect("a refused reconnection", |s| match s {
            Seen::Failed(err) if err.contains("BadUserNamePassword") => Some(err.clone()),
            _ => None,
        })
        .await;
    assert!(refusal.contains("BadUserNamePassword"));
    t.stop().await;
}

#[tokio::test]
async fn garbage_closes_only_its_own_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = server().await;
    let port = broker_port(&t).await;
    // Each is refused, at once or when the CONNECT deadline passes.
    let garbage: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        // A CONNECT announcing 256 MiB.
        &[0x10, 0xff, 0xff, 0xff, 0x7f],
        // A remaining length that never ends.
        &[0x10, 0xff, 0xff, 0xff, 0xff, 0xff],
        // A CONNECT for another protocol name.
        &[
            0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'X', b'X', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00,
        ],
    ];
    for bytes in garbage {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream.write_all(bytes).await.unwrap();
        let mut buf = [0u8; 16];
        // Incomplete packets are waited for until the 10 s CONNECT deadline, no longer.
        let read = tokio::time::timeout(Duration::from_secs(15), stream.read(&mut buf))
            .await
            .expect("the broker closes the connection");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "closed without an answer: {read:?}"
        );
    }
    // The gateway's own connection is still up.
    let (_, health) = t.get("/_converge/health", None).await;
    assert_eq!(health["gateways"]["mqtt"]["connected"], true, "{health}");
    t.stop().await;
}

/// Keeps the benchmark's MQTT scenario working against the embedded broker, where every
/// device logs in on its own connection (counts only, never timings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_scenario_runs_against_the_embedded_broker() {
    use converge_bench::scenarios::{Bench, Plan};
    let t = server().await;
    let port = broker_port(&t).await;
    let plan = Plan::smoke();
    let mut bench = Bench::new(&t.base, None, plan.clone());
    bench.register_users().await.unwrap();
    let result = bench.mqtt(("127.0.0.1", port), PREFIX).await.unwrap();
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

#[tokio::test]
async fn alert_rules_set_through_the_admin_api_fire_and_are_checked() {
    let t = server().await;
    let port = broker_port(&t).await;
    let (alice, bob, room) = room_with_bot(&t).await;
    let devices = format!("/_converge/admin/v1/rooms/{}/devices", enc(&room));
    let (_, boiler) = t
        .post(
            &devices,
            Some(&alice.token),
            json!({ "device_id": "boiler" }),
        )
        .await;
    let password = boiler["mqtt_password"].as_str().unwrap().to_owned();
    let alerts = "/_converge/admin/v1/devices/boiler/alerts";
    let rule = json!({ "alerts": [{ "field": "temp", "op": ">", "value": 30 }] });

    // Bob may read the room but not change its devices; bad rules are refused.
    assert_error(
        &t.put(alerts, Some(&bob.token), rule.clone()).await,
        403,
        "M_FORBIDDEN",
    );
    for bad in [
        json!({ "alerts": [{ "field": "temp", "op": "~", "value": 30 }] }),
        json!({ "alerts": [{ "field": "", "op": ">", "value": 30 }] }),
        json!({ "alerts": [{ "field": "temp", "op": ">" }] }),
        json!({ "alerts": (0..100).map(|_| json!({ "field": "t", "op": ">", "value": 1 })).collect::<Vec<_>>() }),
    ] {
        let (status, body) = t.put(alerts, Some(&alice.token), bad.clone()).await;
        assert_eq!(status.as_u16(), 400, "{bad}: {body}");
        assert!(
            body["errcode"].as_str().unwrap().starts_with("M_"),
            "{body}"
        );
    }
    assert_error(
        &t.put(
            "/_converge/admin/v1/devices/ghost/alerts",
            Some(&alice.token),
            rule.clone(),
        )
        .await,
        404,
        "M_NOT_FOUND",
    );
    let (status, body) = t.put(alerts, Some(&alice.token), rule).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let (_, listed) = t.get(&devices, Some(&alice.token)).await;
    let stored = &listed["devices"][0]["alerts"][0];
    assert_eq!(
        (stored["field"].as_str(), stored["op"].as_str()),
        (Some("temp"), Some(">"))
    );
    assert_eq!(stored["threshold"], 30.0);

    // The rule is live at once: a crossing posts a notice.
    let mut device = Device::connect(port, "boiler", Some(("boiler", &password)));
    device.connected().await;
    device
        .publish("telemetry", "boiler", r#"{"temp": 25}"#, false)
        .await;
    device
        .publish("telemetry", "boiler", r#"{"temp": 31}"#, false)
        .await;
    wait_for(10, "the alert notice", || async {
        recent_events(&t, &alice, &room, 20)
            .await
            .into_iter()
            .find(|e| {
                e["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("alert: temp > 30"))
            })
    })
    .await;
    // Clearing them by the API stops that.
    let (status, _) = t
        .put(alerts, Some(&alice.token), json!({ "alerts": [] }))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let (_, listed) = t.get(&devices, Some(&alice.token)).await;
    assert_eq!(listed["devices"][0]["alerts"], json!([]));
    device.pump.abort();
    t.stop().await;
}
