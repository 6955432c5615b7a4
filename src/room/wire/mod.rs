//! Exact TLS-presentation-language codecs for the MIMI room state.
//!
//! One file per structure family, following the drafts:
//! - [`app_data`]: `AppDataDictionary` and `AppDataUpdate` (draft-ietf-mls-extensions, 16-bit component ids);
//! - [`participant_list`]: `ParticipantListData` / `ParticipantListUpdate` (protocol-06 §7.5);
//! - [`metadata`]: `RoomMetaData` (protocol-06 §7.6);
//! - [`roles`]: `RoleData` (room-policy-03);
//! - [`preauth`]: `PreAuthData` (room-policy-03);
//! - [`base_policy`]: `BaseRoomPolicy` (room-policy-03).
//!
//! Every type decodes with [`decode_exact`], which never panics and refuses trailing bytes.

pub mod app_data;
pub mod base_policy;
pub mod metadata;
pub mod participant_list;
pub mod preauth;
mod primitives;
pub mod roles;

pub use app_data::{
    AppDataDictionary, AppDataUpdate, AppDataUpdateOperation, ComponentData, ComponentId,
};
pub use base_policy::BaseRoomPolicy;
pub use metadata::{RichDescription, RoomMetaData};
pub use participant_list::{
    ParticipantListData, ParticipantListUpdate, UserIndexRolePair, UserRolePair,
};
pub use preauth::{Claim, ClaimId, PreAuthData, PreAuthRoleEntry};
pub use primitives::{TlsBool, Uri, Utf8String};
pub use roles::{CapabilityType, Role, RoleData, SingleSourceRoleChangeTargets};

use tls_codec::{Deserialize, Serialize};

/// A failure to decode or encode a room-state structure.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("malformed {structure}: {source}")]
    Codec {
        structure: &'static str,
        #[source]
        source: tls_codec::Error,
    },
    #[error("invalid {structure}: {reason}")]
    Invalid {
        structure: &'static str,
        reason: String,
    },
}

/// A room-state structure with a wire form and semantic checks beyond the grammar.
pub trait WireStruct: Serialize + Deserialize + Sized {
    /// The structure's name in the drafts, used in error messages.
    const NAME: &'static str;

    /// Checks what the TLS grammar cannot express (ordering, uniqueness, value ranges).
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Decodes exactly one structure from `bytes`: no trailing bytes, and the semantic checks pass.
pub fn decode_exact<T: WireStruct>(bytes: &[u8]) -> Result<T, WireError> {
    let value = T::tls_deserialize_exact(bytes).map_err(|source| WireError::Codec {
        structure: T::NAME,
        source,
    })?;
    value.check().map_err(|reason| WireError::Invalid {
        structure: T::NAME,
        reason,
    })?;
    Ok(value)
}

/// Encodes a structure after checking it, so that nothing invalid is ever put on the wire.
pub fn encode<T: WireStruct>(value: &T) -> Result<Vec<u8>, WireError> {
    value.check().map_err(|reason| WireError::Invalid {
        structure: T::NAME,
        reason,
    })?;
    value
        .tls_serialize_detached()
        .map_err(|source| WireError::Codec {
            structure: T::NAME,
            source,
        })
}

#[cfg(test)]
pub(crate) mod strategies;

#[cfg(test)]
mod tests;
