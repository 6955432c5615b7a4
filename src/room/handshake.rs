//! What a handshake does, as the hub sees it once the MLS layer has parsed it.
//!
//! The MLS layer turns a PublicMessage or SemiPrivateMessage (a commit, or a bundle of
//! proposals) into a [`Handshake`]: who sent it, for which epoch, and the room-level effect
//! of every proposal ([`ProposalEffect`]), each with its own sender. A commit lists both
//! its by-value proposals (sent by the committer) and the proposals it includes by
//! reference (sent earlier by others and cached by the hub). [`crate::room::validation`]
//! checks a handshake against the room state; nothing here does I/O or cryptography.

use std::fmt;

use crate::room::code_points::ComponentCodePoints;
use crate::room::wire::{
    AppDataUpdate, AppDataUpdateOperation, BaseRoomPolicy, Claim, ComponentId,
    ParticipantListUpdate, PreAuthData, RoleData, RoomMetaData, WireError, decode_exact, encode,
};
use crate::uri::{ClientUri, ProviderId, UserUri};

/// An MLS `ProposalRef` (RFC 9420 §5.2): the hash that names a proposal.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProposalRef(pub Vec<u8>);

impl ProposalRef {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for ProposalRef {
    fn from(bytes: Vec<u8>) -> Self {
        ProposalRef(bytes)
    }
}

impl From<&[u8]> for ProposalRef {
    fn from(bytes: &[u8]) -> Self {
        ProposalRef(bytes.to_vec())
    }
}

impl fmt::Display for ProposalRef {
    /// Lower-case hex, as people compare hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<empty>");
        }
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ProposalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProposalRef({self})")
    }
}

/// Who sent a proposal or commit, from its MLS sender and credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sender {
    /// A client in the group (MLS `member` sender); its user comes from the room's member list.
    Member(ClientUri),
    /// A client joining by external commit or external Add proposal (MLS `new_member_*`).
    /// `claims` are the credential claims the preauthorization list is matched against.
    NewMember {
        client: ClientUri,
        user: UserUri,
        claims: Vec<Claim>,
    },
    /// An external sender from the group's `external_senders`, such as the hub.
    Server(ProviderId),
}

impl Sender {
    /// The sending client, for member and joining senders.
    pub fn client(&self) -> Option<&ClientUri> {
        match self {
            Sender::Member(client) | Sender::NewMember { client, .. } => Some(client),
            Sender::Server(_) => None,
        }
    }
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sender::Member(client) => write!(f, "client {client}"),
            Sender::NewMember { client, user, .. } => {
                write!(f, "joining client {client} of {user}")
            }
            Sender::Server(provider) => write!(f, "server {provider}"),
        }
    }
}

/// The room-level effect of one MLS proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// AppDataUpdate of the participant list component.
    ParticipantList(ParticipantListUpdate),
    /// MLS Add of `client`, whose credential names `user`.
    AddClient { client: ClientUri, user: UserUri },
    /// MLS Remove of `client`.
    RemoveClient { client: ClientUri },
    /// SelfRemove (mls-extensions): the sending client leaves the group.
    SelfRemove,
    /// AppDataUpdate of the roles list (a whole replacement).
    Roles(RoleData),
    /// AppDataUpdate of the room metadata (a whole replacement).
    Metadata(RoomMetaData),
    /// AppDataUpdate of the preauthorization list (a whole replacement).
    PreAuth(PreAuthData),
    /// AppDataUpdate of the base room policy (a whole replacement).
    BasePolicy(BaseRoomPolicy),
    /// ExternalInit: the sender of an external commit joins the group.
    ExternalInit,
    /// An MLS Update (or any proposal that only refreshes the sender's leaf).
    LeafUpdate,
}

impl Change {
    /// A short name for messages ("participant-list update", "Add of mimi://…").
    pub fn describe(&self) -> String {
        match self {
            Change::ParticipantList(_) => "participant-list update".into(),
            Change::AddClient { client, .. } => format!("Add of {client}"),
            Change::RemoveClient { client } => format!("Remove of {client}"),
            Change::SelfRemove => "SelfRemove".into(),
            Change::Roles(_) => "roles update".into(),
            Change::Metadata(_) => "room-metadata update".into(),
            Change::PreAuth(_) => "preauthorization-list update".into(),
            Change::BasePolicy(_) => "base-room-policy update".into(),
            Change::ExternalInit => "ExternalInit".into(),
            Change::LeafUpdate => "Update".into(),
        }
    }

