//! The base room policy component (room-policy-03, "Base Room Policy").

use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize};

use super::WireStruct;
use super::app_data::ComponentId;
use super::primitives::{TlsBool, Uri, check_utf8};

/// `BaseRoomPolicy`. `parent_room` is `Uri parent_room<V>` in the draft: zero or one URI in practice.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct BaseRoomPolicy {
    pub fixed_membership: TlsBool,
    pub parent_dependant: TlsBool,
    pub parent_room: Vec<Uri>,
    pub multi_device: TlsBool,
    pub max_clients: Option<u32>,
    pub max_users: Option<u32>,
    pub pseudonyms_allowed: TlsBool,
    pub persistent_room: TlsBool,
    pub discoverable: TlsBool,
    pub policy_component_ids: Vec<ComponentId>,
}

impl Default for BaseRoomPolicy {
    /// The draft's defaults: multi-device on, everything else off, no limits.
    fn default() -> Self {
        BaseRoomPolicy {
            fixed_membership: TlsBool(false),
            parent_dependant: TlsBool(false),
            parent_room: Vec::new(),
            multi_device: TlsBool(true),
            max_clients: None,
            max_users: None,
            pseudonyms_allowed: TlsBool(false),
            persistent_room: TlsBool(false),
            discoverable: TlsBool(false),
            policy_component_ids: Vec::new(),
        }
    }
}

impl WireStruct for BaseRoomPolicy {
    const NAME: &'static str = "BaseRoomPolicy";

    fn check(&self) -> Result<(), String> {
        for (i, u) in self.parent_room.iter().enumerate() {
            check_utf8(&format!("parent_room[{i}]"), u.uri.as_slice())?;
        }
        if self.parent_dependant.0 && self.parent_room.is_empty() {
            return Err("parent_dependant is set but parent_room is empty".into());
        }
        if self.parent_room.len() > 1 {
            return Err(format!(
                "parent_room holds {} URIs; a room has at most one parent",
                self.parent_room.len()
            ));
        }
        Ok(())
    }
}
