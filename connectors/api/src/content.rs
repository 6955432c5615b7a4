//! Message content as a connector sees it: text in one of three kinds and two formats, plus media
//! given by reference, plus an optional expiry.
//!
//! This is a deliberately small subset of MIMI content (draft-ietf-mimi-content) that legacy
//! networks can carry. The core turns it into `application/mimi-content` and back; connectors never
//! see CBOR.

use serde::{Deserialize, Serialize};

/// The body of a message, an edit's new version, or a media message.
///
/// JSON (fields with defaults may be left out when parsing; `attachments` is left out when empty):
///
/// ```json
/// {"kind": "text", "body": "Hello **world**", "format": "markdown"}
/// {"kind": "text", "body": "", "format": "plain",
///  "attachments": [{"url": "https://media.example/cat.png", "media_type": "image/png"}]}
/// ```
///
/// A message needs a non-empty `body`, at least one attachment, or both (the body is then the
/// caption).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageContent {
    /// How the message is meant (an ordinary message, a notice from a bot, an emote).
    #[serde(default)]
    pub kind: MessageKind,
    /// The text, in `format`. May be empty when there are attachments.
    #[serde(default)]
    pub body: String,
    /// How `body` is written.
    #[serde(default)]
    pub format: TextFormat,
    /// Media, by reference. Carrying these needs [`Feature::Media`](crate::Feature::Media).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<MediaRef>,
}

impl MessageContent {
    /// A plain-text message.
    pub fn text(body: impl Into<String>) -> Self {
        MessageContent {
            body: body.into(),
            ..MessageContent::default()
        }
    }

    /// A message written in GFM-MIMI markdown.
    pub fn markdown(body: impl Into<String>) -> Self {
        MessageContent {
            body: body.into(),
            format: TextFormat::Markdown,
            ..MessageContent::default()
        }
    }

    /// A plain-text notice (typically from a bot; clients show it less prominently).
    pub fn notice(body: impl Into<String>) -> Self {
        MessageContent {
            kind: MessageKind::Notice,
            body: body.into(),
            ..MessageContent::default()
        }
    }

    /// A plain-text emote ("/me waves": the body is `waves`).
    pub fn emote(body: impl Into<String>) -> Self {
        MessageContent {
            kind: MessageKind::Emote,
            body: body.into(),
            ..MessageContent::default()
        }
    }

    /// A message made of one piece of media and no text.
    pub fn media(media: MediaRef) -> Self {
        MessageContent {
            attachments: vec![media],
            ..MessageContent::default()
        }
    }

    /// Adds an attachment, keeping the text as the caption.
    pub fn with_attachment(mut self, media: MediaRef) -> Self {
        self.attachments.push(media);
        self
    }

    /// Whether the message has any attachments (and so needs
    /// [`Feature::Media`](crate::Feature::Media) to be carried).
    pub fn has_media(&self) -> bool {
        !self.attachments.is_empty()
    }

    /// Checks what a well-formed message needs: some text or an attachment, and well-formed
    /// attachments. Returns a human-readable reason when it is not.
    pub fn validate(&self) -> Result<(), String> {
        if self.body.is_empty() && self.attachments.is_empty() {
            return Err("content has neither a body nor an attachment".into());
        }
        self.attachments.iter().try_for_each(MediaRef::validate)
    }
}

/// How a message is meant. JSON: `"text"`, `"notice"` or `"emote"`.
///
/// MIMI content has no notice or emote of its own; clients that do not know the bridge's
/// convention show them as ordinary text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// An ordinary message. The default.
    #[default]
    Text,
    /// A notice: automated or informational, shown less prominently and never answered by bots.
    Notice,
    /// An emote: the body describes an action of the sender ("waves").
    Emote,
}

/// How a body is written. JSON: `"plain"` or `"markdown"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextFormat {
    /// Plain text, `text/plain;charset=utf-8`. The default.
    #[default]
    Plain,
    /// Markdown, `text/markdown;variant=GFM-MIMI`: GitHub-flavoured markdown with tables, task
    /// lists and strikethrough, without autolinks, and with HTML tags shown as text rather than
    /// interpreted. Markdown reads acceptably as plain text, so a connector that cannot render it
    /// may show the body as it is.
    Markdown,
}

