//! The webhook gateway's HTTP endpoints: `POST /_converge/hooks/{hook_id}` (the hook
//! itself) and its part of the admin API under `/_converge/admin/v1/` (server admins, or
//! members with the power to change the room's state).

use std::sync::Arc;

use converge_service::{Error, Result};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{NewSubscription, Webhooks};
use crate::http::{Access, Method, Request, Route};
use crate::{Actor, signature};

pub(super) fn routes(webhooks: Arc<Webhooks>) -> Vec<Route> {
    let max_body = webhooks.max_body_bytes;
    let route = |method, path, access, handler: fn(Arc<Webhooks>, Request) -> _| {
        let webhooks = webhooks.clone();
        Route::new(method, path, access, move |request| {
            handler(webhooks.clone(), request)
        })
    };
    vec![
        route(
            Method::POST,
            "/_converge/hooks/{hook_id}",
            Access::Public,
            post_hook,
        )
        .max_body(max_body),
        route(
            Method::GET,
            "/_converge/admin/v1/rooms/{room_id}/webhooks",
            Access::User,
            list_webhooks,
        ),
        route(
            Method::POST,
            "/_converge/admin/v1/rooms/{room_id}/webhooks",
            Access::User,
            create_webhook,
        ),
        route(
            Method::DELETE,
            "/_converge/admin/v1/webhooks/{hook_id}",
            Access::User,
            delete_webhook,
        ),
        route(
            Method::GET,
            "/_converge/admin/v1/rooms/{room_id}/subscriptions",
            Access::User,
            list_subscriptions,
        ),
        route(
            Method::POST,
            "/_converge/admin/v1/rooms/{room_id}/subscriptions",
            Access::User,
            create_subscription,
        ),
        route(
            Method::DELETE,
            "/_converge/admin/v1/subscriptions/{sub_id}",
            Access::User,
            delete_subscription,
        ),
        route(
            Method::POST,
            "/_converge/admin/v1/subscriptions/{sub_id}/retry",
            Access::User,
            retry_subscription,
        ),
    ]
}

pub(crate) type Answer = std::pin::Pin<Box<dyn Future<Output = Result<Value>> + Send>>;

fn post_hook(webhooks: Arc<Webhooks>, request: Request) -> Answer {
    Box::pin(async move {
        let event_id = webhooks
            .receive(
                request.param("hook_id")?,
                request.header("content-type"),
                request.header(signature::HEADER),
                &request.body,
            )
            .await?;
        Ok(json!({ "event_id": event_id }))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    name: Option<String>,
    #[serde(default)]
    signed: bool,
}

fn create_webhook(webhooks: Arc<Webhooks>, request: Request) -> Answer {
    Box::pin(async move {
        let body: NewWebhook = request.json()?;
        let hook = webhooks
            .create_hook(
                request.param("room_id")?,
                Actor::of(request.caller()?),
                body.name.as_deref(),
                body.signed,
            )
            .await?;
        Ok(json!({
            "hook_id": hook.hook_id,
            "url": webhooks.hook_url(&hook.hook_id),
            "secret": hook.secret,
            "user_id": hook.user_id,
            "room_id": hook.room_id,
            "signed": hook.signed,
        }))
    })
}

fn list_webhooks(webhooks: Arc<Webhooks>, request: Request) -> Answer {
    Box::pin(async move {
        let hooks = webhooks
            .hooks(request.param("room_id")?, Actor::of(request.caller()?))
            .await?;
        let hooks: Vec<Value> = hooks
            .iter()
            .map(|h| {
                json!({
                    "hook_id": h.hook_id,
                    "url": webhooks.hook_url(&h.hook_id),
                    "user_id": h.user_id,
                    "signed": h.signed,
                    "created_by": h.created_by,
                    "created_ts": h.created_ts,
                })
            })
            .collect();
        Ok(json!({ "webhooks": hooks }))
    })
}

fn delete_webhook(webhooks: Arc<Webhooks>, request: Request) -> Answer {
    Box::pin(async move {
        webhooks
            .revoke_hook(
                request.param("hook_id")?,
                Actor::of(request.caller()?),
                None,
            )
            .await?;
        Ok(json!({}))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSubscriptionBody {
    url: String,
    #[serde(default)]
    event_types: Vec<String>,
    prefix: Option<String>,
    regex: Option<String>,
}

fn create_subscription(webhooks: Arc<Webhooks>, request: Request) -> Answer {
    Box::pin(async move {
        let body: NewSubscriptionBody = request.json()?;
        let pattern = match (body.prefix, body.regex) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidParam(
                    "give a prefix or a regex, not both".into(),
                ));
            }
            (Some(prefix), None) => Some(format!("^{}", regex::escape(&prefix))),
            (None, regex) => regex,
        };
        let new = NewSubscription {
            url: body.url,
            event_types: body.event_types,
            pattern,
        };
        let sub = webhooks
            .subscribe(request.param("room_id")?, Actor::of(request.caller()?), new)
            .await?;
        Ok(json!({
            "subscription_id": sub.sub_id,
            "url": sub.url,
            "secret": sub.secret,
            "room_id": sub.room_id,
            "event_types": sub.event_types,
            "pattern": sub.pattern,
        }))
    })
}

fn list_subscriptions(webhooks: Arc<Webhooks>, request: Request) -> Answer {
    Box::pin(async move {
        let subs = webhooks
            .subscriptions(request.param("room_id")?, Actor::of(request.caller()?))
            .await?;
        let subs: Vec<Value> = subs
            .iter()
            .map(|(s, queued)| {
                json!({
                    "subscription_id": s.sub_id,
                    "url": s.url,
                    "event_types": s.event_types,
                    "pattern": s.pattern,
                    "queued": queued,
                    "failures": s.failures,
                    "last_error": s.last_error,
                    "last_success_ts": s.last_success_ts,
                    "retry_at": (s.retry_at > 0).then_some(s.retry_at),
                })
            })
            .collect();
        Ok(json!({ "subscriptions": subs }))
    })
}

fn retry_subscription(webhooks: Arc<Webhooks>, request: Request) -> Answer {
    Box::pin(async move {
        webhooks
            .retry(request.param("sub_id")?, Actor::of(request.caller()?))
            .await?;
        Ok(json!({}))
    })
}

fn delete_subscription(webhooks: Arc<Webhooks>, request: Request) -> Answer {
    Box::pin(async move {
        webhooks
            .unsubscribe(request.param("sub_id")?, Actor::of(request.caller()?), None)
            .await?;
        Ok(json!({}))
    })
}