    /// Decodes an AppDataUpdate proposal for one of the MIMI room components.
    ///
    /// A `remove` of a room component, a component this hub does not handle, or bytes that
    /// do not decode are errors: the caller answers `invalidProposal` naming the proposal.
    pub fn from_app_data_update(
        update: &AppDataUpdate,
        code_points: &ComponentCodePoints,
    ) -> Result<Change, ChangeDecodeError> {
        let id = update.component_id;
        let name = component_name(id, code_points)
            .ok_or(ChangeDecodeError::UnknownComponent { component_id: id })?;
        let bytes = match &update.op {
            AppDataUpdateOperation::Update(bytes) => bytes.as_slice(),
            AppDataUpdateOperation::Remove => {
                return Err(ChangeDecodeError::RemoveNotAllowed {
                    component: name,
                    component_id: id,
                });
            }
        };
        let wrap = |source| ChangeDecodeError::Wire {
            component: name,
            component_id: id,
            source,
        };
        Ok(if id == code_points.participant_list {
            Change::ParticipantList(decode_exact(bytes).map_err(wrap)?)
        } else if id == code_points.roles_list {
            Change::Roles(decode_exact(bytes).map_err(wrap)?)
        } else if id == code_points.room_metadata {
            Change::Metadata(decode_exact(bytes).map_err(wrap)?)
        } else if id == code_points.preauth_list {
            Change::PreAuth(decode_exact(bytes).map_err(wrap)?)
        } else {
            Change::BasePolicy(decode_exact(bytes).map_err(wrap)?)
        })
    }

    /// The AppDataUpdate carrying this change, for the changes that are AppDataUpdates.
    pub fn to_app_data_update(
        &self,
        code_points: &ComponentCodePoints,
    ) -> Option<Result<AppDataUpdate, WireError>> {
        let (id, bytes) = match self {
            Change::ParticipantList(u) => (code_points.participant_list, encode(u)),
            Change::Roles(r) => (code_points.roles_list, encode(r)),
            Change::Metadata(m) => (code_points.room_metadata, encode(m)),
            Change::PreAuth(p) => (code_points.preauth_list, encode(p)),
            Change::BasePolicy(b) => (code_points.base_room_policy, encode(b)),
            _ => return None,
        };
        Some(bytes.map(|b| AppDataUpdate::update(id, b)))
    }
}

fn component_name(id: ComponentId, cp: &ComponentCodePoints) -> Option<&'static str> {
    [
        (cp.participant_list, "participant_list"),
        (cp.roles_list, "roles_list"),
        (cp.room_metadata, "room_metadata"),
        (cp.preauth_list, "preauth_list"),
        (cp.base_room_policy, "base_room_policy"),
    ]
    .into_iter()
    .find(|(c, _)| *c == id)
    .map(|(_, name)| name)
}

/// Why an AppDataUpdate could not be turned into a [`Change`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeDecodeError {
    #[error("AppDataUpdate for component {component_id:#06x}, which this hub does not handle")]
    UnknownComponent { component_id: ComponentId },
    #[error(
        "AppDataUpdate removes the {component} component ({component_id:#06x}); a room cannot drop it"
    )]
    RemoveNotAllowed {
        component: &'static str,
        component_id: ComponentId,
    },
    #[error("AppDataUpdate for {component} ({component_id:#06x}): {source}")]
    Wire {
        component: &'static str,
        component_id: ComponentId,
        #[source]
        source: WireError,
    },
}

/// One proposal of a handshake: its reference, its own sender and its effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalEffect {
    pub reference: ProposalRef,
    pub sender: Sender,
    pub change: Change,
}

impl ProposalEffect {
    pub fn new(reference: impl Into<ProposalRef>, sender: Sender, change: Change) -> Self {
        ProposalEffect {
            reference: reference.into(),
            sender,
            change,
        }
    }

