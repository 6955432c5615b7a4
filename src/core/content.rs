//! Legacy message content ↔ MIMI content.
//!
//! A legacy message becomes one MIMI message: its text as a single part (`text/plain` or
//! `text/markdown;variant=GFM-MIMI`), its media as external parts (a `processAll` multipart
//! when there are several parts), a reply as `inReplyTo`, an expiry as `expires`. Edits and
//! deletes `replace` the first message; reactions are a `reaction` disposition `inReplyTo` the
//! message. Notices and emotes, which MIMI content has no field for, travel in a private
//! extension (text key `"kind"`), so MIMI clients that do not know it still show the text.
//! Relations name MIMI message ids; the core maps legacy ids to them.

use mimi_bridge_connector::{
    Expiry, MediaEncryption, MediaRef, MessageContent, MessageKind, TextFormat,
};

use crate::content::{
    Disposition, Expiration, ExtensionKey, ExternalPart, HASH_ALG_SHA256, MessageId,
    MessageKind as MimiKind, MimiContent, NestedPart, Part, PartSemantics, Value,
};

const TEXT_PLAIN: &str = "text/plain;charset=utf-8";
const TEXT_MARKDOWN: &str = "text/markdown;variant=GFM-MIMI";
const KIND_KEY: &str = "kind";
/// IANA AEAD id of AES-128-GCM, the one MIMI content requires (`encAlg` 0 = unencrypted).
const AES_128_GCM: u16 = 1;

/// Why content cannot be carried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error("media `{url}`: {reason}")]
    Media { url: String, reason: String },
    #[error("the message has neither text nor media")]
    Empty,
    #[error("MIMI content of type `{0}` cannot be shown on the legacy side")]
    Unsupported(String),
}

/// What a MIMI message means for the legacy side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    Message {
        content: MessageContent,
        reply_to: Option<MessageId>,
    },
    Edit {
        original: MessageId,
        content: MessageContent,
    },
    Delete {
        original: MessageId,
    },
    Reaction {
        target: MessageId,
        key: String,
    },
    /// `reaction` is the MIMI id of the reaction taken back.
    Unreaction {
        reaction: MessageId,
        target: MessageId,
    },
}

/// A new message.
pub fn message(
    salt: [u8; 16],
    content: &MessageContent,
    reply_to: Option<MessageId>,
    expires: Option<&Expiry>,
) -> Result<MimiContent, TranslateError> {
    let mut mimi = MimiContent::new(salt, body(content)?);
    if let Some(id) = reply_to {
        mimi = mimi.with_in_reply_to(id);
    }
    if let Some(expiry) = expires {
        mimi = mimi.with_expiration(match expiry {
            Expiry::AfterRead { seconds } => Expiration {
                relative: true,
                time: *seconds,
            },
            Expiry::At { unix_seconds } => Expiration {
                relative: false,
                time: *unix_seconds,
            },
        });
    }
    Ok(with_kind(mimi, content.kind))
}

/// A new version of the message `original` (the first version's id).
pub fn edit(
    salt: [u8; 16],
    original: MessageId,
    content: &MessageContent,
) -> Result<MimiContent, TranslateError> {
    Ok(with_kind(
        MimiContent::new(salt, body(content)?).with_replaces(original),
        content.kind,
    ))
}

/// Retracts the message `original`.
pub fn delete(salt: [u8; 16], original: MessageId) -> MimiContent {
    MimiContent::delete(salt, original)
}

/// A reaction `key` to `target`.
pub fn reaction(salt: [u8; 16], target: MessageId, key: &str) -> MimiContent {
    MimiContent::reaction(salt, target, key)
}

/// Takes back the reaction `reaction` (its MIMI id) to `target`.
pub fn unreaction(salt: [u8; 16], reaction: MessageId, target: MessageId) -> MimiContent {
    MimiContent::unlike(salt, reaction, target)
}

fn with_kind(mut mimi: MimiContent, kind: MessageKind) -> MimiContent {
    let name = match kind {
        MessageKind::Text => return mimi,
        MessageKind::Notice => "notice",
        MessageKind::Emote => "emote",
    };
    mimi.extensions.other.insert(
        ExtensionKey::Text(KIND_KEY.into()),
        Value::Text(name.into()),
    );
    mimi
}

fn body(content: &MessageContent) -> Result<NestedPart, TranslateError> {
    let mut parts = Vec::new();
    if !content.body.is_empty() || content.attachments.is_empty() {
        let content_type = match content.format {
            TextFormat::Plain => TEXT_PLAIN,
            TextFormat::Markdown => TEXT_MARKDOWN,
        };
        parts.push(NestedPart::single(
            Disposition::Render,
            content_type,
            content.body.as_bytes().to_vec(),
        ));
    }
    for media in &content.attachments {
        parts.push(NestedPart::external(
            Disposition::Attachment,
            external(media)?,
        ));
    }
    Ok(match parts.len() {
        0 => return Err(TranslateError::Empty),
        1 => parts.remove(0),
        _ => NestedPart::multi(Disposition::Render, PartSemantics::ProcessAll, parts),
    })
}

