//! `[gateways.mqtt]` and `[gateways.mqtt.broker]`: the broker to connect to (or the
//! embedded one to run), topics and limits.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    pub enabled: bool,
    /// The broker, `mqtt://host:port`.
    pub url: String,
    /// Topics are `<prefix>/devices/<id>/{telemetry,status,commands,acks}`.
    pub topic_prefix: String,
    pub client_id: String,
    pub username: String,
    pub password: String,
    /// Larger payloads are dropped.
    pub max_payload_bytes: usize,
    /// Telemetry samples kept per device (older ones are deleted).
    pub max_samples_per_device: u32,
    pub broker: BrokerConfig,
}

/// The embedded MQTT broker. When enabled, the gateway connects to it instead of `url`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub max_connections: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            max_connections: 1000,
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            url: "mqtt://127.0.0.1:1883".into(),
            topic_prefix: "converge".into(),
            client_id: "converge".into(),
            username: String::new(),
            password: String::new(),
            max_payload_bytes: 16 * 1024,
            max_samples_per_device: 10_000,
            broker: BrokerConfig::default(),
        }
    }
}

impl MqttConfig {
    /// Reads and checks the section; errors name the key within it.
    pub fn parse(section: &toml::Value) -> Result<Self, (String, String)> {
        let config: Self = crate::parse_section(section)?;
        let refuse = |key: &str, message: &str| Err((key.to_owned(), message.to_owned()));
        if config.enabled && !config.broker.enabled {
            config.address().map_err(|e| ("url".to_owned(), e))?;
        }
        if config.broker.max_connections == 0 {
            return refuse("broker.max_connections", "must be at least 1");
        }
        let prefix = &config.topic_prefix;
        if prefix.is_empty()
            || prefix.contains(['+', '#'])
            || prefix.starts_with('/')
            || prefix.ends_with('/')
        {
            return refuse(
                "topic_prefix",
                "must be non-empty, without wildcards or leading/trailing '/'",
            );
        }
        if config.max_payload_bytes == 0 || config.max_samples_per_device == 0 {
            return refuse(
                "",
                "max_payload_bytes and max_samples_per_device must be positive",
            );
        }
        Ok(config)
    }

    /// The broker's host and port from `url`.
    pub fn address(&self) -> Result<(String, u16), String> {
        let url = url::Url::parse(&self.url).map_err(|e| e.to_string())?;
        if url.scheme() != "mqtt" {
            return Err("must be mqtt://host:port".into());
        }
        let host = url.host_str().ok_or("the URL has no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok((host.to_owned(), url.port().unwrap_or(1883)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> toml::Value {
        toml::Value::Table(text.parse().unwrap())
    }

    #[test]
    fn bad_sections_name_the_key() {
        assert!(MqttConfig::parse(&section("")).is_ok());
        for (text, key) in [
            ("enabled = true\nurl = \"http://x\"", "url"),
            ("topic_prefix = \"a/#\"", "topic_prefix"),
            ("[broker]\nmax_connections = 0", "broker.max_connections"),
            ("colour = 1", ""),
        ] {
            let (got, _) = MqttConfig::parse(&section(text)).unwrap_err();
            assert!(got.contains(key), "{text}: {got}");
        }
    }
}
