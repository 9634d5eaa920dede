//! The webhook gateway: incoming hooks post messages into a room as the hook's virtual
//! user (`@hook-<id>`); outgoing hooks POST a room's events to a URL from a durable outbox.
//!
//! Managed by chat (`!webhook ...`, see [`Webhooks::command`]) and by the admin API
//! ([`routes`]); both end in the same methods here, which check the caller's power in the
//! room.

mod incoming;
mod outgoing;
mod routes;
pub mod tables;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use converge_service::config::human_duration;
use converge_service::fetch::Policy;
use converge_service::ids::random_id;
use converge_service::{Error, Result, now_ms};
use futures_util::future::BoxFuture;
use regex::Regex;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::{Actor, Build, Command, Component, Context, Gateway, LogThrottle, Route, Stats};
use tables::{Store, SubscriptionRow, WebhookRow};

/// The webhook gateway in the registry.
pub static COMPONENT: Component = Component {
    name: "webhooks",
    user_prefix: Some("hook-"),
    commands: &["webhook"],
    event_types: &[],
    help: "- `!webhook new [signed]`, `!webhook list`, `!webhook revoke <id>`: incoming webhooks\n\
- `!webhook subscribe <url> [types=<t1,t2>] [prefix=<text>|regex=<re>]`, `!webhook subscriptions`, `!webhook unsubscribe <id>`: outgoing webhooks",
    migrations: tables::MIGRATIONS,
    example_config: include_str!("config.example.toml"),
    check_config: |section| WebhooksConfig::parse(section).map(drop),
    build: |build| Box::pin(Webhooks::build(build)),
};

/// `[gateways.webhooks]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Largest body an incoming webhook accepts.
    pub max_body_bytes: u64,
    /// Address ranges (CIDR) outgoing webhooks may reach although the blocklist refuses
    /// them, and ranges they never reach.
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    /// Time allowed for one outgoing delivery.
    #[serde(with = "human_duration")]
    pub timeout: Duration,
    /// The longest wait between retries of a failing outgoing webhook.
    #[serde(with = "human_duration")]
    pub max_retry_interval: Duration,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            allow: Vec::new(),
            deny: Vec::new(),
            timeout: Duration::from_secs(10),
            max_retry_interval: Duration::from_secs(3600),
        }
    }
}

impl WebhooksConfig {
    /// Reads and checks the section; errors name the key within it.
    fn parse(section: &toml::Value) -> std::result::Result<Self, (String, String)> {
        let config: Self = crate::parse_section(section)?;
        if config.max_body_bytes < 1024 {
            return Err(("max_body_bytes".into(), "must be at least 1024".into()));
        }
        for (key, list) in [("allow", &config.allow), ("deny", &config.deny)] {
            for range in list {
                range
                    .parse::<converge_core::net::Cidr>()
                    .map_err(|e| (key.to_owned(), e))?;
            }
        }
        Ok(config)
    }
}

/// What an outgoing webhook delivers.
#[derive(Clone, Debug, Default)]
pub struct NewSubscription {
    pub url: String,
    /// Event types delivered; empty for all.
    pub event_types: Vec<String>,
    /// A regular expression a message body must match.
    pub pattern: Option<String>,
}

/// Longest regular expression accepted as a filter, and the compiled size it may reach.
const MAX_PATTERN_LEN: usize = 500;
const MAX_REGEX_SIZE: usize = 256 * 1024;

pub struct Webhooks {
    context: Arc<Context>,
    store: Store,
    stats: Stats,
    policy: Policy,
    client: reqwest::Client,
    max_body_bytes: u64,
    max_retry_interval: Duration,
    /// Signatures accepted within the allowed skew, so a replayed request is refused.
    seen_signatures: Mutex<HashMap<Vec<u8>, i64>>,
    /// Wakes the delivery task when the outbox grows.
    outbox_grew: Notify,
    /// How many outgoing webhooks exist; the filler reads nothing while none does.
    subscription_count: AtomicUsize,
    /// Bumped whenever a subscription is made or deleted, so the filler rereads them only
    /// then.
    subscriptions_changed: AtomicU64,
    throttle: LogThrottle,
}

impl Gateway for Webhooks {
    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn routes(self: Arc<Self>) -> Vec<Route> {
        routes::routes(self)
    }

    fn command<'a>(&'a self, command: Command<'a>) -> BoxFuture<'a, Result<String>> {
        Box::pin(self.command(command.room_id, command.sender, command.args))
    }

    /// Starts the outbox filler and the delivery task.
    fn spawn(self: Arc<Self>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(self.clone().fill_outbox(stop.clone())),
            tokio::spawn(self.deliver(stop)),
        ]
    }
}

