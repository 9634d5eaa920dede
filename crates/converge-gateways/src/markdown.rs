//! Message text to `m.room.message` content: Markdown rendered to the spec's HTML
//! `formatted_body`, with raw HTML in the source shown as text, never passed through.

use pulldown_cmark::{Event, Options, Parser, html};
use serde_json::{Value, json};

/// An `m.text` message with `text` as its body, and a `formatted_body` when `markdown` is
/// set and the text has any formatting.
pub fn message_content(text: &str, markdown: bool) -> Value {
    let mut content = json!({ "msgtype": "m.text", "body": text });
    if markdown && let Some(html) = render(text) {
        content["format"] = json!("org.matrix.custom.html");
        content["formatted_body"] = json!(html);
    }
    content
}

/// The HTML of `text`, or `None` if it is a plain paragraph with nothing to format.
pub fn render(text: &str) -> Option<String> {
    let parser = Parser::new_ext(text, Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES).map(
        |event| match event {
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            other => other,
        },
    );
    let mut out = String::new();
    html::push_html(&mut out, parser);
    let out = out.trim_end().to_owned();
    let plain = format!("<p>{}</p>", escape(text.trim()));
    if out == plain || out.is_empty() {
        return None;
    }
    // A single paragraph needs no <p> around it in a chat message.
    let inner = out.strip_prefix("<p>").and_then(|s| s.strip_suffix("</p>"));
    match inner {
        Some(inner) if !inner.contains("<p>") => Some(inner.to_owned()),
        _ => Some(out),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_has_no_formatted_body() {
        assert_eq!(render("just words"), None);
        let content = message_content("just words", true);
        assert_eq!(
            content,
            json!({ "msgtype": "m.text", "body": "just words" })
        );
    }

    #[test]
    fn markdown_becomes_html() {
        assert_eq!(
            render("**bold** and `code`").as_deref(),
            Some("<strong>bold</strong> and <code>code</code>")
        );
        let list = render("- one\n- two").unwrap();
        assert!(
            list.starts_with("<ul>") && list.contains("<li>two</li>"),
            "{list}"
        );
        let content = message_content("*hi*", true);
        assert_eq!(content["body"], "*hi*");
        assert_eq!(content["format"], "org.matrix.custom.html");
        assert_eq!(content["formatted_body"], "<em>hi</em>");
        assert!(
            message_content("*hi*", false)
                .get("formatted_body")
                .is_none()
        );
    }

    #[test]
    fn raw_html_is_escaped_not_passed_through() {
        let html = render("hello <script>alert(1)</script> **x**").unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