/// A piece of media stored elsewhere and given by URL (a MIMI `ExternalPart`).
///
/// The bridge never downloads or uploads media: connectors hand over URLs the other side can
/// fetch (or, with `encryption`, fetch and decrypt).
///
/// JSON (optional fields are left out when absent):
///
/// ```json
/// {"url": "https://media.example/f/1", "media_type": "image/png", "size": 48213,
///  "name": "cat.png", "description": "a cat",
///  "encryption": {"aead": 1, "key": "000102030405060708090a0b0c0d0e0f",
///                 "nonce": "000102030405060708090a0b", "aad": ""},
///  "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    /// Where to fetch the bytes (normally `https://`).
    pub url: String,
    /// The media type of the (decrypted) bytes, e.g. `image/png`.
    pub media_type: String,
    /// Size in bytes of what `url` serves, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// A file name to show or save as, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Alternative text describing the media, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Present when the bytes at `url` are encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<MediaEncryption>,
    /// SHA-256 of the bytes at `url`, as 64 lowercase hex digits, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl MediaRef {
    /// A reference with only the mandatory fields.
    pub fn new(url: impl Into<String>, media_type: impl Into<String>) -> Self {
        MediaRef {
            url: url.into(),
            media_type: media_type.into(),
            size: None,
            name: None,
            description: None,
            encryption: None,
            sha256: None,
        }
    }

    /// Checks the fields a receiver relies on. Returns a human-readable reason when one is
    /// malformed.
    pub fn validate(&self) -> Result<(), String> {
        if self.url.is_empty() {
            return Err("media url is empty".into());
        }
        if !self.media_type.contains('/') {
            return Err(format!(
                "media type {:?} is not type/subtype",
                self.media_type
            ));
        }
        if let Some(hash) = &self.sha256
            && (hash.len() != 64 || !is_lower_hex(hash))
        {
            return Err("sha256 is not 64 lowercase hex digits".into());
        }
        if let Some(enc) = &self.encryption {
            enc.validate()?;
        }
        Ok(())
    }
}

/// How the bytes behind a [`MediaRef`] are encrypted (MIMI `ExternalPart` encryption fields).
///
/// Byte strings are lowercase hex. JSON:
/// `{"aead": 1, "key": "00…0f", "nonce": "00…0b", "aad": ""}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaEncryption {
    /// The AEAD algorithm, as its IANA "AEAD Algorithms" number: `1` is AES-128-GCM (the one every
    /// MIMI client must support), `2` AES-256-GCM.
    pub aead: u16,
    /// The key, in hex.
    pub key: String,
    /// The nonce, in hex.
    pub nonce: String,
    /// The additional authenticated data, in hex; empty when there is none.
    #[serde(default)]
    pub aad: String,
}

impl MediaEncryption {
    /// AES-128-GCM with the given hex key and nonce and no additional data.
    pub fn aes_128_gcm(key_hex: impl Into<String>, nonce_hex: impl Into<String>) -> Self {
        MediaEncryption {
            aead: 1,
            key: key_hex.into(),
            nonce: nonce_hex.into(),
            aad: String::new(),
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.aead == 0 {
            return Err("aead 0 means unencrypted: leave encryption out instead".into());
        }
        for (name, value) in [("key", &self.key), ("nonce", &self.nonce)] {
            if value.is_empty() || !value.len().is_multiple_of(2) || !is_lower_hex(value) {
                return Err(format!("encryption {name} is not non-empty lowercase hex"));
            }
        }
        if !self.aad.len().is_multiple_of(2) || !is_lower_hex(&self.aad) {
            return Err("encryption aad is not lowercase hex".into());
        }
        Ok(())
    }
}

/// When a message disappears (MIMI `expires`).
///
/// JSON: `{"kind": "after_read", "seconds": 3600}` or `{"kind": "at", "unix_seconds": 1767225600}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Expiry {
    /// The message expires this many seconds after the recipient has read it.
    AfterRead {
        /// Seconds after reading.
        seconds: u32,
    },
    /// The message expires at this absolute time.
    At {
        /// Seconds since the UNIX epoch (UTC).
        unix_seconds: u32,
    },
}

pub(crate) fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_a_minimal_message() {
        let c: MessageContent = serde_json::from_str(r#"{"body":"hi"}"#).unwrap();
        assert_eq!(c, MessageContent::text("hi"));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn empty_content_and_bad_media_are_invalid() {
        assert!(MessageContent::default().validate().is_err());
        let bad = MessageContent::media(MediaRef::new("", "image/png"));
        assert!(bad.validate().is_err());
        let bad = MessageContent::media(MediaRef::new("https://x", "png"));
        assert!(bad.validate().is_err());
        let mut m = MediaRef::new("https://x", "image/png");
        m.sha256 = Some("ABC".into());
        assert!(MessageContent::media(m.clone()).validate().is_err());
        m.sha256 = None;
        m.encryption = Some(MediaEncryption::aes_128_gcm("0g", "00"));
        assert!(MessageContent::media(m.clone()).validate().is_err());
        m.encryption = Some(MediaEncryption::aes_128_gcm("00ff", "0011"));
        let ok = MessageContent::text("caption").with_attachment(m);
        assert!(ok.validate().is_ok());
        assert!(ok.has_media());
    }
}
