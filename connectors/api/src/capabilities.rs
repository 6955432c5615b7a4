//! What a connector can carry to its legacy network.
//!
//! Plain messages, room creation and [`CommandKind::EventFailed`](crate::CommandKind::EventFailed)
//! are mandatory: every connector carries them. Everything else is a [`Feature`] that a
//! connector declares in [`Connector::capabilities`](crate::Connector::capabilities). Before it
//! delivers a command the core compares
//! [`BridgeCommand::required_capabilities`](crate::BridgeCommand::required_capabilities) with
//! them; a command the connector cannot carry is not delivered, and when it came from a MIMI user
//! (an edit, a reaction, …) the core tells that user it was not bridged instead of dropping it
//! silently.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{BridgeCommand, ConnectorError};

/// One optional thing a connector can carry. JSON: the snake_case name, e.g. `"read_receipts"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Editing a message already sent ([`CommandKind::Edit`](crate::CommandKind::Edit)).
    Edits,
    /// Deleting a message ([`CommandKind::Delete`](crate::CommandKind::Delete)).
    Deletes,
    /// Adding and removing reactions ([`CommandKind::Reaction`](crate::CommandKind::Reaction),
    /// [`CommandKind::ReactionRemoved`](crate::CommandKind::ReactionRemoved)).
    Reactions,
    /// Messages that reply to another message (`reply_to` of
    /// [`CommandKind::Message`](crate::CommandKind::Message)).
    Replies,
    /// Typing notifications ([`CommandKind::Typing`](crate::CommandKind::Typing)).
    Typing,
    /// Read receipts ([`CommandKind::ReadReceipt`](crate::CommandKind::ReadReceipt)).
    ReadReceipts,
    /// Messages with attachments ([`MessageContent::attachments`](crate::MessageContent::attachments)).
    Media,
    /// Room metadata such as the name ([`CommandKind::RoomRenamed`](crate::CommandKind::RoomRenamed)).
    RoomMetadata,
    /// Membership changes after creation: invites, adds, joins, leaves, removals and bans
    /// ([`CommandKind::UserInvited`](crate::CommandKind::UserInvited) and its siblings).
    Membership,
}

impl Feature {
    /// Every feature, in bit order.
    pub const ALL: [Feature; 9] = [
        Feature::Edits,
        Feature::Deletes,
        Feature::Reactions,
        Feature::Replies,
        Feature::Typing,
        Feature::ReadReceipts,
        Feature::Media,
        Feature::RoomMetadata,
        Feature::Membership,
    ];

    /// The name used in JSON and in messages, e.g. `read_receipts`.
    pub const fn name(self) -> &'static str {
        match self {
            Feature::Edits => "edits",
            Feature::Deletes => "deletes",
            Feature::Reactions => "reactions",
            Feature::Replies => "replies",
            Feature::Typing => "typing",
            Feature::ReadReceipts => "read_receipts",
            Feature::Media => "media",
            Feature::RoomMetadata => "room_metadata",
            Feature::Membership => "membership",
        }
    }

    const fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Feature`]s: what a connector can carry, or what a command needs.
///
/// Build it in a `const` if you like:
///
/// ```
/// use mimi_bridge_connector::{Capabilities, Feature};
///
/// const CAPS: Capabilities = Capabilities::empty()
///     .with(Feature::Replies)
///     .with(Feature::Reactions);
/// assert!(CAPS.contains(Feature::Reactions));
/// assert!(!CAPS.contains(Feature::Edits));
/// assert_eq!(CAPS, Feature::Replies | Feature::Reactions);
/// ```
///
/// JSON: a list of feature names, e.g. `["replies", "reactions"]` (written in [`Feature::ALL`]
/// order; any order is accepted).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u32);

impl Capabilities {
    /// No optional feature: plain messages and room creation only.
    pub const fn empty() -> Self {
        Capabilities(0)
    }

    /// Every feature.
    pub const fn all() -> Self {
        let mut caps = Capabilities::empty();
        let mut i = 0;
        while i < Feature::ALL.len() {
            caps = caps.with(Feature::ALL[i]);
            i += 1;
        }
        caps
    }

