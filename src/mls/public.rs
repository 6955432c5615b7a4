//! The public view of a room: what every MIMI room we host or follow is, independent of which
//! local users are in it.
//!
//! The view is openmls' `PublicGroup` (ratchet tree, GroupContext with the room state in its
//! `app_data_dictionary`, pending proposals) in the openmls storage namespace `room:<room>`.
//! [`super::handshakes`] advances it with every handshake the hub accepts; this module opens,
//! installs and reads it.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use sqlx::AnyConnection;

use super::engine::{ChangeOrigin, Opened, ProxyMls, journal, stored_client};
use super::error::{MlsError, OpenmlsResult};
use super::room_sync;
use super::storage::WorkingSet;
use crate::room::change::RoomChange;
use crate::room::state::RoomState;
use crate::store::room_proxy_members::{self};
use crate::store::{StoreError, mls_blobs, room_groups, rooms};
use crate::uri::{ClientUri, RoomUri};

/// A room's public view, opened for an operation.
pub struct PublicView {
    pub(super) ws: WorkingSet,
    pub(super) group: PublicGroup,
}

/// The openmls storage namespace of a room's public view.
pub(super) fn namespace(room: &RoomUri) -> String {
    format!("room:{room}")
}

impl PublicView {
    pub fn epoch(&self) -> u64 {
        self.group.group_context().epoch().as_u64()
    }

    pub(super) fn pending(&self) -> Result<Vec<QueuedProposal>, MlsError> {
        Ok(self
            .group
            .queued_proposals(self.ws.provider().storage())
            .during("read pending proposals")?
            .into_iter()
            .map(|(_, q)| q)
            .collect())
    }

    /// The room state the GroupContext confirms, with the pending proposals.
    pub fn state(
        &self,
        room: &RoomUri,
        cp: &crate::room::code_points::ComponentCodePoints,
    ) -> Result<RoomState, MlsError> {
        room_sync::room_state(&self.group, &self.pending()?, room, cp)
    }

    /// The view of the group a member holds, replacing what `ws` held; with the GroupInfo it
    /// was made from.
    fn from_member(
        ws: WorkingSet,
        group: &MlsGroup,
        signer: &SignatureKeyPair,
    ) -> Result<(PublicView, Vec<u8>), MlsError> {
        let group_info = group
            .export_group_info(ws.provider().crypto(), signer, true)
            .during("export GroupInfo")?
            .tls_serialize_detached()
            .during("encode GroupInfo")?;
        let verifiable = match MlsMessageIn::tls_deserialize_exact(&group_info)
            .during("decode GroupInfo")?
            .extract()
        {
            MlsMessageBodyIn::GroupInfo(v) => v,
            _ => return Err(MlsError::Corrupt("an exported GroupInfo is not one".into())),
        };
        ws.clear()?;
        let (mut public, _) = PublicGroup::from_external(
            ws.provider().crypto(),
            ws.provider().storage(),
            group.export_ratchet_tree().into(),
            verifiable,
            ProposalStore::new(),
        )
        .during("public view from a member's group")?;
        for q in group.pending_proposals() {
            public
                .add_proposal(ws.provider().storage(), q.clone())
                .during("public view proposals")?;
        }
        Ok((PublicView { ws, group: public }, group_info))
    }
}

impl ProxyMls {
    pub(super) async fn room_group(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
    ) -> Result<room_groups::RoomGroupRecord, MlsError> {
        room_groups::get(&mut *tx, room.as_str())
            .await?
            .ok_or_else(|| MlsError::UnknownRoom(room.to_string()))
    }

    /// Opens the room's public view. A room from before public views is given one from its
    /// local reader's group.
    pub(super) async fn open_view(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
    ) -> Result<PublicView, MlsError> {
        if let Some(view) = self.view_take(room) {
            return Ok(view);
        }
        let rg = self.room_group(tx, room).await?;
        let ws = WorkingSet::load(&mut *tx, &namespace(room), &self.key).await?;
        let group = PublicGroup::load(ws.provider().storage(), &GroupId::from_slice(&rg.group_id))
            .during("load public view")?;
        if let Some(group) = group {
            return Ok(PublicView { ws, group });
        }
        let reader = rg.reader_client.as_deref().ok_or_else(|| {
            MlsError::Corrupt(format!(
                "room {room} has neither a public view nor a member"
            ))
        })?;
        let reader = stored_client(reader, "the reader of a room")?;
        // Written at once and on its own (a savepoint inside a transaction, a transaction of
        // its own on a connection that only reads): an operation may open the view before it
        // takes the write lock.
        let mut own = sqlx::Connection::begin(&mut *tx).await?;
        let mut m = self.open_member(&mut own, room, &rg, &reader).await?;
        let (view, _) = PublicView::from_member(ws, &m.group, &m.identity.signer)?;
        self.save_member(&mut own, room, &mut m).await?;
        view.ws.flush(&mut own, &self.key).await?;
        own.commit().await?;
        Ok(view)
    }

    /// Makes (or replaces) a room's public view from a member's group, with its GroupInfo.
    pub(super) async fn install_view(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        m: &Opened,
    ) -> Result<PublicView, MlsError> {
        self.view_take(room);
        let ws = WorkingSet::load(&mut *tx, &namespace(room), &self.key).await?;
        let (view, group_info) = PublicView::from_member(ws, &m.group, &m.identity.signer)?;
        view.ws.flush(&mut *tx, &self.key).await?;
        let hash = mls_blobs::put(&mut *tx, &group_info).await?;
        self.replace_group_info(tx, room, Some(&hash)).await?;
        Ok(view)
    }

