//! The connector API of mimi-bridge: what a legacy-network connector implements and exchanges
//! with the bridge core. It knows nothing of MLS, the hub or MIMI wire formats.
//!
//! This crate is deliberately small for now: it holds the opaque identifiers a connector uses.
//! The `Connector` trait and its events arrive with the webhook connector.
#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

opaque_id!(
    /// A user as the legacy network names it (a Matrix user id, a webhook provider's user id).
    LegacyUserId
);
opaque_id!(
    /// A room or conversation as the legacy network names it.
    LegacyRoomId
);
opaque_id!(
    /// A message as the legacy network names it.
    LegacyMessageId
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
}