impl Webhooks {
    /// Builds the gateway (always on: hooks exist only once someone makes one).
    async fn build(build: Build) -> Result<Option<Arc<dyn Gateway>>> {
        let config = WebhooksConfig::parse(&build.config).map_err(|(key, message)| {
            Error::internal(format!("gateways.webhooks.{key}: {message}"))
        })?;
        let policy = Policy::new(&config.allow, &config.deny).map_err(Error::internal)?;
        let client = policy
            .client(config.timeout, "outgoing webhook")
            .map_err(Error::internal)?;
        let store = Store::new(build.tables);
        let count = store.subscriptions(None).await?.len();
        Ok(Some(Arc::new(Self {
            context: build.context,
            store,
            stats: Stats::new("webhooks", false),
            policy,
            client,
            max_body_bytes: config.max_body_bytes,
            max_retry_interval: config.max_retry_interval,
            seen_signatures: Mutex::default(),
            outbox_grew: Notify::new(),
            subscription_count: AtomicUsize::new(count),
            subscriptions_changed: AtomicU64::new(0),
            throttle: LogThrottle::new(Duration::from_secs(60)),
        })))
    }

    /// The URL a hook is posted to.
    pub fn hook_url(&self, hook_id: &str) -> String {
        format!("{}/_converge/hooks/{hook_id}", self.context.base_url)
    }

    /// Creates an incoming hook in a room; its virtual user is invited by `actor` and joins.
    pub async fn create_hook(
        &self,
        room_id: &str,
        actor: Actor<'_>,
        name: Option<&str>,
        signed: bool,
    ) -> Result<WebhookRow> {
        self.context.authorize(room_id, actor).await?;
        let hook_id = random_id(24);
        let name = name.filter(|n| !n.is_empty()).unwrap_or("Webhook");
        let user_id = self
            .context
            .virtual_user(&format!("hook-{hook_id}"), name)
            .await?;
        self.context
            .bring_in(room_id, actor.user_id, &user_id)
            .await?;
        let hook = WebhookRow {
            hook_id,
            room_id: room_id.to_owned(),
            user_id,
            secret: random_id(32),
            signed,
            created_by: actor.user_id.to_owned(),
            created_ts: now_ms(),
        };
        self.store.insert_webhook(&hook).await?;
        tracing::info!(hook = %hook.hook_id, room = room_id, by = actor.user_id, "webhook created");
        Ok(hook)
    }

    pub async fn hooks(&self, room_id: &str, actor: Actor<'_>) -> Result<Vec<WebhookRow>> {
        self.context.authorize(room_id, actor).await?;
        self.store.room_webhooks(room_id).await
    }

    /// Deletes a hook; its virtual user leaves the room.
    pub async fn revoke_hook(
        &self,
        hook_id: &str,
        actor: Actor<'_>,
        in_room: Option<&str>,
    ) -> Result<()> {
        let store = &self.store;
        let hook = store
            .webhook(hook_id)
            .await?
            .filter(|h| in_room.is_none_or(|room| h.room_id == room))
            .ok_or_else(|| Error::NotFound("no such webhook".into()))?;
        self.context.authorize(&hook.room_id, actor).await?;
        store.delete_webhook(hook_id).await?;
        if let Err(err) = self
            .context
            .services
            .rooms
            .leave(&hook.room_id, &hook.user_id, None)
            .await
        {
            tracing::warn!(hook = hook_id, error = %err, "a revoked webhook's user could not leave");
        }
        tracing::info!(hook = hook_id, by = actor.user_id, "webhook revoked");
        Ok(())
    }

    /// Subscribes a URL to a room's events from now on.
    pub async fn subscribe(
        &self,
        room_id: &str,
        actor: Actor<'_>,
        request: NewSubscription,
    ) -> Result<SubscriptionRow> {
        self.context.authorize(room_id, actor).await?;
        let url = url::Url::parse(&request.url)
            .map_err(|_| Error::InvalidParam("the URL is not valid".into()))?;
        self.policy.check_url(&url).map_err(|reason| {
            Error::forbidden(format!("{reason}: outgoing webhooks may not reach it"))
        })?;
        if let Some(pattern) = &request.pattern {
            compile(pattern)?;
        }
        let store = &self.store;
        let sub = SubscriptionRow {
            sub_id: random_id(12),
            room_id: room_id.to_owned(),
            url: url.to_string(),
            secret: random_id(32),
            event_types: request.event_types,
            pattern: request.pattern,
            created_by: actor.user_id.to_owned(),
            created_ts: now_ms(),
            after_pos: *self.context.services.stream.position().borrow(),
            failures: 0,
            retry_at: 0,
            last_error: None,
            last_success_ts: None,
        };
        store.insert_subscription(&sub).await?;
        self.subscription_count.fetch_add(1, Ordering::Relaxed);
        self.subscriptions_changed.fetch_add(1, Ordering::Release);
        tracing::info!(subscription = %sub.sub_id, room = room_id, by = actor.user_id, "outgoing webhook created");
        Ok(sub)
    }

