//! [`StateError`]: what is wrong with a room state or a participant-list update, and where.

use crate::room::wire::{ComponentId, WireError};
use crate::uri::{ClientUri, RoomUri, UriError, UserUri};

/// A room-state error; the message says what is wrong and where.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("{at}: `{value}` is not a MIMI user URI: {source}")]
    InvalidUser {
        at: String,
        value: String,
        #[source]
        source: UriError,
    },
    #[error("{at}: {user} has role 0, which means 'not on the participant list'")]
    RoleZero { at: String, user: UserUri },
    #[error("{at}: {user} is already listed at participants[{first}]")]
    DuplicateUser {
        at: String,
        user: UserUri,
        first: usize,
    },
    #[error("{at}: index {index} is out of range, the participant list has {len} entries")]
    IndexOutOfRange { at: String, index: u32, len: usize },
    #[error("{second} repeats the index of {first} ({user})")]
    DuplicateIndex {
        first: String,
        second: String,
        user: UserUri,
    },
    #[error(
        "{user} is touched twice, by {first} and by {second}: a user may be added, removed or change role only once per commit"
    )]
    UserTouchedTwice {
        user: UserUri,
        first: String,
        second: String,
    },
    #[error("{at}: changes the role of {user} to 0; removal goes through removedIndices")]
    RoleChangeToZero { at: String, user: UserUri },
    #[error("{at}: {user} already has role {role}, so this is not a role change")]
    SameRole {
        at: String,
        user: UserUri,
        role: u32,
    },
    #[error("{at}: {user} is already a participant (participants[{index}]) and cannot be added")]
    AlreadyListed {
        at: String,
        user: UserUri,
        index: usize,
    },
    #[error("the app_data_dictionary has no {name} component ({id:#06x})")]
    MissingComponent { name: &'static str, id: ComponentId },
    #[error("component {name} ({id:#06x}): {source}")]
    Component {
        name: &'static str,
        id: ComponentId,
        #[source]
        source: WireError,
    },
    #[error("{user} has role {role}, which the room's roles list does not define")]
    UndefinedRole { user: UserUri, role: u32 },
    #[error("the room metadata names room `{found}`, but this is room {expected}")]
    RoomMismatch { expected: RoomUri, found: String },
    #[error("client {client} is listed twice among the group members")]
    DuplicateMember { client: ClientUri },
    #[error(
        "client {client} is in the group, but its user {user} has role {role} (not listed or banned) and may have no clients"
    )]
    MemberNotAllowed {
        client: ClientUri,
        user: UserUri,
        role: u32,
    },
}
