//! Resynchronising a room this daemon follows when its view fell behind the hub or forked from
//! it (a fanned-out commit that cannot be applied, an epoch gap after a lost `/notify`): the view
//! is replaced from the hub's GroupInfo and its ratchet tree, what changed meanwhile goes to the
//! journal with a notice for the legacy side, and the local clients rejoin by external commit
//! (openmls removes each one's earlier leaf in the same commit).

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;

use super::clients::client_of;
use super::engine::{ChangeOrigin, ProxyMls, journal};
use super::error::MlsError;
use super::public::{PublicView, namespace};
use super::storage::WorkingSet;
use crate::room::change::RoomChange;
use crate::room::validation::Rejection;
use crate::store::{mls_blobs, proxy_clients, room_groups};
use crate::uri::RoomUri;

/// What a resync found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resynced {
    /// The epoch the view stood at before.
    pub from_epoch: u64,
    /// The epoch of the hub's GroupInfo, where the view stands now.
    pub epoch: u64,
}

impl ProxyMls {
    /// Replaces the public view of `room` with the hub's GroupInfo (which carries the ratchet
    /// tree). Every leaf that claims this provider must be one of its own proxy clients, with
    /// its signature key: the hub cannot give our users clients we never made. The change of
    /// room state is journalled, then `notice` for the legacy side. Local clients keep their
    /// (stale) state until they rejoin; none decrypts for the room until then.
    pub async fn resync_view(
        &self,
        room: &RoomUri,
        group_info: &[u8],
        notice: &str,
    ) -> Result<Resynced, MlsError> {
        let malformed = |reason: String| MlsError::Malformed {
            what: "the hub's GroupInfo",
            reason,
        };
        let verifiable = match MlsMessageIn::tls_deserialize_exact(group_info)
            .map_err(|e| malformed(e.to_string()))?
            .extract()
        {
            MlsMessageBodyIn::GroupInfo(v) => v,
            _ => return Err(malformed("the message is not a GroupInfo".into())),
        };
        let tree = verifiable
            .extensions()
            .ratchet_tree()
            .map(|t| t.ratchet_tree().clone())
            .ok_or_else(|| malformed("it carries no ratchet tree".into()))?;
        let _guard = self.lock_room(room).await;
        let mut tx = self.store.begin().await?;
        let rg = self.room_group(&mut tx, room).await?;
        if verifiable.group_id().as_slice() != rg.group_id.as_slice() {
            return Err(malformed("it is for another group".into()));
        }
        let epoch = verifiable.epoch().as_u64();
        if epoch < rg.epoch as u64 {
            return Err(malformed(format!(
                "it is for epoch {epoch}, older than this side's view at epoch {}",
                rg.epoch
            )));
        }
        self.view_take(room);
        let ws = WorkingSet::load(&mut tx, &namespace(room), &self.key).await?;
        ws.clear()?;
        let (public, _) = PublicGroup::from_external(
            ws.provider().crypto(),
            ws.provider().storage(),
            tree,
            verifiable,
            ProposalStore::new(),
        )
        .map_err(|e| malformed(format!("{e:?}")))?;
        // The hub vouches for the tree; for this provider's own leaves we know better.
        for member in public.members() {
            let client = client_of(&member.credential)?;
            if client.provider() != &self.provider {
                continue;
            }
            let ours = proxy_clients::get(&mut *tx, client.as_str()).await?;
            if ours.is_none_or(|c| c.signature_public != member.signature_key) {
                return Err(MlsError::Rejected {
                    room: room.to_string(),
                    rejection: Rejection::not_allowed(format!(
                        "the hub's GroupInfo gives {client} a leaf this provider never made: \
                         the room is not resynchronised"
                    )),
                });
            }
        }
        let view = PublicView { ws, group: public };
        let after = view.state(room, &self.cp)?;
        self.fault("after-mls-step")?;
        room_groups::set_epoch(&mut *tx, room.as_str(), rg.epoch, epoch as i64).await?;
        // No local member can decrypt the new epochs until it has rejoined.
        room_groups::set_reader(&mut *tx, room.as_str(), None).await?;
        let hash = mls_blobs::put(&mut tx, group_info).await?;
        self.replace_group_info(&mut tx, room, Some(&hash)).await?;
        self.drop_removed_members(&mut tx, room, &view.group)
            .await?;
        let origin = ChangeOrigin::default();
        self.record_room_state(&mut tx, room, rg.epoch, &after, &origin)
            .await?;
        journal(
            &mut tx,
            room,
            &RoomChange {
                notice: Some(notice.to_owned()),
                ..Default::default()
            },
        )
        .await?;
        view.ws.flush(&mut tx, &self.key).await?;
        self.finish(tx, room, None, Some(view)).await?;
        Ok(Resynced {
            from_epoch: rg.epoch as u64,
            epoch,
        })
    }
}
