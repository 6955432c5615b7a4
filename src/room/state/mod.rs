//! The room state the hub and every client agree on.
//!
//! A *participant* is a user on the participant list (with one role); a *member* is a client
//! in the room's MLS group. The participant list, roles, preauthorization list, base policy
//! and metadata travel in the GroupContext `app_data_dictionary` ([`RoomState::to_app_data`],
//! [`RoomState::from_app_data`]); the members come from the MLS tree. `pending` holds the
//! proposals the hub accepted and cached in the current epoch: the next commit must include
//! them, and the hub already treats their participant-list effect as done (protocol-06 §7.1).

// The errors carry typed URIs (a `UserUri` is about 100 bytes) so that callers can act on
// them; they are only built on the refusal path, so their size costs nothing that matters.
#![allow(clippy::result_large_err)]

mod default_roles;
mod error;
mod participants;
mod room_state;

use crate::room::handshake::ProposalEffect;

// The tests take their names from here (`use super::*`).
#[cfg(test)]
use crate::room::{
    capability::Capability,
    code_points::ComponentCodePoints,
    handshake::Change,
    wire::{BaseRoomPolicy, ParticipantListUpdate, UserRolePair, WireStruct},
};
#[cfg(test)]
use crate::uri::{ClientUri, UserUri};

pub use default_roles::default_roles;
pub use error::StateError;
pub use participants::{Participant, ParticipantList, ParticipantListChanges, RoleChange};
pub use room_state::{BlockReason, Member, RoomState};

/// Role 0: not (or no longer) on the participant list.
pub const NO_ROLE: u32 = 0;
/// Role 1: the `banned` role of room-policy-03, when the room defines it.
pub const BANNED_ROLE: u32 = 1;

/// A proposal the hub accepted and cached for the next commit.
pub type PendingProposal = ProposalEffect;

#[cfg(test)]
mod tests;
