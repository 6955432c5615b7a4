//! The participant list component (protocol-06 §7.5).

use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::WireStruct;
use super::primitives::check_utf8;

/// `struct { opaque user<V>; uint32 role_index; } UserRolePair;` — `user` is the user URI.
#[derive(Clone, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct UserRolePair {
    pub user: VLBytes,
    pub role_index: u32,
}

impl UserRolePair {
    pub fn new(user: impl AsRef<str>, role_index: u32) -> Self {
        UserRolePair {
            user: user.as_ref().as_bytes().to_vec().into(),
            role_index,
        }
    }
}

/// `struct { UserRolePair participants<V>; } ParticipantListData;` — the GroupContext data.
#[derive(Clone, Debug, Default, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ParticipantListData {
    pub participants: Vec<UserRolePair>,
}

impl WireStruct for ParticipantListData {
    const NAME: &'static str = "ParticipantListData";

    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.participants.iter().enumerate() {
            check_utf8(&format!("participants[{i}].user"), p.user.as_slice())?;
            if p.role_index == 0 {
                return Err(format!(
                    "participants[{i}] has role 0, which means 'not on the list'"
                ));
            }
            if !seen.insert(p.user.as_slice()) {
                return Err(format!("participants[{i}] lists a user twice"));
            }
        }
        Ok(())
    }
}

/// `struct { uint32 user_index; uint32 role_index; } UserindexRolePair;`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct UserIndexRolePair {
    pub user_index: u32,
    pub role_index: u32,
}

/// The `AppDataUpdate.update` bytes for the participant list.
///
/// Indices refer to the list before the update; the order of application is role changes,
/// then removals, then appends.
#[derive(Clone, Debug, Default, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ParticipantListUpdate {
    pub changed_role_participants: Vec<UserIndexRolePair>,
    pub removed_indices: Vec<u32>,
    pub added_participants: Vec<UserRolePair>,
}

impl ParticipantListUpdate {
    pub fn is_empty(&self) -> bool {
        self.changed_role_participants.is_empty()
            && self.removed_indices.is_empty()
            && self.added_participants.is_empty()
    }
}

impl WireStruct for ParticipantListUpdate {
    const NAME: &'static str = "ParticipantListUpdate";

    fn check(&self) -> Result<(), String> {
        for (i, p) in self.added_participants.iter().enumerate() {
            check_utf8(&format!("addedParticipants[{i}].user"), p.user.as_slice())?;
            if p.role_index == 0 {
                return Err(format!("addedParticipants[{i}] has role 0"));
            }
        }
        for (i, c) in self.changed_role_participants.iter().enumerate() {
            if c.role_index == 0 {
                return Err(format!(
                    "changedRoleParticipants[{i}] changes to role 0; removal goes through removedIndices"
                ));
            }
        }
        Ok(())
    }
}
