//! The configuration: a TOML file, overlaid with `CONVERGE_*` environment variables.
//!
//! Unknown keys and bad values are errors that name the key; `converge config example`
//! prints `config.example.toml`, which a test keeps equal to the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The commented example configuration, with every key at its default.
pub const EXAMPLE: &str = include_str!("../config.example.toml");

/// Environment variables with this prefix override config keys.
const ENV_PREFIX: &str = "CONVERGE_";
/// Variables with this prefix belong to the test suite, not to the server.
const ENV_TEST_PREFIX: &str = "CONVERGE_TEST_";

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server_name: String,
    pub listen: SocketAddr,
    pub public_base_url: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub log_level: String,
    pub log_format: LogFormat,
    pub registration: RegistrationConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub rate_limits: RateLimitsConfig,
    pub metrics: MetricsConfig,
    pub media: MediaConfig,
    pub push: PushConfig,
    pub calls: CallsConfig,
    pub appservices: AppServicesConfig,
    pub gateways: GatewaysConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: "localhost".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8008)),
            public_base_url: String::new(),
            data_dir: PathBuf::from("./converge-data"),
            database_url: String::new(),
            log_level: "info".into(),
            log_format: LogFormat::Text,
            registration: RegistrationConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            rate_limits: RateLimitsConfig::default(),
            metrics: MetricsConfig::default(),
            media: MediaConfig::default(),
            push: PushConfig::default(),
            calls: CallsConfig::default(),
            appservices: AppServicesConfig::default(),
            gateways: GatewaysConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    Open,
    Token,
    Closed,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    pub mode: RegistrationMode,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            mode: RegistrationMode::Token,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(with = "human_duration")]
    pub refreshable_token_lifetime: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            refreshable_token_lifetime: Duration::from_secs(300),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_request_bytes: u64,
    pub max_db_connections: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 1024 * 1024,
            max_db_connections: 8,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    pub enabled: bool,
    pub login: Rate,
    pub login_account: Rate,
    pub register: Rate,
    pub message: Rate,
    pub upload: Rate,
    pub webhook: Rate,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            login: Rate {
                per_second: 0.5,
                burst: 10,
            },
            login_account: Rate {
                per_second: 0.1,
                burst: 5,
            },
            register: Rate {
                per_second: 0.2,
                burst: 5,
            },
            message: Rate {
                per_second: 10.0,
                burst: 50,
            },
            upload: Rate {
                per_second: 1.0,
                burst: 20,
            },
            webhook: Rate {
                per_second: 2.0,
                burst: 20,
            },
        }
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 9108)),
        }
    }
}

/// Which media the legacy, unauthenticated download endpoints serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LegacyDownload {
    /// Media uploaded before this server first started with authenticated media.
    BeforeFreeze,
    All,
    None,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    pub max_upload_size: u64,
    pub legacy_download: LegacyDownload,
    pub max_thumbnail_pixels: u64,
    /// Reservations (`/create`) a user may hold at once.
    pub max_pending_uploads: u32,
    pub url_preview: UrlPreviewConfig,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            max_upload_size: 50 * 1024 * 1024,
            legacy_download: LegacyDownload::BeforeFreeze,
            max_thumbnail_pixels: 32 * 1024 * 1024,
            max_pending_uploads: 20,
            url_preview: UrlPreviewConfig::default(),
        }
    }
}

/// `[appservices]`: application services (bridges) and how they are reached.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppServicesConfig {
    /// Registration files (YAML, as bridges generate them). `converge appservice add FILE`
    /// also registers files in `<data_dir>/appservices/`.
    pub registration_files: Vec<PathBuf>,
    /// Whether an exclusive user namespace may cover users that exist already and were
    /// not made by that appservice (refused by default: it would take their IDs over).
    pub allow_existing_users: bool,
    /// Time allowed for one transaction or query to an appservice.
    #[serde(with = "human_duration")]
    pub timeout: Duration,
    /// The longest wait between retries of an appservice that is down.
    #[serde(with = "human_duration")]
    pub max_retry_interval: Duration,
}

impl Default for AppServicesConfig {
    fn default() -> Self {
        Self {
            registration_files: Vec::new(),
            allow_existing_users: false,
            timeout: Duration::from_secs(30),
            max_retry_interval: Duration::from_secs(300),
        }
    }
}

