//! Application messages (`/submitMessage`): who may send them and who receives them.

use crate::room::authorization::{Actor, Policy};
use crate::room::state::RoomState;
use crate::uri::ClientUri;

use super::Rejection;

/// Checks that a client may send an application message (`/submitMessage`): it is a member,
/// its user is not blocked (removed, banned or exiting), and its role has canSendMessage.
pub fn check_application_message(state: &RoomState, sender: &ClientUri) -> Result<(), Rejection> {
    let member = state.member(sender).ok_or_else(|| {
        Rejection::not_allowed(format!(
            "{sender} is not a member of the room's group, so it cannot send messages"
        ))
    })?;
    if let Some(reason) = state.block_reason(&member.user) {
        return Err(Rejection::not_allowed(format!(
            "{sender} may not send messages: its user {} {reason}",
            member.user
        )));
    }
    let actor = Actor::user(
        member.user.clone(),
        state.participants.role_of(&member.user),
    );
    Policy::of(state)
        .send_message(&actor)
        .map_err(|err| Rejection::not_allowed(format!("{sender} may not send messages: {err}")))
}

/// Whether the hub may fan application messages out to this client: it is a member, its
/// user is not blocked, and its role has canReceiveMessage.
pub fn may_receive_application_messages(state: &RoomState, client: &ClientUri) -> bool {
    state.member(client).is_some_and(|m| {
        state.block_reason(&m.user).is_none()
            && Policy::of(state).may_receive_messages(state.participants.role_of(&m.user))
    })
}