fn hex_field(media: &MediaRef, what: &str, value: &str) -> Result<Vec<u8>, TranslateError> {
    hex::decode(value).map_err(|e| TranslateError::Media {
        url: media.url.clone(),
        reason: format!("{what} is not hex: {e}"),
    })
}

fn external(media: &MediaRef) -> Result<ExternalPart, TranslateError> {
    let (enc_alg, key, nonce, aad) = match &media.encryption {
        None => (0, vec![], vec![], vec![]),
        Some(MediaEncryption {
            aead,
            key,
            nonce,
            aad,
            ..
        }) => (
            *aead,
            hex_field(media, "key", key)?,
            hex_field(media, "nonce", nonce)?,
            hex_field(media, "aad", aad)?,
        ),
    };
    let (hash_alg, content_hash) = match &media.sha256 {
        Some(h) => (HASH_ALG_SHA256, hex_field(media, "sha256", h)?),
        None => (0, vec![]),
    };
    Ok(ExternalPart {
        content_type: media.media_type.clone(),
        url: media.url.clone(),
        expires: 0,
        size: media.size.unwrap_or(0),
        enc_alg,
        key,
        nonce,
        aad,
        hash_alg,
        content_hash,
        description: media.description.clone().unwrap_or_default(),
        filename: media.name.clone().unwrap_or_default(),
    })
}

/// What a MIMI message means for the legacy side.
pub fn inbound(mimi: &MimiContent) -> Result<Inbound, TranslateError> {
    Ok(match mimi.kind() {
        MimiKind::Delete => Inbound::Delete {
            original: mimi.replaces.ok_or(TranslateError::Empty)?,
        },
        MimiKind::Unlike => Inbound::Unreaction {
            reaction: mimi.replaces.ok_or(TranslateError::Empty)?,
            target: mimi.in_reply_to.ok_or(TranslateError::Empty)?,
        },
        MimiKind::Reaction => Inbound::Reaction {
            target: mimi.in_reply_to.ok_or(TranslateError::Empty)?,
            key: match &mimi.nested_part.part {
                Part::Single { content, .. } => String::from_utf8_lossy(content).into_owned(),
                _ => {
                    return Err(TranslateError::Unsupported(
                        "reaction without a single part".into(),
                    ));
                }
            },
        },
        MimiKind::Edit => Inbound::Edit {
            original: mimi.replaces.ok_or(TranslateError::Empty)?,
            content: legacy_content(mimi)?,
        },
        _ => Inbound::Message {
            content: legacy_content(mimi)?,
            reply_to: mimi.in_reply_to,
        },
    })
}

fn legacy_content(mimi: &MimiContent) -> Result<MessageContent, TranslateError> {
    let mut content = MessageContent::default();
    collect(&mimi.nested_part, &mut content)?;
    content.kind = match mimi
        .extensions
        .other
        .get(&ExtensionKey::Text(KIND_KEY.into()))
    {
        Some(Value::Text(k)) if k == "notice" => MessageKind::Notice,
        Some(Value::Text(k)) if k == "emote" => MessageKind::Emote,
        _ => MessageKind::Text,
    };
    Ok(content)
}

fn collect(part: &NestedPart, out: &mut MessageContent) -> Result<(), TranslateError> {
    match &part.part {
        Part::Null => {}
        Part::Single {
            content_type,
            content,
        } => {
            let base = content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let text = String::from_utf8_lossy(content).into_owned();
            match base.as_str() {
                "text/plain" if out.body.is_empty() => {
                    out.body = text;
                    out.format = TextFormat::Plain;
                }
                "text/markdown" if out.body.is_empty() => {
                    out.body = text;
                    out.format = TextFormat::Markdown;
                }
                "text/plain" | "text/markdown" => {}
                other => return Err(TranslateError::Unsupported(other.to_string())),
            }
        }
        Part::External(e) => out.attachments.push(MediaRef {
            url: e.url.clone(),
            media_type: e.content_type.clone(),
            size: (e.size > 0).then_some(e.size),
            name: (!e.filename.is_empty()).then(|| e.filename.clone()),
            description: (!e.description.is_empty()).then(|| e.description.clone()),
            encryption: (e.enc_alg != 0).then(|| MediaEncryption {
                aead: e.enc_alg,
                key: hex::encode(&e.key),
                nonce: hex::encode(&e.nonce),
                aad: hex::encode(&e.aad),
            }),
            sha256: (e.hash_alg == HASH_ALG_SHA256).then(|| hex::encode(&e.content_hash)),
        }),
        Part::Multi { semantics, parts } => match semantics {
            // Alternatives: the first one this side can show.
            PartSemantics::ChooseOne => {
                let first = parts.iter().find_map(|p| {
                    let mut c = MessageContent::default();
                    collect(p, &mut c).ok().map(|_| c)
                });
                let chosen = first.ok_or_else(|| {
                    TranslateError::Unsupported("no alternative can be shown".into())
                })?;
                if out.body.is_empty() {
                    out.body = chosen.body;
                    out.format = chosen.format;
                }
                out.attachments.extend(chosen.attachments);
            }
            _ => {
                for p in parts {
                    collect(p, out)?;
                }
            }
        },
    }
    Ok(())
}

