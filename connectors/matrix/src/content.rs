//! Matrix message content ↔ the connector API's [`MessageContent`].
//!
//! Text: `m.text`, `m.notice` and `m.emote`; HTML (`org.matrix.custom.html`) ↔ GFM-MIMI
//! markdown ([`crate::format`]). Replies: `m.in_reply_to` (reply fallbacks are stripped).
//! Edits: `m.replace` with `m.new_content`. Media: `m.image`, `m.file`, `m.video`, `m.audio` ↔
//! external parts whose URL is the homeserver's download URL of the `mxc://` content.

use mimi_bridge_connector::{MediaRef, MessageContent, MessageKind, TextFormat};
use serde_json::{Value, json};

use crate::format::{html_to_markdown, markdown_to_html, strip_plain_reply_fallback};

/// What an `m.room.message` from Matrix means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromMatrix {
    Message {
        content: MessageContent,
        reply_to: Option<String>,
    },
    Edit {
        original: String,
        content: MessageContent,
    },
}

fn text_content(c: &Value, msgtype: &str) -> MessageContent {
    let kind = match msgtype {
        "m.notice" => MessageKind::Notice,
        "m.emote" => MessageKind::Emote,
        _ => MessageKind::Text,
    };
    let html = (c["format"] == "org.matrix.custom.html")
        .then(|| c["formatted_body"].as_str())
        .flatten();
    let (body, format) = match html {
        Some(html) => (html_to_markdown(html), TextFormat::Markdown),
        None => (
            strip_plain_reply_fallback(c["body"].as_str().unwrap_or_default()).to_owned(),
            TextFormat::Plain,
        ),
    };
    MessageContent {
        kind,
        body,
        format,
        attachments: vec![],
    }
}

/// The homeserver's download URL of an `mxc://server/id` URI.
fn download_url(homeserver: &str, mxc: &str) -> Option<String> {
    let (server, id) = mxc.strip_prefix("mxc://")?.split_once('/')?;
    Some(format!(
        "{}/_matrix/media/v3/download/{server}/{id}",
        homeserver.trim_end_matches('/')
    ))
}

fn media_content(c: &Value, homeserver: &str) -> Result<MessageContent, String> {
    let mxc = c["url"]
        .as_str()
        .ok_or("encrypted media cannot be bridged (no plain `url`)")?;
    let url = download_url(homeserver, mxc).ok_or_else(|| format!("`{mxc}` is not an mxc URI"))?;
    let info = &c["info"];
    let mut media = MediaRef::new(
        url,
        info["mimetype"]
            .as_str()
            .unwrap_or("application/octet-stream"),
    );
    media.size = info["size"].as_u64();
    media.name = c["filename"]
        .as_str()
        .or(c["body"].as_str())
        .map(str::to_owned);
    Ok(MessageContent {
        kind: MessageKind::Text,
        body: String::new(),
        format: TextFormat::Plain,
        attachments: vec![media],
    })
}

/// Reads an `m.room.message` content. `Err` says why it cannot be carried.
pub fn from_matrix(c: &Value, homeserver: &str) -> Result<FromMatrix, String> {
    let relates = &c["m.relates_to"];
    if relates["rel_type"] == "m.replace" {
        let original = relates["event_id"]
            .as_str()
            .ok_or("an edit without the edited event's id")?
            .to_owned();
        let new = if c["m.new_content"].is_object() {
            &c["m.new_content"]
        } else {
            c
        };
        return Ok(FromMatrix::Edit {
            original,
            content: content_of(new, homeserver)?,
        });
    }
    let reply_to = relates["m.in_reply_to"]["event_id"]
        .as_str()
        .map(str::to_owned);
    Ok(FromMatrix::Message {
        content: content_of(c, homeserver)?,
        reply_to,
    })
}

fn content_of(c: &Value, homeserver: &str) -> Result<MessageContent, String> {
    let msgtype = c["msgtype"].as_str().unwrap_or_default();
    match msgtype {
        "m.text" | "m.notice" | "m.emote" => Ok(text_content(c, msgtype)),
        "m.image" | "m.file" | "m.video" | "m.audio" => media_content(c, homeserver),
        "" => Err("a message without a msgtype".into()),
        other => Err(format!("messages of type {other} have no MIMI form")),
    }
}

fn msgtype(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Text => "m.text",
        MessageKind::Notice => "m.notice",
        MessageKind::Emote => "m.emote",
    }
}

/// A media message for a file in the content repository.
pub fn media_to_matrix(media: &MediaRef, mxc: &str) -> Value {
    let msgtype = match media.media_type.split('/').next().unwrap_or_default() {
        "image" => "m.image",
        "video" => "m.video",
        "audio" => "m.audio",
        _ => "m.file",
    };
    let name = media.name.clone().unwrap_or_else(|| "attachment".into());
    let mut info = json!({"mimetype": media.media_type});
    if let Some(size) = media.size {
        info["size"] = json!(size);
    }
    json!({"msgtype": msgtype, "body": name, "filename": name, "url": mxc, "info": info})
}

