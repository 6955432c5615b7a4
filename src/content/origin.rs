//! Where a bridged message came from, in the content extensions of
//! draft-mimi-content-more-extensions-00: `sender_timestamp` (`{1: seconds, ? -3: milliseconds}`,
//! when the sender sent it) and `external_message_id` (`[id, scope]`, the message's id on the
//! network it came from, scoped by that network's domain). The draft proposes keys 3 and 4; until
//! IANA assigns them this bridge uses private-range (negative) keys, configurable like every
//! other code point the drafts only suggest.

use serde::{Deserialize, Serialize};

use super::{ExtensionKey, MapKey, MimiContent, Value};

/// The extension keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OriginKeys {
    /// `sender_timestamp` (proposed: 3).
    pub sender_timestamp: i64,
    /// `external_message_id` (proposed: 4).
    pub external_message_id: i64,
}

impl Default for OriginKeys {
    /// Private-range keys until the draft's are assigned.
    fn default() -> Self {
        OriginKeys {
            sender_timestamp: -3,
            external_message_id: -4,
        }
    }
}

impl OriginKeys {
    /// Keys 1 and 2 are the sender and room URIs; the two keys must differ.
    pub fn check(&self) -> Result<(), String> {
        for (name, key) in [
            ("sender_timestamp", self.sender_timestamp),
            ("external_message_id", self.external_message_id),
        ] {
            if key == 1 || key == 2 {
                return Err(format!(
                    "{name} = {key} is the key of the sender or room URI"
                ));
            }
        }
        if self.sender_timestamp == self.external_message_id {
            return Err("sender_timestamp and external_message_id must differ".into());
        }
        Ok(())
    }
}

/// A message's origin on its legacy network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The message's id there.
    pub message_id: String,
    /// Which network: its domain (the bridge's provider domain).
    pub scope: String,
    /// When its sender sent it (milliseconds since the UNIX epoch), if known.
    pub sent_at_ms: Option<u64>,
}

impl MimiContent {
    /// The content with its origin in the extensions.
    pub fn with_origin(mut self, keys: &OriginKeys, origin: &Origin) -> MimiContent {
        let other = &mut self.extensions.other;
        other.insert(
            ExtensionKey::Int(keys.external_message_id),
            Value::Array(vec![
                Value::Bytes(origin.message_id.as_bytes().to_vec()),
                Value::Text(origin.scope.clone()),
            ]),
        );
        if let Some(ms) = origin.sent_at_ms {
            let mut time = std::collections::BTreeMap::new();
            time.insert(MapKey::Int(1), Value::Unsigned(ms / 1000));
            if ms % 1000 != 0 {
                time.insert(MapKey::Int(-3), Value::Unsigned(ms % 1000));
            }
            other.insert(ExtensionKey::Int(keys.sender_timestamp), Value::Map(time));
        }
        self
    }

    /// The origin the extensions give, if they give one (leniently: a malformed value is none).
    pub fn origin(&self, keys: &OriginKeys) -> Option<Origin> {
        let other = &self.extensions.other;
        let (message_id, scope) = match other.get(&ExtensionKey::Int(keys.external_message_id)) {
            Some(Value::Array(items)) => match items.as_slice() {
                [Value::Bytes(id), Value::Text(scope)] => {
                    (String::from_utf8(id.clone()).ok()?, scope.clone())
                }
                _ => return None,
            },
            _ => return None,
        };
        let sent_at_ms = match other.get(&ExtensionKey::Int(keys.sender_timestamp)) {
            Some(Value::Map(time)) => {
                let part = |k| match time.get(&MapKey::Int(k)) {
                    Some(Value::Unsigned(n)) => Some(*n),
                    _ => None,
                };
                part(1).map(|s| s * 1000 + part(-3).unwrap_or(0).min(999))
            }
            _ => None,
        };
        Some(Origin {
            message_id,
            scope,
            sent_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{Disposition, NestedPart, TEXT_PLAIN};

    fn hello() -> MimiContent {
        MimiContent::new(
            [7; 16],
            NestedPart::single(Disposition::Render, TEXT_PLAIN, b"hello".to_vec()),
        )
    }

    #[test]
    fn the_origin_survives_encoding_and_changes_the_message_id() {
        let keys = OriginKeys::default();
        let origin = Origin {
            message_id: "m-17".into(),
            scope: "a.example".into(),
            sent_at_ms: Some(1_765_000_000_123),
        };
        let plain = hello();
        let with = hello().with_origin(&keys, &origin);
        let bytes = with.to_cbor().unwrap();
        let back = MimiContent::from_cbor(&bytes).unwrap();
        assert_eq!(back.origin(&keys), Some(origin.clone()));
        assert_eq!(plain.origin(&keys), None);
        assert_ne!(bytes, plain.to_cbor().unwrap());
        // other keys: nothing there
        let elsewhere = OriginKeys {
            sender_timestamp: -30,
            external_message_id: -40,
        };
        assert_eq!(back.origin(&elsewhere), None);
        // whole seconds carry no fraction
        let whole = Origin {
            sent_at_ms: Some(1_765_000_000_000),
            ..origin
        };
        let back =
            MimiContent::from_cbor(&hello().with_origin(&keys, &whole).to_cbor().unwrap()).unwrap();
        assert_eq!(back.origin(&keys), Some(whole));
    }

    #[test]
    fn keys_that_collide_are_refused() {
        assert!(OriginKeys::default().check().is_ok());
        let uri = OriginKeys {
            sender_timestamp: 1,
            ..OriginKeys::default()
        };
        assert!(uri.check().unwrap_err().contains("sender or room URI"));
        let same = OriginKeys {
            sender_timestamp: -9,
            external_message_id: -9,
        };
        assert!(same.check().unwrap_err().contains("differ"));
    }
}