/// The AEAD id MIMI content requires every implementation to support.
pub const REQUIRED_AEAD: u16 = AES_128_GCM;

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> MessageId {
        MessageId::from_slice(&[b; 32]).unwrap()
    }

    fn round_trip(mimi: &MimiContent) -> Inbound {
        let bytes = mimi.to_cbor().expect("valid MIMI content");
        inbound(&MimiContent::from_cbor(&bytes).unwrap()).unwrap()
    }

    #[test]
    fn plain_and_markdown_messages_round_trip() {
        for content in [
            MessageContent::text("hello"),
            MessageContent::markdown("**hello**"),
        ] {
            let mimi = message([1; 16], &content, None, None).unwrap();
            assert_eq!(
                round_trip(&mimi),
                Inbound::Message {
                    content,
                    reply_to: None
                }
            );
        }
    }

    #[test]
    fn a_reply_points_at_the_mimi_message() {
        let mimi = message([1; 16], &MessageContent::text("yes"), Some(id(7)), None).unwrap();
        assert_eq!(mimi.in_reply_to, Some(id(7)));
        assert!(
            matches!(round_trip(&mimi), Inbound::Message { reply_to: Some(r), .. } if r == id(7))
        );
    }

    #[test]
    fn edits_deletes_and_reactions_keep_their_relations() {
        let e = edit([2; 16], id(3), &MessageContent::text("fixed")).unwrap();
        assert_eq!(
            round_trip(&e),
            Inbound::Edit {
                original: id(3),
                content: MessageContent::text("fixed")
            }
        );
        assert_eq!(
            round_trip(&delete([3; 16], id(4))),
            Inbound::Delete { original: id(4) }
        );
        assert_eq!(
            round_trip(&reaction([4; 16], id(5), "👍")),
            Inbound::Reaction {
                target: id(5),
                key: "👍".into()
            }
        );
        assert_eq!(
            round_trip(&unreaction([5; 16], id(6), id(5))),
            Inbound::Unreaction {
                reaction: id(6),
                target: id(5)
            }
        );
    }

    #[test]
    fn notices_and_emotes_survive_the_trip() {
        let mut content = MessageContent::text("waves");
        content.kind = MessageKind::Emote;
        let mimi = message([1; 16], &content, None, None).unwrap();
        assert_eq!(
            round_trip(&mimi),
            Inbound::Message {
                content,
                reply_to: None
            }
        );
    }

    #[test]
    fn expiry_is_carried() {
        let mimi = message(
            [1; 16],
            &MessageContent::text("soon gone"),
            None,
            Some(&Expiry::AfterRead { seconds: 60 }),
        )
        .unwrap();
        assert_eq!(
            mimi.expires,
            Some(Expiration {
                relative: true,
                time: 60
            })
        );
    }

    #[test]
    fn media_becomes_external_parts_and_back() {
        let media = MediaRef {
            url: "https://media.example/1".into(),
            media_type: "image/png".into(),
            size: Some(1234),
            name: Some("cat.png".into()),
            description: None,
            encryption: Some(MediaEncryption {
                aead: REQUIRED_AEAD,
                key: "00112233445566778899aabbccddeeff".into(),
                nonce: "000102030405060708090a0b".into(),
                aad: String::new(),
            }),
            sha256: Some("ab".repeat(32)),
        };
        let mut content = MessageContent::text("look");
        content.attachments.push(media.clone());
        let mimi = message([1; 16], &content, None, None).unwrap();
        assert!(matches!(mimi.nested_part.part, Part::Multi { .. }));
        assert_eq!(
            round_trip(&mimi),
            Inbound::Message {
                content,
                reply_to: None
            }
        );
        let bad = MediaRef {
            sha256: Some("not hex".into()),
            ..media
        };
        let mut content = MessageContent::text("");
        content.attachments.push(bad);
        assert!(matches!(
            message([1; 16], &content, None, None),
            Err(TranslateError::Media { .. })
        ));
    }

    #[test]
    fn official_vectors_translate() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/conformance/mimi-content"
        );
        for (name, expect_reply) in [("original", false), ("reply", true)] {
            let Ok(bytes) = std::fs::read(format!("{dir}/{name}.cbor")) else {
                panic!("the MIMI content vectors are missing at {dir}")
            };
            match inbound(&MimiContent::from_cbor(&bytes).unwrap()).unwrap() {
                Inbound::Message { content, reply_to } => {
                    assert!(!content.body.is_empty());
                    assert_eq!(reply_to.is_some(), expect_reply, "{name}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let bytes = std::fs::read(format!("{dir}/reaction.cbor")).unwrap();
        assert!(matches!(
            inbound(&MimiContent::from_cbor(&bytes).unwrap()).unwrap(),
            Inbound::Reaction { .. }
        ));
    }
}
