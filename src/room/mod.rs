//! The room layer: MIMI room state, room policy and the preemption rules.
//!
//! Pure logic, no I/O. Authorization policy controls the participant list
//! ([`authorization`]); the participant list controls the MLS group, and the hub checks
//! every handshake against both ([`validation`]). The state itself travels in the MLS
//! GroupContext `app_data_dictionary` in the wire forms of [`wire`].

pub mod authorization;
pub mod capability;
pub mod change;
pub mod code_points;
pub mod handshake;
pub mod state;
pub mod validation;
pub mod wire;