    /// "participant-list update 0a1b… from client mimi://…", for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {} from {}",
            self.change.describe(),
            self.reference,
            self.sender
        )
    }
}

/// What the handshake carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeBody {
    /// A commit: its by-value proposals and the proposals it includes by reference, in
    /// commit order, each with its own sender.
    Commit { proposals: Vec<ProposalEffect> },
    /// One or more proposals (`proposalOrCommit` plus `moreProposals`).
    Proposals(Vec<ProposalEffect>),
}

/// One `/update` request, as the hub sees it after MLS parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The epoch the message was created in.
    pub epoch: u64,
    /// The sender of the commit, or of the first proposal.
    pub sender: Sender,
    pub body: HandshakeBody,
}

impl Handshake {
    pub fn commit(epoch: u64, sender: Sender, proposals: Vec<ProposalEffect>) -> Self {
        Handshake {
            epoch,
            sender,
            body: HandshakeBody::Commit { proposals },
        }
    }

    pub fn proposals(epoch: u64, sender: Sender, proposals: Vec<ProposalEffect>) -> Self {
        Handshake {
            epoch,
            sender,
            body: HandshakeBody::Proposals(proposals),
        }
    }

    pub fn is_commit(&self) -> bool {
        matches!(self.body, HandshakeBody::Commit { .. })
    }

    /// Every proposal the handshake carries.
    pub fn effects(&self) -> &[ProposalEffect] {
        match &self.body {
            HandshakeBody::Commit { proposals } => proposals,
            HandshakeBody::Proposals(proposals) => proposals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::wire::{UserIndexRolePair, UserRolePair};

    #[test]
    fn proposal_refs_print_as_hex() {
        assert_eq!(ProposalRef(vec![0x0a, 0xff, 0x00]).to_string(), "0aff00");
        assert_eq!(format!("{:?}", ProposalRef(vec![1])), "ProposalRef(01)");
        assert_eq!(ProposalRef(vec![]).to_string(), "<empty>");
    }

    #[test]
    fn app_data_updates_round_trip_through_changes() {
        let cp = ComponentCodePoints::default();
        let change = Change::ParticipantList(ParticipantListUpdate {
            changed_role_participants: vec![UserIndexRolePair {
                user_index: 0,
                role_index: 3,
            }],
            removed_indices: vec![1],
            added_participants: vec![UserRolePair::new("mimi://b.example/u/bob", 2)],
        });
        let update = change.to_app_data_update(&cp).unwrap().unwrap();
        assert_eq!(update.component_id, 0x0022);
        assert_eq!(Change::from_app_data_update(&update, &cp).unwrap(), change);

        let roles = Change::Roles(RoleData::default());
        let update = roles.to_app_data_update(&cp).unwrap().unwrap();
        assert_eq!(update.component_id, 0x0025);
        assert_eq!(Change::from_app_data_update(&update, &cp).unwrap(), roles);
        assert!(Change::SelfRemove.to_app_data_update(&cp).is_none());
    }

    #[test]
    fn bad_app_data_updates_are_named() {
        let cp = ComponentCodePoints::default();
        let err = Change::from_app_data_update(&AppDataUpdate::remove(0x0022), &cp).unwrap_err();
        assert!(err.to_string().contains("participant_list"), "{err}");
        let err =
            Change::from_app_data_update(&AppDataUpdate::update(0x0030, vec![]), &cp).unwrap_err();
        assert_eq!(
            err,
            ChangeDecodeError::UnknownComponent {
                component_id: 0x0030
            }
        );
        let err = Change::from_app_data_update(&AppDataUpdate::update(0x0022, vec![0xff]), &cp)
            .unwrap_err();
        assert!(
            matches!(
                err,
                ChangeDecodeError::Wire {
                    component: "participant_list",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn senders_describe_themselves() {
        let client: ClientUri = "mimi://a.example/d/alice/phone".parse().unwrap();
        assert_eq!(
            Sender::Member(client.clone()).to_string(),
            "client mimi://a.example/d/alice/phone"
        );
        assert_eq!(Sender::Member(client.clone()).client(), Some(&client));
        let server = Sender::Server("a.example".parse().unwrap());
        assert_eq!(server.to_string(), "server mimi://a.example");
        assert_eq!(server.client(), None);
    }
}
