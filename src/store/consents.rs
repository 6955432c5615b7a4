//! Table `consents`: who agreed to be added to rooms by whom.

use sqlx::{AnyExecutor, Row};

use super::{StoreError, now_ms};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentState {
    Requested,
    Granted,
    Revoked,
    Cancelled,
}

impl ConsentState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentState::Requested => "requested",
            ConsentState::Granted => "granted",
            ConsentState::Revoked => "revoked",
            ConsentState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Option<ConsentState> {
        Some(match s {
            "requested" => ConsentState::Requested,
            "granted" => ConsentState::Granted,
            "revoked" => ConsentState::Revoked,
            "cancelled" => ConsentState::Cancelled,
            _ => return None,
        })
    }
}

/// Records the latest state of a consent; `room` None means any room.
pub async fn set<'e>(
    db: impl AnyExecutor<'e>,
    requester: &str,
    target: &str,
    room: Option<&str>,
    state: ConsentState,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO consents (requester_uri, target_uri, room_id, state, updated_at_ms) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (requester_uri, target_uri, room_id) DO UPDATE SET state = excluded.state, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(requester)
    .bind(target)
    .bind(room.unwrap_or(""))
    .bind(state.as_str())
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}

/// The consent that applies to adding `target` to `room` on behalf of `requester`: one for
/// the room, else one for any room.
pub async fn effective<'e>(
    db: impl AnyExecutor<'e>,
    requester: &str,
    target: &str,
    room: &str,
) -> Result<Option<ConsentState>, StoreError> {
    let rows = sqlx::query(
        "SELECT room_id, state FROM consents WHERE requester_uri = $1 AND target_uri = $2 \
         AND (room_id = $3 OR room_id = '')",
    )
    .bind(requester)
    .bind(target)
    .bind(room)
    .fetch_all(db)
    .await?;
    let (mut this_room, mut any_room) = (None, None);
    for row in rows {
        let room_id: String = row.try_get("room_id")?;
        let state = ConsentState::parse(&row.try_get::<String, _>("state")?);
        if room_id.is_empty() {
            any_room = state;
        } else {
            this_room = state;
        }
    }
    // The room's own answer wins, but a pending request for the room does not hide an answer
    // already given for every room.
    Ok(match (this_room, any_room) {
        (Some(ConsentState::Requested), Some(any)) => Some(any),
        (Some(room), _) => Some(room),
        (None, any) => any,
    })
}

/// Whether `target` granted `requester` consent for some room other than `room` (and not for
/// every room): what `noConsentForThisRoom` tells (protocol-06 §5.2).
pub async fn granted_for_another_room<'e>(
    db: impl AnyExecutor<'e>,
    requester: &str,
    target: &str,
    room: &str,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "SELECT 1 AS found FROM consents WHERE requester_uri = $1 AND target_uri = $2 \
         AND room_id <> '' AND room_id <> $3 AND state = $4 LIMIT 1",
    )
    .bind(requester)
    .bind(target)
    .bind(room)
    .bind(ConsentState::Granted.as_str())
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
}

/// Records a request unless the consent was granted already — atomically, so that a request
/// racing with the grant cannot overwrite it.
pub async fn request<'e>(
    db: impl AnyExecutor<'e>,
    requester: &str,
    target: &str,
    room: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO consents (requester_uri, target_uri, room_id, state, updated_at_ms) VALUES ($1, $2, $3, 'requested', $4) \
         ON CONFLICT (requester_uri, target_uri, room_id) DO UPDATE SET state = excluded.state, updated_at_ms = excluded.updated_at_ms \
         WHERE consents.state <> 'granted'",
    )
    .bind(requester)
    .bind(target)
    .bind(room.unwrap_or(""))
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}
