//! A refusal of the hub: the protocol-06 `UpdateResponseCode` ([`RejectCode`]) and the
//! `errorDescription` that goes with it ([`Rejection`]).

use crate::room::handshake::ProposalRef;

/// The `UpdateResponseCode` of a refusal, with its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RejectCode {
    /// `wrongEpoch(1)`: the hub is in another epoch.
    WrongEpoch { current_epoch: u64 },
    /// `notAllowed(2)`: a policy or authorization rule forbids the request.
    NotAllowed,
    /// `invalidProposal(3)`: these proposals cannot be applied as they stand.
    InvalidProposal { proposals: Vec<ProposalRef> },
}

impl RejectCode {
    /// The protocol-06 `UpdateResponseCode` value.
    pub fn code_point(&self) -> u8 {
        match self {
            RejectCode::WrongEpoch { .. } => 1,
            RejectCode::NotAllowed => 2,
            RejectCode::InvalidProposal { .. } => 3,
        }
    }

    /// The protocol-06 name of the code.
    pub fn name(&self) -> &'static str {
        match self {
            RejectCode::WrongEpoch { .. } => "wrongEpoch",
            RejectCode::NotAllowed => "notAllowed",
            RejectCode::InvalidProposal { .. } => "invalidProposal",
        }
    }
}

/// Why the hub refuses a handshake or message; `reason` is the `errorDescription`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", .code.name())]
pub struct Rejection {
    pub code: RejectCode,
    pub reason: String,
}

impl Rejection {
    pub fn wrong_epoch(current_epoch: u64, reason: impl Into<String>) -> Self {
        Rejection {
            code: RejectCode::WrongEpoch { current_epoch },
            reason: reason.into(),
        }
    }

    pub fn not_allowed(reason: impl Into<String>) -> Self {
        Rejection {
            code: RejectCode::NotAllowed,
            reason: reason.into(),
        }
    }

    pub fn invalid(proposals: Vec<ProposalRef>, reason: impl Into<String>) -> Self {
        Rejection {
            code: RejectCode::InvalidProposal { proposals },
            reason: reason.into(),
        }
    }
}