    /// A room's outgoing hooks, each with how many deliveries are queued.
    pub async fn subscriptions(
        &self,
        room_id: &str,
        actor: Actor<'_>,
    ) -> Result<Vec<(SubscriptionRow, i64)>> {
        self.context.authorize(room_id, actor).await?;
        let store = &self.store;
        let mut out = Vec::new();
        for sub in store.subscriptions(Some(room_id)).await? {
            let queued = store.outbox_len(&sub.sub_id).await?;
            out.push((sub, queued));
        }
        Ok(out)
    }

    /// Retries a subscription waiting after failed deliveries now, rather than when its
    /// backoff ends.
    pub async fn retry(&self, sub_id: &str, actor: Actor<'_>) -> Result<()> {
        let sub = self
            .store
            .subscription(sub_id)
            .await?
            .ok_or_else(|| Error::NotFound("no such outgoing webhook".into()))?;
        self.context.authorize(&sub.room_id, actor).await?;
        self.store.retry_now(sub_id).await?;
        self.outbox_grew.notify_one();
        Ok(())
    }

    pub async fn unsubscribe(
        &self,
        sub_id: &str,
        actor: Actor<'_>,
        in_room: Option<&str>,
    ) -> Result<()> {
        let store = &self.store;
        let sub = store
            .subscription(sub_id)
            .await?
            .filter(|s| in_room.is_none_or(|room| s.room_id == room))
            .ok_or_else(|| Error::NotFound("no such outgoing webhook".into()))?;
        self.context.authorize(&sub.room_id, actor).await?;
        if store.delete_subscription(sub_id).await? {
            self.subscription_count.fetch_sub(1, Ordering::Relaxed);
            self.subscriptions_changed.fetch_add(1, Ordering::Release);
        }
        tracing::info!(
            subscription = sub_id,
            by = actor.user_id,
            "outgoing webhook deleted"
        );
        Ok(())
    }