/// `[push]`: delivery to push gateways (the pushers clients register).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Address ranges push gateways may be at although the blocklist refuses them, and
    /// ranges never reached.
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    /// Time allowed for one delivery.
    #[serde(with = "human_duration")]
    pub timeout: Duration,
    /// The longest wait between retries of a failing push gateway.
    #[serde(with = "human_duration")]
    pub max_retry_interval: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            deny: Vec::new(),
            timeout: Duration::from_secs(10),
            max_retry_interval: Duration::from_secs(3600),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UrlPreviewConfig {
    pub enabled: bool,
    /// Address ranges fetched even though the blocklist would refuse them.
    pub allow: Vec<String>,
    /// Address ranges never fetched.
    pub deny: Vec<String>,
    pub max_bytes: u64,
    #[serde(with = "human_duration")]
    pub timeout: Duration,
}

impl Default for UrlPreviewConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allow: Vec::new(),
            deny: Vec::new(),
            max_bytes: 1024 * 1024,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The `[calls]` section: what voice and video calls need from the server.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallsConfig {
    pub turn: TurnConfig,
}

/// A TURN server that shares a secret with Converge (the TURN REST API scheme that coturn's
/// `use-auth-secret` implements): Converge hands out time-limited credentials derived from
/// the secret, so no per-user accounts exist on the TURN server.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// `turn:` and `turns:` URIs clients connect to.
    pub external_uris: Vec<String>,
    /// The secret shared with the TURN server; empty means no TURN server is configured.
    pub shared_secret: String,
    /// How long handed-out credentials stay valid.
    #[serde(with = "human_duration")]
    pub ttl: Duration,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            external_uris: Vec::new(),
            shared_secret: String::new(),
            ttl: Duration::from_secs(86_400),
        }
    }
}

/// The `[gateways]` section: the bot's name, and one subsection per gateway
/// (`[gateways.webhooks]`, `[gateways.mqtt]`, ...). The subsections belong to the gateways:
/// each is kept here as TOML and read (and checked, naming the key) by its gateway, so
/// adding a gateway changes nothing in this file.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewaysConfig {
    /// Localpart of the bot that answers chat commands (`!webhook`, `!device`).
    pub bot: String,
    /// Each gateway's subsection, by the gateway's name.
    pub sections: toml::Table,
}

impl Default for GatewaysConfig {
    fn default() -> Self {
        Self {
            bot: "converge".into(),
            sections: toml::Table::new(),
        }
    }
}

impl GatewaysConfig {
    /// A gateway's subsection (empty when the file has none: all defaults).
    pub fn section(&self, name: &str) -> toml::Value {
        self.sections
            .get(name)
            .cloned()
            .unwrap_or_else(|| toml::Value::Table(toml::Table::new()))
    }
}

impl GatewaysConfig {
    /// Sets `key` (dotted, below `[gateways]`: `mqtt.broker.enabled`) to `value`, making
    /// sections as needed; for tests and embedders that build a configuration in code.
    pub fn set(&mut self, key: &str, value: impl Into<toml::Value>) {
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().expect("split yields at least one part");
        let mut table = &mut self.sections;
        for part in parts {
            let entry = table
                .entry(part.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            table = entry.as_table_mut().expect("made a table above");
        }
        table.insert(last.to_owned(), value.into());
    }
}

impl Serialize for GatewaysConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut table = self.sections.clone();
        table.insert("bot".into(), toml::Value::String(self.bot.clone()));
        table.serialize(s)
    }
}

