//! The hub's validation of one handshake (mimi-spec §5.5) and of application messages.
//!
//! [`validate_handshake`] answers an `/update` request: a commit either moves the room to the
//! next epoch or is refused; proposals are either cached in [`RoomState::pending`](crate::room::state::RoomState::pending) or refused.
//! Refusals map to the protocol-06 `UpdateResponseCode`s: `wrongEpoch` (1), `notAllowed` (2,
//! a policy or authorization rule) and `invalidProposal` (3, a proposal that cannot be
//! applied as it stands, named by its reference).
//!
//! The checks run in this order, and the first failure is the answer:
//! 1. the epoch;
//! 2. the sender: a member that is not blocked, a joining client that is not banned or
//!    exiting; servers may propose but not commit;
//! 3. for commits, the proposals included by reference must be ones the hub accepted, and
//!    every cached proposal must be included;
//! 4. each proposal on its own (indices in range, URIs, wire rules, clients that exist);
//! 5. the commit's composition (one operation per user, no roles update with list changes,
//!    no preauthorization update with list changes other than removals, at most one update
//!    of each whole-value component);
//! 6. membership consistency (join order, a removed or banned user keeps no clients);
//! 7. authorization of every proposal by its own sender;
//! 8. the room's limits on the resulting state.
//!
//! The hub applies accepted proposals at once for later validation (protocol-06 §7.1): they
//! stay in `pending`, `participants` stays the list of the GroupContext, and a user that a
//! pending proposal removes or bans is *exiting*: [`RoomState::block_reason`](crate::room::state::RoomState::block_reason) blocks its
//! clients from everything but their own removal.

// `AuthzError` carries typed URIs and is large; see `authorization`.
#![allow(clippy::result_large_err)]

mod application;
mod handshake;
mod proposals;
mod rejection;

pub use application::{check_application_message, may_receive_application_messages};
pub use handshake::{Accepted, validate_handshake};
pub use rejection::{RejectCode, Rejection};

// The tests take their names from here (`use super::*`).
#[cfg(test)]
use crate::room::handshake::{
    Change, Handshake, HandshakeBody, ProposalEffect, ProposalRef, Sender,
};
#[cfg(test)]
use crate::room::state::{BANNED_ROLE, BlockReason, Member, RoomState};
#[cfg(test)]
use crate::uri::{ClientUri, UserUri};
#[cfg(test)]
use std::fmt;

#[cfg(test)]
mod tests;
