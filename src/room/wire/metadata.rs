//! The room metadata component (protocol-06 §7.6). An update is a whole-value replacement.

use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::WireStruct;
use super::primitives::{Uri, Utf8String, check_utf8, empty};

/// `struct { opaque media_type<V>; opaque language_tag<V>; opaque description_content<V>; } RichDescription;`
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct RichDescription {
    /// Empty means `text/plain;charset=utf-8`.
    pub media_type: VLBytes,
    pub language_tag: VLBytes,
    pub description_content: VLBytes,
}

impl Default for RichDescription {
    fn default() -> Self {
        RichDescription {
            media_type: empty(),
            language_tag: empty(),
            description_content: empty(),
        }
    }
}

/// `RoomMetaData` (and `RoomMetaUpdate`, which has the same form).
#[derive(Clone, Debug, Default, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct RoomMetaData {
    pub room_uri: Uri,
    pub room_name: Utf8String,
    pub room_descriptions: Vec<RichDescription>,
    /// An `https` URI, or empty.
    pub room_avatar: Uri,
    pub room_subject: Utf8String,
    pub room_mood: Utf8String,
}

impl WireStruct for RoomMetaData {
    const NAME: &'static str = "RoomMetaData";

    fn check(&self) -> Result<(), String> {
        check_utf8("room_uri", self.room_uri.uri.as_slice())?;
        check_utf8("room_name", self.room_name.string.as_slice())?;
        check_utf8("room_avatar", self.room_avatar.uri.as_slice())?;
        check_utf8("room_subject", self.room_subject.string.as_slice())?;
        check_utf8("room_mood", self.room_mood.string.as_slice())?;
        for (i, d) in self.room_descriptions.iter().enumerate() {
            check_utf8(
                &format!("room_descriptions[{i}].media_type"),
                d.media_type.as_slice(),
            )?;
            check_utf8(
                &format!("room_descriptions[{i}].language_tag"),
                d.language_tag.as_slice(),
            )?;
        }
        if let Some(avatar) = self.room_avatar.as_str()
            && !avatar.is_empty()
            && !avatar.starts_with("https://")
        {
            return Err(format!("room_avatar must be an https URI, got `{avatar}`"));
        }
        Ok(())
    }
}
