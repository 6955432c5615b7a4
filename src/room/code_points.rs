//! Component code points. The drafts only *suggest* most of them (no IANA assignment yet), so
//! every value is configurable; the defaults are the values the drafts suggest.

use serde::{Deserialize, Serialize};

use super::wire::ComponentId;

/// Where each piece of room state lives in the GroupContext `app_data_dictionary`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComponentCodePoints {
    /// participant_list (protocol-06 IANA section: 0x0022).
    pub participant_list: ComponentId,
    /// room_metadata (protocol-06: 0x0023).
    pub room_metadata: ComponentId,
    /// roles_list (room-policy-03 suggests 0x0025).
    pub roles_list: ComponentId,
    /// preauth_list (room-policy-03 suggests 0x0026).
    pub preauth_list: ComponentId,
    /// base_room_policy (room-policy-03 suggests 0x0027).
    pub base_room_policy: ComponentId,
}

impl Default for ComponentCodePoints {
    fn default() -> Self {
        ComponentCodePoints {
            participant_list: 0x0022,
            room_metadata: 0x0023,
            roles_list: 0x0025,
            preauth_list: 0x0026,
            base_room_policy: 0x0027,
        }
    }
}

impl ComponentCodePoints {
    /// Every component of the room state, with its name.
    pub fn named(&self) -> [(&'static str, ComponentId); 5] {
        [
            ("participant_list", self.participant_list),
            ("room_metadata", self.room_metadata),
            ("roles_list", self.roles_list),
            ("preauth_list", self.preauth_list),
            ("base_room_policy", self.base_room_policy),
        ]
    }

    /// Checks that the code points are distinct and outside the ranges mls-extensions keeps
    /// for itself (0x0000–0x0005 and GREASE values). Returns the offending field and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let named = self.named();
        for (i, (name, id)) in named.iter().enumerate() {
            if *id <= 0x0005 {
                return Err((
                    name,
                    format!("{id:#06x} is reserved by mls-extensions (0x0000-0x0005)"),
                ));
            }
            if id & 0x0F0F == 0x0A0A {
                return Err((name, format!("{id:#06x} is a GREASE value")));
            }
            if let Some((other, _)) = named[..i].iter().find(|(_, o)| o == id) {
                return Err((name, format!("{id:#06x} is already used by {other}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_drafts_suggestions_and_valid() {
        let cp = ComponentCodePoints::default();
        assert_eq!(cp.participant_list, 0x0022);
        assert_eq!(cp.base_room_policy, 0x0027);
        assert_eq!(cp.validate(), Ok(()));
    }

    #[test]
    fn duplicate_code_points_are_refused_with_the_field_name() {
        let cp = ComponentCodePoints {
            roles_list: 0x0022,
            ..Default::default()
        };
        let (field, why) = cp.validate().unwrap_err();
        assert_eq!(field, "roles_list");
        assert!(why.contains("participant_list"), "{why}");
    }

    #[test]
    fn reserved_and_grease_code_points_are_refused() {
        let cp = ComponentCodePoints {
            room_metadata: 0x0003,
            ..Default::default()
        };
        assert_eq!(cp.validate().unwrap_err().0, "room_metadata");
        let cp = ComponentCodePoints {
            preauth_list: 0x1A1A,
            ..Default::default()
        };
        assert!(cp.validate().unwrap_err().1.contains("GREASE"));
    }
}