    pub(super) async fn replace_group_info(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        hash: Option<&[u8]>,
    ) -> Result<(), MlsError> {
        let old = room_groups::group_info(&mut *tx, room.as_str()).await?;
        room_groups::set_group_info(&mut *tx, room.as_str(), hash).await?;
        if let Some(old) = old.filter(|o| Some(o.as_slice()) != hash) {
            mls_blobs::delete_if_unreferenced(&mut *tx, &old).await?;
        }
        Ok(())
    }

    /// The room state its public view confirms.
    pub async fn room_state(&self, room: &RoomUri) -> Result<RoomState, MlsError> {
        let _guard = self.lock_room(room).await;
        // A cached view is the stored one (it goes back to the cache only once its transaction
        // committed): reading it needs no transaction.
        if let Some(view) = self.view_take(room) {
            let state = view.state(room, &self.cp);
            self.view_put(room, view);
            return state;
        }
        let mut tx = self.store.begin().await?;
        let view = self.open_view(&mut tx, room).await?;
        let state = view.state(room, &self.cp)?;
        self.finish(tx, room, None, Some(view)).await?;
        Ok(state)
    }

    /// The room state, and the epoch authenticator when a local member can tell it (it is a
    /// secret of the members: a room with none has the state only).
    pub async fn room_view(
        &self,
        room: &RoomUri,
    ) -> Result<(RoomState, Option<Vec<u8>>), MlsError> {
        let state = self.room_state(room).await?;
        let reader = {
            let mut conn = self.store.pool().acquire().await?;
            room_groups::get(&mut *conn, room.as_str())
                .await?
                .and_then(|rg| rg.reader_client)
        };
        let Some(reader) = reader.and_then(|r| ClientUri::from_bytes(r.as_bytes()).ok()) else {
            return Ok((state, None));
        };
        let (_, authenticator) = self.member_view(room, &reader).await?;
        Ok((state, Some(authenticator)))
    }

    /// The GroupContext state as a given local member sees it, after catching up, with its
    /// epoch authenticator.
    pub async fn member_view(
        &self,
        room: &RoomUri,
        client: &ClientUri,
    ) -> Result<(RoomState, Vec<u8>), MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let rg = self.room_group(&mut tx, room).await?;
        let mut m = self.open_member(&mut tx, room, &rg, client).await?;
        let state = room_sync::member_room_state(&m.group, room, &self.cp)?;
        let authenticator = m.group.epoch_authenticator().as_slice().to_vec();
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m), None).await?;
        Ok((state, authenticator))
    }

    /// The GroupInfo of the room's current epoch as its last committer sent it, or exported by
    /// a local member when none was kept; `None` when neither is there.
    pub async fn group_info(&self, room: &RoomUri) -> Result<Option<Vec<u8>>, MlsError> {
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let rg = self.room_group(&mut tx, room).await?;
        if let Some(hash) = room_groups::group_info(&mut *tx, room.as_str()).await?
            && let Some(bytes) = mls_blobs::get(&mut tx, &hash).await?
        {
            return Ok(Some(bytes));
        }
        let Some(reader) = rg
            .reader_client
            .as_deref()
            .and_then(|r| ClientUri::from_bytes(r.as_bytes()).ok())
        else {
            return Ok(None);
        };
        let mut m = self.open_member(&mut tx, room, &rg, &reader).await?;
        let gi = m
            .group
            .export_group_info(m.ws.provider().crypto(), &m.identity.signer, true)
            .during("export GroupInfo")?
            .tls_serialize_detached()
            .during("encode GroupInfo")?;
        self.save_member(&mut tx, room, &mut m).await?;
        self.finish(tx, room, Some(m), None).await?;
        Ok(Some(gi))
    }

    /// The local members of a room (to pick one that decrypts, or none).
    pub async fn local_members(&self, room: &RoomUri) -> Result<Vec<String>, MlsError> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(room_proxy_members::list(&mut *conn, room.as_str())
            .await?
            .into_iter()
            .map(|m| m.client_uri)
            .collect())
    }

    /// Stores the room's new state and journals what changed for the bridge core.
    pub(super) async fn record_room_state(
        &self,
        tx: &mut AnyConnection,
        room: &RoomUri,
        from_epoch: i64,
        state: &RoomState,
        origin: &ChangeOrigin,
    ) -> Result<(), MlsError> {
        let before = match rooms::get(&mut *tx, room.as_str()).await? {
            Some(record) => Some(self.decode_room_state(room, &record)?),
            None => None,
        };
        let mut change = RoomChange::between(before.as_ref(), state).with_leavers(&origin.leavers);
        if !change.is_empty() {
            change.committer = origin.committer.clone();
            change.legacy_event = origin.legacy_event;
            journal(tx, room, &change).await?;
        }
        let dict = state
            .to_app_data(&self.cp)
            .map_err(|e| MlsError::InvalidRoomState {
                room: room.to_string(),
                reason: e.to_string(),
            })?;
        let bytes = crate::room::wire::encode(&dict).map_err(|e| MlsError::InvalidRoomState {
            room: room.to_string(),
            reason: e.to_string(),
        })?;
        match rooms::advance_epoch(tx, room.as_str(), from_epoch, state.epoch as i64, &bytes).await
        {
            Ok(()) | Err(StoreError::RoomNotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn decode_room_state(
        &self,
        room: &RoomUri,
        record: &rooms::RoomRecord,
    ) -> Result<RoomState, MlsError> {
        let invalid = |reason: String| MlsError::InvalidRoomState {
            room: room.to_string(),
            reason,
        };
        let dict: crate::room::wire::AppDataDictionary =
            crate::room::wire::decode_exact(&record.app_data)
                .map_err(|e| invalid(e.to_string()))?;
        RoomState::from_app_data(room.clone(), record.epoch as u64, &dict, &self.cp, vec![])
            .map_err(|e| invalid(e.to_string()))
    }
}
