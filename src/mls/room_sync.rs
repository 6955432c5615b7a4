//! Between the MLS group and the room core: room state out of the GroupContext, AppDataUpdate
//! proposals resolved through the room core, and a commit's effects checked by the hub rules.
//!
//! This is where the preemption chain holds for proxy clients: a commit whose room-state update
//! is invalid, or whose membership changes the room core does not allow (an Add of a
//! non-participant, a removal that leaves clients behind…), is rejected whole.

use openmls::component::ComponentData;
use openmls::extensions::AppDataDictionary as MlsDictionary;
use openmls::prelude::*;
use tls_codec::VLBytes;

use super::clients::{client_of, user_of};
use super::error::MlsError;
use crate::room::code_points::ComponentCodePoints;
use crate::room::handshake::{
    Change, Handshake, ProposalEffect, ProposalRef, Sender as RoomSender,
};
use crate::room::state::{Member, RoomState};
use crate::room::wire::{
    self, AppDataUpdate as WireUpdate, AppDataUpdateOperation as WireOp, ParticipantListUpdate,
};
use crate::uri::RoomUri;

/// The project's wire dictionary from openmls' one.
pub fn to_wire(dict: Option<&MlsDictionary>) -> wire::AppDataDictionary {
    let mut out = wire::AppDataDictionary::default();
    if let Some(dict) = dict {
        for entry in dict.entries() {
            out.set(entry.id(), entry.data().to_vec());
        }
    }
    out
}

/// openmls' dictionary from the project's wire one.
pub fn from_wire(dict: &wire::AppDataDictionary) -> MlsDictionary {
    let mut out = MlsDictionary::new();
    for c in &dict.component_data {
        out.insert(c.component_id, c.data.as_slice().to_vec());
    }
    out
}

/// The members of a group as the room core sees them: client URI and user of every leaf.
pub fn members(group: &PublicGroup) -> Result<Vec<Member>, MlsError> {
    group
        .members()
        .map(|m| {
            let client = client_of(&m.credential)?;
            let user = user_of(&client)?;
            Ok(Member::new(client, user))
        })
        .collect()
}

/// The room state a group's GroupContext confirms, with the proposals pending for the next
/// commit.
pub fn room_state<'a>(
    group: &PublicGroup,
    pending: impl IntoIterator<Item = &'a QueuedProposal>,
    room: &RoomUri,
    cp: &ComponentCodePoints,
) -> Result<RoomState, MlsError> {
    let dict = to_wire(
        group
            .group_context()
            .extensions()
            .app_data_dictionary()
            .map(|e| e.dictionary()),
    );
    let mut state = RoomState::from_app_data(
        room.clone(),
        group.group_context().epoch().as_u64(),
        &dict,
        cp,
        members(group)?,
    )
    .map_err(|e| MlsError::InvalidRoomState {
        room: room.to_string(),
        reason: e.to_string(),
    })?;
    state.pending = pending_effects(group, pending, cp)?;
    Ok(state)
}

/// The room state as a proxy member's group sees it.
pub fn member_room_state(
    group: &MlsGroup,
    room: &RoomUri,
    cp: &ComponentCodePoints,
) -> Result<RoomState, MlsError> {
    // A group this client was just removed from keeps its last proposals, whose senders
    // may be gone: there is nothing pending for it any more.
    if group.is_active() {
        room_state(group.public_group(), group.pending_proposals(), room, cp)
    } else {
        room_state(group.public_group(), [], room, cp)
    }
}

fn wire_update(p: &AppDataUpdateProposal) -> WireUpdate {
    WireUpdate {
        component_id: p.component_id(),
        op: match p.operation() {
            AppDataUpdateOperation::Update(data) => WireOp::Update(data.as_slice().to_vec().into()),
            AppDataUpdateOperation::Remove => WireOp::Remove,
        },
    }
}