    /// This set plus `feature`.
    pub const fn with(self, feature: Feature) -> Self {
        Capabilities(self.0 | feature.bit())
    }

    /// This set minus `feature`.
    pub const fn without(self, feature: Feature) -> Self {
        Capabilities(self.0 & !feature.bit())
    }

    /// Whether `feature` is in the set.
    pub const fn contains(self, feature: Feature) -> bool {
        self.0 & feature.bit() != 0
    }

    /// Whether every feature of `other` is in the set.
    pub const fn contains_all(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The features in either set.
    pub const fn union(self, other: Capabilities) -> Self {
        Capabilities(self.0 | other.0)
    }

    /// The features of `required` that are not in this set.
    pub const fn missing(self, required: Capabilities) -> Self {
        Capabilities(required.0 & !self.0)
    }

    /// Adds `feature` in place.
    pub fn insert(&mut self, feature: Feature) {
        *self = self.with(feature);
    }

    /// Removes `feature` in place.
    pub fn remove(&mut self, feature: Feature) {
        *self = self.without(feature);
    }

    /// The features in the set, in [`Feature::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Feature> {
        Feature::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    /// `Ok` when this set holds everything `command` needs, otherwise
    /// [`ConnectorError::Unsupported`] naming the first missing feature.
    ///
    /// A connector can call this at the top of
    /// [`Connector::deliver`](crate::Connector::deliver) to refuse what it did not declare.
    pub fn check(self, command: &BridgeCommand) -> Result<(), ConnectorError> {
        match self.missing(command.required_capabilities()).iter().next() {
            None => Ok(()),
            Some(feature) => Err(ConnectorError::Unsupported { feature }),
        }
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Feature::name))
            .finish()
    }
}

impl From<Feature> for Capabilities {
    fn from(feature: Feature) -> Self {
        Capabilities::empty().with(feature)
    }
}

impl FromIterator<Feature> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Feature>>(iter: I) -> Self {
        iter.into_iter()
            .fold(Capabilities::empty(), Capabilities::with)
    }
}

impl BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        self.union(rhs)
    }
}

impl BitOr<Feature> for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Feature) -> Capabilities {
        self.with(rhs)
    }
}

impl BitOr for Feature {
    type Output = Capabilities;
    fn bitor(self, rhs: Feature) -> Capabilities {
        Capabilities::from(self).with(rhs)
    }
}

impl BitOrAssign<Feature> for Capabilities {
    fn bitor_assign(&mut self, rhs: Feature) {
        self.insert(rhs);
    }
}

impl Serialize for Capabilities {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Capabilities {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Feature>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut caps = Capabilities::empty();
        assert!(caps.is_empty());
        caps |= Feature::Edits;
        caps.insert(Feature::Media);
        assert!(caps.contains(Feature::Edits) && caps.contains(Feature::Media));
        assert!(!caps.contains(Feature::Typing));
        caps.remove(Feature::Edits);
        assert_eq!(caps, Capabilities::from(Feature::Media));
        assert!(Capabilities::all().contains_all(caps));
        assert!(!caps.contains_all(Capabilities::all()));
        assert_eq!(Capabilities::all().iter().count(), Feature::ALL.len());
        assert_eq!(
            caps.missing(Feature::Media | Feature::Typing),
            Capabilities::from(Feature::Typing)
        );
        assert_eq!(format!("{caps:?}"), r#"{"media"}"#);
    }

    #[test]
    fn names_match_serde() {
        for feature in Feature::ALL {
            let json = serde_json::to_string(&feature).unwrap();
            assert_eq!(json, format!("\"{feature}\""));
        }
    }

    #[test]
    fn json_is_a_list_of_names() {
        let caps = Feature::ReadReceipts | Feature::Edits;
        let json = serde_json::to_string(&caps).unwrap();
        assert_eq!(json, r#"["edits","read_receipts"]"#);
        let back: Capabilities = serde_json::from_str(r#"["read_receipts","edits"]"#).unwrap();
        assert_eq!(back, caps);
        assert!(serde_json::from_str::<Capabilities>(r#"["telepathy"]"#).is_err());
    }
}
