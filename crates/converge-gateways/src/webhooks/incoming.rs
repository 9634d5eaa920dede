//! Incoming webhooks: a POST to `/_converge/hooks/<id>` becomes an `m.room.message` from
//! the hook's virtual user.
//!
//! Accepted bodies: `{"text", "format": "markdown"|"plain"}`, Slack-style `{"text"}`,
//! Discord-style `{"content"}` (both Markdown), or `text/plain` (plain).

use serde_json::Value;

use converge_service::ratelimit::Limit;
use converge_service::rooms::NewEvent;
use converge_service::{Error, Result, now_ms};

use super::Webhooks;
use crate::{Stats, markdown, signature};

/// Longest message text accepted (the event must also fit the 64 KiB PDU limit).
const MAX_TEXT: usize = 32 * 1024;

impl Webhooks {
    /// Handles one POST: checks the hook, its rate, the signature, then posts the message
    /// and returns its event ID.
    pub async fn receive(
        &self,
        hook_id: &str,
        content_type: Option<&str>,
        signature_header: Option<&str>,
        body: &[u8],
    ) -> Result<String> {
        let hook = self
            .store
            .webhook(hook_id)
            .await?
            .ok_or_else(|| Error::NotFound("no such webhook".into()))?;
        self.context
            .services
            .limiter
            .check(Limit::Webhook, hook_id)?;
        Stats::add(&self.stats.messages_in);
        let accepted = match signature_header {
            Some(header) => Some(self.check_signature(&hook.secret, header, body)?),
            None if hook.signed => {
                return Err(Error::Unauthorized(
                    "this webhook needs an X-Converge-Signature header".into(),
                ));
            }
            None => None,
        };
        let posted = async {
            let (text, markdown) = parse_body(content_type, body)?;
            let content = markdown::message_content(&text, markdown);
            let event = NewEvent::message("m.room.message", content);
            self.context
                .services
                .rooms
                .send(&hook.room_id, &hook.user_id, event)
                .await
        };
        match posted.await {
            Ok((event_id, _)) => {
                self.context.services.analytics.count("hook_posts", 1);
                Ok(event_id)
            }
            Err(err) => {
                // A request that was refused or failed may be sent again, same signature.
                if let Some(mac) = accepted {
                    self.seen_signatures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&mac);
                }
                Err(err)
            }
        }
    }

    /// Checks a signature and that it was not used before; returns it (the replay key).
    fn check_signature(&self, secret: &str, header: &str, body: &[u8]) -> Result<Vec<u8>> {
        let now = now_ms() / 1000;
        let (timestamp, mac) = signature::verify(secret, header, body, now)
            .map_err(|refused| Error::Unauthorized(refused.message().into()))?;
        let mut seen = self
            .seen_signatures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, at| now.abs_diff(*at) <= signature::MAX_SKEW_SECS as u64);
        }
        if seen.insert(mac.clone(), timestamp).is_some() {
            return Err(Error::Unauthorized(
                "this request was already received (replay)".into(),
            ));
        }
        Ok(mac)
    }
}

/// The message text of a hook's body, and whether it is Markdown.
fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<(String, bool)> {
    let media_type = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|ct| ct.trim().to_ascii_lowercase());
    let (text, markdown) = if media_type.as_deref() == Some("text/plain") {
        let text = std::str::from_utf8(body)
            .map_err(|_| Error::BadJson("the body is not UTF-8 text".into()))?;
        (text.to_owned(), false)
    } else {
        let value: Value = serde_json::from_slice(body)
            .map_err(|_| Error::NotJson("the body is not valid JSON".into()))?;
        let text = ["text", "content"]
            .iter()
            .find_map(|key| value.get(key).and_then(Value::as_str))
            .ok_or_else(|| {
                Error::BadJson("the body needs a \"text\" (or \"content\") string".into())
            })?;
        let markdown = match value.get("format").and_then(Value::as_str) {
            None | Some("markdown") => true,
            Some("plain") => false,
            Some(other) => {
                return Err(Error::InvalidParam(format!(
                    "unknown format {other:?}: use \"markdown\" or \"plain\""
                )));
            }
        };
        (text.to_owned(), markdown)
    };
    if text.trim().is_empty() {
        return Err(Error::BadJson("the message text is empty".into()));
    }
    if text.len() > MAX_TEXT {
        return Err(Error::TooLarge {
            limit: MAX_TEXT as u64,
        });
    }
    Ok((text, markdown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_style_gives_its_text() {
        let json = Some("application/json");
        assert_eq!(
            parse_body(json, br#"{"text":"hi","format":"plain"}"#).unwrap(),
            ("hi".into(), false)
        );
        assert_eq!(
            parse_body(json, br#"{"text":"*hi*"}"#).unwrap(),
            ("*hi*".into(), true)
        );
        assert_eq!(
            parse_body(None, br#"{"content":"discord"}"#).unwrap(),
            ("discord".into(), true)
        );
        assert_eq!(
            parse_body(Some("text/plain; charset=utf-8"), b"plain *text*").unwrap(),
            ("plain *text*".into(), false)
        );
    }

    #[test]
    fn bad_bodies_are_refused_with_matrix_errors() {
        let json = Some("application/json");
        assert!(matches!(
            parse_body(json, b"{not json"),
            Err(Error::NotJson(_))
        ));
        assert!(matches!(
            parse_body(json, br#"{"txt":"x"}"#),
            Err(Error::BadJson(_))
        ));
        assert!(matches!(
            parse_body(json, br#"{"text":"  "}"#),
            Err(Error::BadJson(_))
        ));
        assert!(matches!(
            parse_body(json, br#"{"text":"x","format":"rtf"}"#),
            Err(Error::InvalidParam(_))
        ));
        assert!(matches!(
            parse_body(Some("text/plain"), &[0xff, 0xfe]),
            Err(Error::BadJson(_))
        ));
    }
}