impl<'de> Deserialize<'de> for GatewaysConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut sections = toml::Table::deserialize(d)?;
        let bot = match sections.remove("bot") {
            Some(toml::Value::String(bot)) => bot,
            Some(_) => return Err(serde::de::Error::custom("`bot` must be a string")),
            None => Self::default().bot,
        };
        if let Some((name, _)) = sections.iter().find(|(_, v)| !v.is_table()) {
            return Err(serde::de::Error::custom(format!(
                "`{name}` must be a section ([gateways.{name}])"
            )));
        }
        Ok(Self { bot, sections })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl Config {
    /// Loads the file at `path` (or the defaults if `None`), then applies environment
    /// overrides from `env`, then validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Syntax {
                        path: path.to_owned(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            if name.starts_with(ENV_TEST_PREFIX) {
                continue;
            }
            if let Some(key) = name.strip_prefix(ENV_PREFIX) {
                overlay(&mut table, key, &value)?;
            }
        }
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                ConfigError::Invalid {
                    key: e.path().to_string(),
                    message: e.into_inner().to_string(),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                message: message.into(),
            })
        };
        if ruma::ServerName::parse(&self.server_name).is_err() {
            return invalid("server_name", "not a valid Matrix server name");
        }
        if !(self.database_url.is_empty()
            || self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres:")
            || self.database_url.starts_with("postgresql:"))
        {
            return invalid("database_url", "must start with sqlite:// or postgres://");
        }
        if self.limits.max_request_bytes < 1024 {
            return invalid("limits.max_request_bytes", "must be at least 1024");
        }
        if self.limits.max_db_connections == 0 {
            return invalid("limits.max_db_connections", "must be at least 1");
        }
        for (key, rate) in [
            ("rate_limits.login", self.rate_limits.login),
            ("rate_limits.login_account", self.rate_limits.login_account),
            ("rate_limits.register", self.rate_limits.register),
            ("rate_limits.message", self.rate_limits.message),
            ("rate_limits.upload", self.rate_limits.upload),
            ("rate_limits.webhook", self.rate_limits.webhook),
        ] {
            if !(rate.per_second.is_finite() && rate.per_second > 0.0) || rate.burst == 0 {
                return invalid(key, "per_second must be positive and burst at least 1");
            }
        }
        for (key, list) in [
            ("media.url_preview.allow", &self.media.url_preview.allow),
            ("media.url_preview.deny", &self.media.url_preview.deny),
            ("push.allow", &self.push.allow),
            ("push.deny", &self.push.deny),
        ] {
            for range in list {
                if let Err(err) = range.parse::<converge_core::net::Cidr>() {
                    return invalid(key, &err);
                }
            }
        }
        if converge_core::id::validate_localpart(&self.gateways.bot, "localhost").is_err() {
            return invalid("gateways.bot", "not a valid localpart");
        }
        for uri in &self.calls.turn.external_uris {
            if !(uri.starts_with("turn:") || uri.starts_with("turns:")) {
                return invalid(
                    "calls.turn.external_uris",
                    "each URI must start with turn: or turns:",
                );
            }
        }
        if self.calls.turn.ttl.is_zero() {
            return invalid("calls.turn.ttl", "must be positive");
        }
        if self.media.max_upload_size == 0 {
            return invalid("media.max_upload_size", "must be positive");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return invalid("log_level", "not a valid log filter");
        }
        Ok(())
    }

    /// The store URL: `database_url`, or the SQLite file in the data directory.
    pub fn store_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("converge.db").display())
        } else {
            self.database_url.clone()
        }
    }

    /// The base URL clients should use, for `/.well-known/matrix/client`.
    pub fn base_url(&self, bound: SocketAddr) -> String {
        if self.public_base_url.is_empty() {
            format!("http://{bound}/")
        } else {
            self.public_base_url.clone()
        }
    }
}

/// Sets `KEY__SUB` (already stripped of the prefix) in the table to `value`, parsed as a
/// TOML value where it is one (numbers, booleans) and kept as a string otherwise.
fn overlay(table: &mut toml::Table, key: &str, value: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = key.split("__").map(str::to_lowercase).collect();
    let (last, parents) = path.split_last().expect("split yields at least one part");
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| ConfigError::Invalid {
            key: path.join("."),
            message: format!("`{part}` is not a section"),
        })?;
    }
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table())
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    current.insert(last.clone(), parsed);
    Ok(())
}