/// The room-state changes a commit's AppDataUpdate proposals make, decoded by the room core.
pub fn decode_updates<'a>(
    room: &RoomUri,
    proposals: impl IntoIterator<Item = &'a AppDataUpdateProposal>,
    cp: &ComponentCodePoints,
) -> Result<Vec<Change>, MlsError> {
    proposals
        .into_iter()
        .map(|p| {
            Change::from_app_data_update(&wire_update(p), cp).map_err(|e| {
                MlsError::InvalidRoomState {
                    room: room.to_string(),
                    reason: e.to_string(),
                }
            })
        })
        .collect()
}

/// The new value of every component the changes touch, computed by the room core: the
/// participant-list updates applied to the list of the epoch, the other components replaced.
pub fn resolve(
    state: &RoomState,
    changes: &[Change],
    cp: &ComponentCodePoints,
) -> Result<Vec<ComponentData>, MlsError> {
    let invalid = |reason: String| MlsError::InvalidRoomState {
        room: state.room.to_string(),
        reason,
    };
    let mut out = Vec::new();
    let list_updates: Vec<&ParticipantListUpdate> = changes
        .iter()
        .filter_map(|c| match c {
            Change::ParticipantList(u) => Some(u),
            _ => None,
        })
        .collect();
    if !list_updates.is_empty() {
        let (list, _) = state
            .participants
            .apply_all(&list_updates)
            .map_err(|e| invalid(e.to_string()))?;
        let bytes = wire::encode(&list.to_wire()).map_err(|e| invalid(e.to_string()))?;
        out.push(ComponentData::from_parts(
            cp.participant_list,
            VLBytes::from(bytes),
        ));
    }
    // Whole-value components: the last update of each wins.
    for change in changes.iter().rev() {
        let Some(update) = change.to_app_data_update(cp) else {
            continue;
        };
        let update = update.map_err(|e| invalid(e.to_string()))?;
        if update.component_id == cp.participant_list
            || out.iter().any(|c| c.id() == update.component_id)
        {
            continue;
        }
        if let WireOp::Update(bytes) = update.op {
            out.push(ComponentData::from_parts(
                update.component_id,
                VLBytes::from(bytes.as_slice().to_vec()),
            ));
        }
    }
    Ok(out)
}

/// The sender of a handshake as the room core sees it.
pub fn room_sender(
    group: &PublicGroup,
    sender: &Sender,
    cp_joiner: Option<&Credential>,
) -> Result<RoomSender, MlsError> {
    match sender {
        Sender::Member(leaf) => {
            let member = group.leaf(*leaf).ok_or_else(|| MlsError::Malformed {
                what: "handshake",
                reason: format!("sender leaf {leaf:?} is not in the group"),
            })?;
            Ok(RoomSender::Member(client_of(member.credential())?))
        }
        Sender::NewMemberCommit | Sender::NewMemberProposal => {
            let credential = cp_joiner.ok_or_else(|| MlsError::Malformed {
                what: "handshake",
                reason: "a joining sender without a credential".into(),
            })?;
            let client = client_of(credential)?;
            let user = user_of(&client)?;
            Ok(RoomSender::NewMember {
                client,
                user,
                claims: Vec::new(),
            })
        }
        Sender::External(index) => {
            let senders = group
                .group_context()
                .extensions()
                .external_senders()
                .ok_or_else(|| MlsError::Malformed {
                    what: "handshake",
                    reason: "an external sender in a group without external_senders".into(),
                })?;
            // The index is only readable through its wire form (a big-endian uint32).
            let wire_index =
                tls_codec::Serialize::tls_serialize_detached(index).unwrap_or_default();
            let position = wire_index
                .try_into()
                .map(u32::from_be_bytes)
                .unwrap_or(u32::MAX) as usize;
            let sender = senders.get(position).ok_or_else(|| MlsError::Malformed {
                what: "handshake",
                reason: format!("external sender {position} is not listed"),
            })?;
            // openmls keeps the credential private; read it from the wire form
            // (signature_key<V> then Credential).
            let credential = external_sender_credential(sender)?;
            let basic = BasicCredential::try_from(credential).map_err(|e| MlsError::Malformed {
                what: "external sender credential",
                reason: format!("{e:?}"),
            })?;
            let text = String::from_utf8_lossy(basic.identity()).to_string();
            let provider = text.parse().map_err(|e| MlsError::Malformed {
                what: "external sender credential",
                reason: format!("`{text}` is not a provider: {e}"),
            })?;
            Ok(RoomSender::Server(provider))
        }
    }
}