    /// `!webhook ...` in a room: runs the command and returns the answer.
    pub async fn command(&self, room_id: &str, sender: &str, args: &str) -> Result<String> {
        let actor = Actor {
            user_id: sender,
            server_admin: false,
        };
        let (verb, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        let rest = rest.trim();
        match verb {
            "new" | "create" => {
                let signed = rest.split_whitespace().any(|w| w == "signed");
                let name: Vec<&str> = rest.split_whitespace().filter(|w| *w != "signed").collect();
                let name = name.join(" ");
                let hook = self.create_hook(room_id, actor, Some(&name), signed).await?;
                let signing = if signed {
                    "Every POST must be signed: header `X-Converge-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, t + \".\" + body)>`."
                } else {
                    "Signing is optional: a POST with an `X-Converge-Signature` header is checked against the secret."
                };
                let credentials = format!(
                    "Webhook `{}` (in {room_id}). POST JSON `{{\"text\": \"...\"}}` (Slack- and Discord-style bodies and text/plain work too) to:\n\n`{}`\n\nSecret: `{}`\n\n{signing}",
                    hook.hook_id,
                    self.hook_url(&hook.hook_id),
                    hook.secret
                );
                self.context.tell_privately(sender, &credentials).await?;
                Ok(format!(
                    "Webhook `{}` created; it posts as {}. I sent you its URL and secret in a direct message.",
                    hook.hook_id, hook.user_id
                ))
            }
            "list" => {
                let hooks = self.hooks(room_id, actor).await?;
                if hooks.is_empty() {
                    return Ok("This room has no incoming webhooks.".into());
                }
                let lines: Vec<String> = hooks
                    .iter()
                    .map(|h| {
                        format!(
                            "- `{}` posting as {}{}",
                            h.hook_id,
                            h.user_id,
                            if h.signed { " (signed)" } else { "" },
                        )
                    })
                    .collect();
                Ok(format!("Incoming webhooks:\n{}", lines.join("\n")))
            }
            "revoke" | "delete" => {
                let id = rest.split_whitespace().next().ok_or_else(|| Error::MissingParam("usage: !webhook revoke <id>".into()))?;
                self.revoke_hook(id, actor, Some(room_id)).await?;
                Ok(format!("Webhook `{id}` revoked."))
            }
            "subscribe" => {
                let request = parse_subscription(rest)?;
                let sub = self.subscribe(room_id, actor, request).await?;
                let credentials = format!(
                    "Outgoing webhook `{}` (in {room_id}, to {}). Its deliveries carry `X-Converge-Signature` made with the secret `{}`.",
                    sub.sub_id,
                    origin(&sub.url),
                    sub.secret
                );
                self.context.tell_privately(sender, &credentials).await?;
                Ok(format!(
                    "Outgoing webhook `{}` created: this room's events are POSTed to {}. I sent you its signing secret in a direct message.",
                    sub.sub_id,
                    origin(&sub.url)
                ))
            }
            "subscriptions" => {
                let subs = self.subscriptions(room_id, actor).await?;
                if subs.is_empty() {
                    return Ok("This room has no outgoing webhooks.".into());
                }
                let lines: Vec<String> = subs
                    .iter()
                    .map(|(s, queued)| {
                        let mut line = format!("- `{}` → {} ({queued} queued", s.sub_id, origin(&s.url));
                        if s.failures > 0 {
                            line.push_str(&format!(
                                ", {} failed attempts, last: {}",
                                s.failures,
                                s.last_error.as_deref().unwrap_or("?")
                            ));
                        }
                        line.push(')');
                        line
                    })
                    .collect();
                Ok(format!("Outgoing webhooks:\n{}", lines.join("\n")))
            }
            "unsubscribe" => {
                let id = rest.split_whitespace().next().ok_or_else(|| Error::MissingParam("usage: !webhook unsubscribe <id>".into()))?;
                self.unsubscribe(id, actor, Some(room_id)).await?;
                Ok(format!("Outgoing webhook `{id}` deleted."))
            }
            _ => Err(Error::InvalidParam(
                "usage: !webhook new [signed] [name] | list | revoke <id> | subscribe <url> [types=a,b] [prefix=<text>|regex=<re>] | subscriptions | unsubscribe <id>".into(),
            )),
        }
    }
}

/// `<url> [types=a,b] [prefix=<text>|regex=<re>]`; a prefix or regex runs to the end.
fn parse_subscription(args: &str) -> Result<NewSubscription> {
    let mut request = NewSubscription::default();
    let mut rest = args.trim();
    let (url, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if url.is_empty() {
        return Err(Error::MissingParam(
            "usage: !webhook subscribe <url> [types=a,b] [prefix=<text>|regex=<re>]".into(),
        ));
    }
    request.url = url.to_owned();
    rest = tail.trim();
    while !rest.is_empty() {
        if let Some(prefix) = rest.strip_prefix("prefix=") {
            request.pattern = Some(format!("^{}", regex::escape(prefix)));
            break;
        }
        if let Some(pattern) = rest.strip_prefix("regex=") {
            request.pattern = Some(pattern.to_owned());
            break;
        }
        let (word, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        match word.strip_prefix("types=") {
            Some(types) => {
                request.event_types = types
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            None => return Err(Error::InvalidParam(format!("unknown option {word:?}"))),
        }
        rest = tail.trim();
    }
    Ok(request)
}

/// A URL's scheme, host and port only: paths and queries often hold tokens.
pub(crate) fn origin(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "(invalid URL)".into())
}

/// Compiles a body filter, refusing ones too long or too costly.
fn compile(pattern: &str) -> Result<Regex> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(Error::InvalidParam(format!(
            "the regex is longer than {MAX_PATTERN_LEN} characters"
        )));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_SIZE)
        .build()
        .map_err(|e| Error::InvalidParam(format!("the regex does not compile: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_options_parse() {
        let s = parse_subscription(
            "https://example.org/x types=m.room.message,m.reaction prefix=!deploy now",
        )
        .unwrap();
        assert_eq!(s.url, "https://example.org/x");
        assert_eq!(s.event_types, ["m.room.message", "m.reaction"]);
        assert_eq!(s.pattern.as_deref(), Some("^!deploy now"));
        let s = parse_subscription("https://e.org prefix=a.b").unwrap();
        assert_eq!(s.pattern.as_deref(), Some("^a\\.b"));
        let s = parse_subscription("https://example.org/x regex=^(a|b)+$").unwrap();
        assert_eq!(s.pattern.as_deref(), Some("^(a|b)+$"));
        assert!(s.event_types.is_empty());
        assert!(parse_subscription("").is_err());
        assert!(parse_subscription("https://e.org colour=red").is_err());
    }

    #[test]
    fn costly_or_broken_patterns_are_refused() {
        assert!(compile("^ok$").is_ok());
        assert!(compile("(unclosed").is_err());
        assert!(compile(&"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
        assert!(compile("\\w{1000}\\w{1000}\\w{1000}").is_err());
    }
}
