//! The embedded broker when `[gateways.mqtt.broker]` is enabled: it runs inside Converge,
//! and logins are checked here: the gateway's own secret (made at start) or a device's
//! password against the hash stored when the device was added, in constant time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use converge_mqtt_broker::{Authenticate, Broker, Identity};
use converge_service::ids::random_id;
use converge_service::{Error, Result};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::MAX_PACKET;
use super::config::BrokerConfig;

/// The gateway's own login on the embedded broker (`$` is never in a device ID).
pub const GATEWAY_LOGIN: &str = "$converge";

/// Each device's password hash, by device ID.
type Secrets = Arc<Mutex<HashMap<String, String>>>;

pub struct Embedded {
    broker: Arc<Broker>,
    pub addr: SocketAddr,
    /// The gateway's password on the broker.
    pub gateway_secret: String,
    secrets: Secrets,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Embedded {
    /// Starts the broker; it stops with `stop`.
    pub async fn start(
        config: &BrokerConfig,
        topic_prefix: &str,
        stop: watch::Receiver<bool>,
    ) -> Result<Self> {
        let secrets: Secrets = Arc::default();
        let gateway_secret = random_id(32);
        let broker = Broker::new(
            topic_prefix,
            MAX_PACKET,
            config.max_connections,
            authenticator(secrets.clone(), gateway_secret.clone()),
        );
        let listen = config.listen;
        let (addr, task) = broker.listen(listen, stop).await.map_err(|e| {
            Error::internal(format!(
                "the embedded MQTT broker cannot listen on {listen}: {e}"
            ))
        })?;
        Ok(Self {
            broker,
            addr,
            gateway_secret,
            secrets,
            task: Mutex::new(Some(task)),
        })
    }

    /// The host the gateway connects to.
    pub fn host(&self) -> String {
        if self.addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            self.addr.ip().to_string()
        }
    }

    /// Lets `device` log in with the password whose hash is `hash`.
    pub fn allow(&self, device: &str, hash: &str) {
        self.lock().insert(device.to_owned(), hash.to_owned());
    }

    /// Revokes a removed device's login and ends its connections.
    pub fn revoke(&self, device: &str) {
        self.lock().remove(device);
        self.broker.disconnect_device(device);
    }

    /// The accept task, for the gateway to wait on at shutdown (once).
    pub fn take_task(&self) -> Option<JoinHandle<()>> {
        self.task.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Its address and clients, for the health report.
    pub fn report(&self) -> Value {
        json!({
            "listen": self.addr.to_string(),
            "clients": self.broker.clients(),
            "undelivered": self.broker.dropped.load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.secrets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Checks logins: the gateway's secret, or a device's password against its stored hash.
fn authenticator(secrets: Secrets, gateway_secret: String) -> Authenticate {
    Arc::new(move |username: &str, password: &str| {
        if username == GATEWAY_LOGIN {
            return same(password.as_bytes(), gateway_secret.as_bytes())
                .then_some(Identity::Gateway);
        }
        let offered = password_hash(password);
        let secrets = secrets.lock().unwrap_or_else(|e| e.into_inner());
        let stored = secrets.get(username)?;
        same(offered.as_bytes(), stored.as_bytes()).then(|| Identity::Device(username.to_owned()))
    })
}

/// SHA-256 of a device password, in hex.
pub fn password_hash(password: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(password.as_bytes()))
}

/// Compares in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_check_the_secret_or_the_device_hash() {
        let secrets: Secrets = Arc::default();
        secrets
            .lock()
            .unwrap()
            .insert("k1".into(), password_hash("pw"));
        let check = authenticator(secrets, "gw-secret".into());
        assert_eq!(check(GATEWAY_LOGIN, "gw-secret"), Some(Identity::Gateway));
        assert_eq!(check(GATEWAY_LOGIN, "nope"), None);
        assert_eq!(check("k1", "pw"), Some(Identity::Device("k1".into())));
        assert_eq!(check("k1", "wrong"), None);
        assert_eq!(check("k2", "pw"), None);
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"ab", b"abc"));
    }
}