/// The room-level effect of one queued proposal, with its MLS proposal reference.
pub fn proposal_effect(
    group: &PublicGroup,
    q: &QueuedProposal,
    sender: RoomSender,
    cp: &ComponentCodePoints,
) -> Result<ProposalEffect, MlsError> {
    let reference = ProposalRef(q.proposal_reference_ref().as_slice().to_vec());
    let change = match q.proposal() {
        Proposal::Add(add) => {
            let client = client_of(add.key_package().leaf_node().credential())?;
            let user = user_of(&client)?;
            Change::AddClient { client, user }
        }
        Proposal::Remove(remove) => {
            let member = group
                .leaf(remove.removed())
                .ok_or_else(|| MlsError::Malformed {
                    what: "Remove proposal",
                    reason: format!("leaf {:?} is not in the group", remove.removed()),
                })?;
            Change::RemoveClient {
                client: client_of(member.credential())?,
            }
        }
        Proposal::SelfRemove => Change::SelfRemove,
        Proposal::ExternalInit(_) => Change::ExternalInit,
        Proposal::Update(_) => Change::LeafUpdate,
        Proposal::AppDataUpdate(update) => Change::from_app_data_update(&wire_update(update), cp)
            .map_err(|e| MlsError::InvalidRoomState {
            room: String::from_utf8_lossy(group.group_id().as_slice()).to_string(),
            reason: e.to_string(),
        })?,
        other => {
            return Err(MlsError::Malformed {
                what: "proposal",
                reason: format!(
                    "proposal type {:?} is not allowed in a MIMI room",
                    other.proposal_type()
                ),
            });
        }
    };
    Ok(ProposalEffect::new(reference, sender, change))
}

/// The proposals the group holds for the next commit, as the room core's pending proposals.
pub fn pending_effects<'a>(
    group: &PublicGroup,
    pending: impl IntoIterator<Item = &'a QueuedProposal>,
    cp: &ComponentCodePoints,
) -> Result<Vec<ProposalEffect>, MlsError> {
    pending
        .into_iter()
        .map(|q| {
            let sender = room_sender(group, q.sender(), None)?;
            proposal_effect(group, q, sender, cp)
        })
        .collect()
}

/// The room-level effects of a staged commit, for the room core's validation.
pub fn commit_effects(
    group: &PublicGroup,
    commit_sender: &RoomSender,
    staged: &StagedCommit,
    cp: &ComponentCodePoints,
) -> Result<Handshake, MlsError> {
    let joiner = staged
        .update_path_leaf_node()
        .map(|l| l.credential().clone());
    let effects = staged
        .queued_proposals()
        .map(|q| {
            let sender = match q.sender() {
                Sender::NewMemberCommit => commit_sender.clone(),
                other => room_sender(group, other, joiner.as_ref())?,
            };
            proposal_effect(group, q, sender, cp)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Handshake::commit(
        group.group_context().epoch().as_u64(),
        commit_sender.clone(),
        effects,
    ))
}

fn external_sender_credential(
    sender: &openmls::extensions::ExternalSender,
) -> Result<Credential, MlsError> {
    use tls_codec::{Deserialize as _, Serialize as _};
    let malformed = |reason: String| MlsError::Malformed {
        what: "external sender",
        reason,
    };
    let bytes = sender
        .tls_serialize_detached()
        .map_err(|e| malformed(e.to_string()))?;
    let mut reader = bytes.as_slice();
    let _key = VLBytes::tls_deserialize(&mut reader).map_err(|e| malformed(e.to_string()))?;
    Credential::tls_deserialize(&mut reader).map_err(|e| malformed(e.to_string()))
}