/// Durations written as `30s`, `5m`, `2h`, `7d` or `1w`.
pub mod human_duration {
    use super::*;

    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration like 30s, 5m, 2h or 7d"))?;
        let seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(format!("`{text}` has no unit: use s, m, h, d or w")),
        };
        number
            .checked_mul(seconds)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("`{text}` is too long"))
    }

    pub fn format(duration: &Duration) -> String {
        let secs = duration.as_secs();
        for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
            if secs > 0 && secs.is_multiple_of(size) {
                return format!("{}{unit}", secs / size);
            }
        }
        format!("{secs}s")
    }

    pub fn serialize<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_example_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, EXAMPLE).unwrap();
        assert_eq!(
            Config::load(Some(&path), env(&[])).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn the_example_covers_every_key() {
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let example: toml::Value = EXAMPLE.parse::<toml::Table>().unwrap().into();
        fn keys(value: &toml::Value, prefix: &str, out: &mut Vec<String>) {
            if let toml::Value::Table(table) = value {
                for (k, v) in table {
                    let key = format!("{prefix}{k}");
                    keys(v, &format!("{key}."), out);
                    out.push(key);
                }
            }
        }
        let (mut want, mut have) = (Vec::new(), Vec::new());
        keys(&defaults, "", &mut want);
        keys(&example, "", &mut have);
        want.sort();
        have.sort();
        assert_eq!(want, have);
    }

    #[test]
    fn environment_overrides_keys() {
        let config = Config::load(
            None,
            env(&[
                ("CONVERGE_REGISTRATION__MODE", "open"),
                ("CONVERGE_SERVER_NAME", "example.org"),
                ("CONVERGE_LIMITS__MAX_REQUEST_BYTES", "4096"),
                ("CONVERGE_RATE_LIMITS__ENABLED", "false"),
                ("CONVERGE_AUTH__REFRESHABLE_TOKEN_LIFETIME", "2h"),
                ("CONVERGE_TEST_POSTGRES_URL", "postgres://ignored"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(config.registration.mode, RegistrationMode::Open);
        assert_eq!(config.server_name, "example.org");
        assert_eq!(config.limits.max_request_bytes, 4096);
        assert!(!config.rate_limits.enabled);
        assert_eq!(
            config.auth.refreshable_token_lifetime,
            Duration::from_secs(7200)
        );
    }

    #[test]
    fn bad_keys_and_values_name_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("CONVERGE_REGISTRATION__MODE", "sometimes")],
                "registration.mode",
            ),
            (&[("CONVERGE_BOGUS", "1")], "bogus"),
            (&[("CONVERGE_LISTEN", "nowhere")], "listen"),
            (
                &[("CONVERGE_LIMITS__MAX_REQUEST_BYTES", "-5")],
                "limits.max_request_bytes",
            ),
            (
                &[("CONVERGE_LIMITS__MAX_REQUEST_BYTES", "10")],
                "limits.max_request_bytes",
            ),
            (&[("CONVERGE_SERVER_NAME", "not a name")], "server_name"),
            (&[("CONVERGE_DATABASE_URL", "mysql://x")], "database_url"),
            (
                &[("CONVERGE_AUTH__REFRESHABLE_TOKEN_LIFETIME", "soon")],
                "auth.refreshable_token_lifetime",
            ),
            (
                &[("CONVERGE_RATE_LIMITS__LOGIN__BURST", "0")],
                "rate_limits.login",
            ),
            (
                &[(
                    "CONVERGE_CALLS__TURN__EXTERNAL_URIS",
                    "[\"stun:example.org\"]",
                )],
                "calls.turn.external_uris",
            ),
            (&[("CONVERGE_CALLS__TURN__TTL", "0s")], "calls.turn.ttl"),
        ];
        for (vars, key) in cases {
            let err = Config::load(None, env(vars))
                .expect_err("must be refused")
                .to_string();
            assert!(err.contains(key), "{err:?} should name {key}");
        }
    }

    #[test]
    fn unknown_keys_in_a_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[registration]\nmode = \"open\"\ncolour = \"blue\"\n",
        )
        .unwrap();
        let err = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("registration") && err.contains("colour"),
            "{err}"
        );
    }

    #[test]
    fn durations() {
        for (text, secs) in [
            ("30s", 30),
            ("5m", 300),
            ("2h", 7200),
            ("7d", 604_800),
            ("1w", 604_800),
        ] {
            assert_eq!(human_duration::parse(text), Ok(Duration::from_secs(secs)));
        }
        for bad in ["", "5", "m", "5x", "-5m", "99999999999999999999w"] {
            assert!(human_duration::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(human_duration::format(&Duration::from_secs(300)), "5m");
    }
}
