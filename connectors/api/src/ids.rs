//! Opaque identifiers.
//!
//! Every id in this crate is a newtype around a `String`, and is a plain JSON string on the wire.
//! The crate never parses or normalises them: two ids are equal when their strings are equal, byte
//! for byte. Use the newtypes rather than raw strings across layers so a room id can never be
//! passed where a user id is expected.
//!
//! | type | names | who mints it |
//! |---|---|---|
//! | [`LegacyUserId`] | a user of the legacy network (including ghosts of MIMI users) | the connector |
//! | [`LegacyRoomId`] | a room or conversation of the legacy network | the connector |
//! | [`LegacyMessageId`] | a message (or reaction) of the legacy network, unique within its room | the connector |
//! | [`LegacyEventId`] | one happening the connector submits; the de-duplication key | the connector |
//! | [`CommandId`] | one [`BridgeCommand`](crate::BridgeCommand); the same on every redelivery | the core |
//! | [`MimiUserRef`] | a MIMI user URI, e.g. `mimi://b.example/u/bob` | the core |
//! | [`MimiRoomRef`] | a MIMI room URI, e.g. `mimi://a.example/r/clubhouse` | the core |
//! | [`MimiMessageId`] | a MIMI message id (32 bytes) as 64 lowercase hex digits | the core |

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Wraps `id` as a [`", stringify!($name), "`], exactly as given.")]
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Unwraps the id into its `String`.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

opaque_id!(
    /// A user as the legacy network names it (a Matrix user id, a webhook provider's user id).
    ///
    /// Ghosts (legacy-side puppets of MIMI users, see
    /// [`Connector::ghost_user_id`](crate::Connector::ghost_user_id)) are legacy users too.
    LegacyUserId
);
opaque_id!(
    /// A room or conversation as the legacy network names it.
    LegacyRoomId
);
opaque_id!(
    /// A message as the legacy network names it. Reactions that have an id of their own on the
    /// legacy network use this type too.
    ///
    /// It must be unique within its room and stable: the core stores it to translate replies,
    /// edits, deletes and reactions between legacy and MIMI message ids.
    LegacyMessageId
);
opaque_id!(
    /// The identity of one happening on the legacy network, as submitted in a
    /// [`ConnectorEvent`](crate::ConnectorEvent).
    ///
    /// This is the de-duplication key: the core accepts each `LegacyEventId` once per connector
    /// and answers a re-submission with [`Accepted { duplicate: true }`](crate::Accepted). So the
    /// same happening must always get the same id (a Matrix event id, a webhook-id, a network's
    /// own update id), and two different happenings must never share one.
    LegacyEventId
);
opaque_id!(
    /// The identity of one [`BridgeCommand`](crate::BridgeCommand).
    ///
    /// The core may deliver a command more than once (after a crash, a timeout or a transient
    /// error); every redelivery carries the same id. A connector whose legacy network takes a
    /// transaction id should pass this one, and one whose network does not should remember the
    /// ids it has carried out.
    CommandId
);
opaque_id!(
    /// A MIMI user URI such as `mimi://b.example/u/bob`, held as a plain string.
    ///
    /// The core mints and checks these; connectors only pass them around, compare them and show
    /// them. The crate does not parse URIs.
    MimiUserRef
);
opaque_id!(
    /// A MIMI room URI such as `mimi://a.example/r/clubhouse`, held as a plain string.
    ///
    /// The core mints and checks these; connectors only pass them around, compare them and show
    /// them. The crate does not parse URIs.
    MimiRoomRef
);
opaque_id!(
    /// A MIMI message id: 32 bytes (the first is the hash algorithm, `01` for SHA-256), written
    /// as 64 lowercase hex digits, e.g. `017ce548…a096f4`.
    ///
    /// Edits, deletes and reaction changes refer to the id of the *first* version of a message.
    MimiMessageId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_strings_on_the_wire() {
        let id = LegacyUserId::new("@alice:hs.example");
        assert_eq!(id.to_string(), "@alice:hs.example");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"@alice:hs.example\"");
        let back: LegacyUserId = serde_json::from_str("\"@alice:hs.example\"").unwrap();
        assert_eq!(back, id);
    }

    #[test]
    fn ids_convert_and_borrow_as_str() {
        use std::collections::HashSet;
        let ids: HashSet<LegacyEventId> = ["e1", "e2"].into_iter().map(Into::into).collect();
        assert!(ids.contains("e1"));
        let room = MimiRoomRef::from(String::from("mimi://a.example/r/x"));
        assert_eq!(room.as_ref(), "mimi://a.example/r/x");
        assert_eq!(room.into_string(), "mimi://a.example/r/x");
    }
}