/// The text part of a Matrix message for `content`.
fn text_body(content: &MessageContent) -> Value {
    let mut body = json!({"msgtype": msgtype(content.kind), "body": content.body});
    if content.format == TextFormat::Markdown {
        body["format"] = json!("org.matrix.custom.html");
        body["formatted_body"] = json!(markdown_to_html(&content.body));
    }
    // Media travel by link: a Matrix client shows them as links in the text.
    for media in &content.attachments {
        let line = format!(
            "\n📎 {} ({}): {}",
            media.name.as_deref().unwrap_or("attachment"),
            media.media_type,
            media.url
        );
        body["body"] = json!(format!(
            "{}{line}",
            body["body"].as_str().unwrap_or_default()
        ));
        if let Some(html) = body["formatted_body"].as_str() {
            body["formatted_body"] = json!(format!("{html}<br>{}", escape_html(&line)));
        }
    }
    body
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An `m.room.message` for a new message, replying to the Matrix event `reply_to`.
pub fn to_matrix(content: &MessageContent, reply_to: Option<&str>) -> Value {
    let mut body = text_body(content);
    if let Some(event) = reply_to {
        body["m.relates_to"] = json!({"m.in_reply_to": {"event_id": event}});
    }
    body
}

/// An `m.room.message` replacing the Matrix event `original`.
pub fn edit_to_matrix(content: &MessageContent, original: &str) -> Value {
    let new = text_body(content);
    let mut body = new.clone();
    body["body"] = json!(format!("* {}", new["body"].as_str().unwrap_or_default()));
    if let Some(html) = new["formatted_body"].as_str() {
        body["formatted_body"] = json!(format!("* {html}"));
    }
    body["m.new_content"] = new;
    body["m.relates_to"] = json!({"rel_type": "m.replace", "event_id": original});
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    const HS: &str = "http://127.0.0.1:8008";

    #[test]
    fn formatted_text_becomes_markdown_and_back() {
        let c = json!({"msgtype": "m.text", "body": "hi **all**", "format": "org.matrix.custom.html",
            "formatted_body": "hi <strong>all</strong>"});
        let FromMatrix::Message { content, reply_to } = from_matrix(&c, HS).unwrap() else {
            panic!()
        };
        assert_eq!(content.format, TextFormat::Markdown);
        assert_eq!(content.body, "hi **all**");
        assert_eq!(reply_to, None);
        let back = to_matrix(&content, Some("$e"));
        assert_eq!(back["format"], "org.matrix.custom.html");
        assert!(
            back["formatted_body"]
                .as_str()
                .unwrap()
                .contains("<strong>all</strong>")
        );
        assert_eq!(back["m.relates_to"]["m.in_reply_to"]["event_id"], "$e");
    }

    #[test]
    fn replies_edits_notices_emotes_and_media() {
        let reply = json!({"msgtype": "m.notice", "body": "> <@a:hs> x\n\nthe answer",
            "m.relates_to": {"m.in_reply_to": {"event_id": "$orig"}}});
        let FromMatrix::Message { content, reply_to } = from_matrix(&reply, HS).unwrap() else {
            panic!()
        };
        assert_eq!(reply_to.as_deref(), Some("$orig"));
        assert_eq!(content.kind, MessageKind::Notice);
        assert_eq!(content.body, "the answer");

        let edit = json!({"msgtype": "m.emote", "body": "* waves", "m.new_content": {"msgtype": "m.emote", "body": "waves"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"}});
        assert_eq!(
            from_matrix(&edit, HS).unwrap(),
            FromMatrix::Edit {
                original: "$orig".into(),
                content: MessageContent::emote("waves")
            }
        );
        let out = edit_to_matrix(&MessageContent::emote("waves"), "$orig");
        assert_eq!(out["m.new_content"]["body"], "waves");
        assert_eq!(out["msgtype"], "m.emote");
        assert_eq!(out["m.relates_to"]["rel_type"], "m.replace");

        let image = json!({"msgtype": "m.image", "body": "cat.png", "url": "mxc://hs/abc",
            "info": {"mimetype": "image/png", "size": 42}});
        let FromMatrix::Message { content, .. } = from_matrix(&image, HS).unwrap() else {
            panic!()
        };
        assert_eq!(
            content.attachments[0].url,
            "http://127.0.0.1:8008/_matrix/media/v3/download/hs/abc"
        );
        assert_eq!(content.attachments[0].size, Some(42));
        assert_eq!(content.attachments[0].name.as_deref(), Some("cat.png"));
    }

    #[test]
    fn what_has_no_mimi_form_says_why() {
        let location = json!({"msgtype": "m.location", "body": "here", "geo_uri": "geo:1,2"});
        assert!(
            from_matrix(&location, HS)
                .unwrap_err()
                .contains("m.location")
        );
        let encrypted = json!({"msgtype": "m.file", "body": "x", "file": {"url": "mxc://hs/e"}});
        assert!(
            from_matrix(&encrypted, HS)
                .unwrap_err()
                .contains("encrypted")
        );
    }
}
