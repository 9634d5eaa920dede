//! URL previews: fetch a page (or image) and return its OpenGraph data, never from an
//! address the SSRF blocklist refuses.
//!
//! Every address is checked after DNS resolution, by the client's resolver, so a name
//! that points at a private address is refused; IP literals, which skip the resolver, are
//! checked before the request and on every redirect. Bodies are capped in size and the
//! whole preview in time.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use url::Url;

use crate::config::UrlPreviewConfig;
use crate::error::{Error, Result};
use crate::fetch::{BLOCKED, Policy, was_blocked};

/// How long a preview is reused.
pub const CACHE_MS: i64 = 60 * 60 * 1000;
/// Text longer than this is cut in previews.
const MAX_TEXT: usize = 1000;

/// What a fetch found.
pub struct Preview {
    pub og: Value,
    pub image: Option<Image>,
}

pub struct Image {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
}

pub struct Previewer {
    enabled: bool,
    client: reqwest::Client,
    policy: Policy,
    max_bytes: u64,
    timeout: Duration,
}

impl Previewer {
    pub fn new(config: &UrlPreviewConfig) -> std::result::Result<Self, String> {
        let policy = Policy::new(&config.allow, &config.deny)?;
        let client = policy.client(config.timeout, "URL preview")?;
        Ok(Self {
            enabled: config.enabled,
            client,
            policy,
            max_bytes: config.max_bytes,
            timeout: config.timeout,
        })
    }

    /// Fetches `url` and extracts its preview.
    pub async fn fetch(&self, url: &str) -> Result<Preview> {
        if !self.enabled {
            return Err(Error::forbidden("URL previews are disabled on this server"));
        }
        let url = Url::parse(url).map_err(|_| Error::InvalidParam("not a valid URL".into()))?;
        self.policy.check_url(&url).map_err(Error::forbidden)?;
        tokio::time::timeout(self.timeout, self.fetch_page(url))
            .await
            .map_err(|_| Error::Upstream("the page took too long".into()))?
    }

    async fn fetch_page(&self, url: Url) -> Result<Preview> {
        let (bytes, content_type, final_url) = self.get(url.clone()).await?;
        if content_type
            .as_deref()
            .is_some_and(|ct| ct.starts_with("image/"))
        {
            return Ok(Preview {
                og: json!({ "og:url": url.as_str() }),
                image: Some(Image {
                    bytes,
                    content_type,
                }),
            });
        }
        let html = String::from_utf8_lossy(&bytes);
        let mut og = parse_html(&html);
        if og.get("og:url").is_none() {
            og["og:url"] = json!(final_url.as_str());
        }
        let mut image = None;
        if let Some(src) = og
            .get("og:image")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            og.as_object_mut()
                .expect("og is an object")
                .remove("og:image");
            if let Ok(src) = final_url.join(&src)
                && self.policy.check_url(&src).is_ok()
                && let Ok((bytes, content_type, _)) = self.get(src).await
                && content_type
                    .as_deref()
                    .is_some_and(|ct| ct.starts_with("image/"))
            {
                image = Some(Image {
                    bytes,
                    content_type,
                });
            }
        }
        Ok(Preview { og, image })
    }

    /// GETs a URL, reading at most `max_bytes` of the body.
    async fn get(&self, url: Url) -> Result<(Vec<u8>, Option<String>, Url)> {
        let response = self.client.get(url).send().await.map_err(|err| {
            if was_blocked(&err) {
                Error::forbidden(BLOCKED)
            } else {
                Error::Upstream(format!("could not fetch the page: {err}"))
            }
        })?;
        if !response.status().is_success() {
            return Err(Error::Upstream(format!(
                "the page answered {}",
                response.status()
            )));
        }
        let final_url = response.url().clone();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::Upstream(format!("the page broke off: {e}")))?;
            let room = (self.max_bytes as usize).saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() as u64 >= self.max_bytes {
                break;
            }
        }
        Ok((body, content_type, final_url))
    }
}

/// OpenGraph data from a page: `og:*` meta tags, with the title, description and site
/// name filled from ordinary tags where the page has no OpenGraph ones.
pub fn parse_html(html: &str) -> Value {
    let mut og = json!({});
    let mut description = None;
    let lower = html.to_ascii_lowercase();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<meta") {
        let start = at + start;
        let Some(end) = lower[start..].find('>') else {
            break;
        };
        let tag = &html[start..start + end];
        at = start + end;
        let attrs = attributes(tag);
        let key = attrs
            .iter()
            .find(|(k, _)| k == "property" || k == "name")
            .map(|(_, v)| v.to_ascii_lowercase());
        let content = attrs
            .iter()
            .find(|(k, _)| k == "content")
            .map(|(_, v)| v.clone());
        match (key.as_deref(), content) {
            (Some(k), Some(v)) if k.starts_with("og:") && og.get(k).is_none() => {
                og[k] = json!(truncate(&v));
            }
            (Some("description"), Some(v)) => description = Some(v),
            _ => {}
        }
    }
    if og.get("og:title").is_none()
        && let Some(start) = lower.find("<title")
        && let Some(open_end) = lower[start..].find('>')
        && let Some(close) = lower[start..].find("</title")
    {
        let text = &html[start + open_end + 1..start + close.max(open_end + 1)];
        let text = decode_entities(text.trim());
        if !text.is_empty() {
            og["og:title"] = json!(truncate(&text));
        }
    }
    if og.get("og:description").is_none()
        && let Some(d) = description
    {
        og["og:description"] = json!(truncate(&d));
    }
    og
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_TEXT).collect()
}

/// `name="value"` pairs of a tag, lowercased names, entity-decoded values.
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let bytes = tag.as_bytes();
    let mut i = tag.find(char::is_whitespace).unwrap_or(tag.len());
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        let name_start = i;
        while i < bytes.len()
            && !bytes[i].is_ascii_whitespace()
            && bytes[i] != b'='
            && bytes[i] != b'/'
        {
            i += 1;
        }
        let name = tag[name_start..i].to_ascii_lowercase();
        if name.is_empty() {
            i += 1;
            continue;
        }
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let value = if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let quote = bytes[i];
                let start = i + 1;
                let end = tag[start..]
                    .find(quote as char)
                    .map_or(tag.len(), |e| start + e);
                i = (end + 1).min(tag.len());
                &tag[start..end]
            } else {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                &tag[start..i]
            };
            out.push((name, decode_entities(value)));
        }
    }
    out
}

fn decode_entities(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opengraph_is_read_from_meta_tags() {
        let html = r#"<html><head><title>Plain &amp; simple</title>
            <meta property="og:title" content="The &quot;Title&quot;">
            <META NAME="description" content='A page'>
            <meta property="og:image" content="/img.png" />
            <meta content="Site" property="og:site_name"></head></html>"#;
        let og = parse_html(html);
        assert_eq!(og["og:title"], "The \"Title\"");
        assert_eq!(og["og:description"], "A page");
        assert_eq!(og["og:image"], "/img.png");
        assert_eq!(og["og:site_name"], "Site");
        let og = parse_html("<title>Only a title</title>");
        assert_eq!(og["og:title"], "Only a title");
        assert_eq!(parse_html("<meta <<< broken"), json!({}));
    }
}
