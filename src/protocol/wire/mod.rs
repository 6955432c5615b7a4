//! Exact TLS-presentation-language codecs for the request and response bodies of
//! draft-ietf-mimi-protocol-06 §5.
//!
//! One file per endpoint family:
//! - [`common`]: `Protocol`, `IdentifierUri`, `SignWithLabel` / `EncryptWithLabel`;
//! - [`mls`]: the RFC 9420 structures inside the bodies (`MLSMessage`, `Welcome`, `GroupInfo`,
//!   `KeyPackage`, ratchet tree kept as exact bytes; `CipherSuite`, `ExternalSender`);
//! - [`ratchet_tree_options`]: `RatchetTreeOption`, `PartialGroupInfo`, `GroupInfoOption`;
//! - [`key_material`]: `/keyMaterial` (§5.2);
//! - [`update`]: `/update` (§5.3);
//! - [`submit`]: `/submitMessage` and franking (§5.4);
//! - [`fanout`]: `/notify` (§5.5), including splitting a body of concatenated messages;
//! - [`group_info`]: `/groupInfo` (§5.6);
//! - [`consent`]: `/requestConsent`, `/updateConsent` (§5.7);
//! - [`identifier`]: `/identifierQuery` (§5.8);
//! - [`abuse`]: `/reportAbuse` (§5.9).
//!
//! Every top-level body implements [`WireStruct`]: decode it with [`decode_exact`] (never panics,
//! refuses trailing bytes, runs the semantic check) and encode it with [`encode`] (checks first).
//!
//! # Readings of draft-ietf-mimi-protocol-06
//!
//! Where the draft is inconsistent, the codecs take the reading most likely to interoperate:
//! - `SubmitResponseCode` names code 0 `accepted` but the response selects on `success`
//!   (§5.4): both are code 0 ([`SubmitResponseCode::Accepted`], alias `SUCCESS`).
//! - `GroupInfoCode` has `success(1)` while every other status enum has success at 0 (§5.6):
//!   kept at 1 as written, since it is an explicit code point.
//! - `GroupInfoRequestTBS` has `optional opaque joiningCode<V>` but `GroupInfoRequest` has
//!   `opaque joiningCode<V>` (§5.6): both use `opaque<V>`, empty meaning no code, so the TBS is
//!   the request minus its signature like every other signed struct.
//! - `FanoutMessage` selects on `message.wire_format` but lists content types (§5.5): a Welcome
//!   selects `welcome`, a Public/PrivateMessage selects by its content type.
//! - `UpdateRequest` and `FanoutMessage` select on the room's protocol, which is not on the wire
//!   (§5.3, §5.5): no `Protocol` byte is written for them.
//! - `RoomId` (§5.7) is undefined and `IdentifierURI` (§5.4) is a misspelling: both are
//!   `IdentifierUri`.
//! - `string` (§5.3 `errorDescription`, §5.8 `fieldName`) is not a TLS type: read as the draft's
//!   `UTF8String` = `opaque<V>` holding UTF-8.
//! - `QueryElement` selects on `type` (§5.8); the field is `searchType`.
//! - `GroupInfoResponse` (and its TBS) names its `Protocol` field `version` but selects on
//!   `protocol` (§5.6): the select is on that field.
//! - `ClientKeyMaterial` selects on a `protocol` it does not contain (§5.2): the enclosing
//!   `KeyMaterialResponse.protocol`, which must be `mls10`.
//! - `optional Frank frank` (§5.4, §5.5) is the `optional<Frank>` of RFC 9420 §2.1.3 (one presence
//!   byte), and the enums' stray `;` separators (§5.2) change nothing on the wire.
//! - `HandshakeBundle` and `GroupInfoOption` lack closing braces for their `select`s (§5.3); the
//!   structure is unambiguous.
//! - `Welcome`, `GroupInfo` and `KeyPackage` fields are the bare RFC 9420 structs, not
//!   `MLSMessage`s: the draft writes `MLSMessage` where it means the framed message.
//! - `RatchetTreeOption` and `PartialGroupInfo` come from draft-mahy-mls-ratchet-tree-options
//!   and are not restated in protocol-06; the layouts follow the project's digest.
//! - SemiPrivateMessage (draft-mahy-mls-semiprivatemessage) has no wire format code point, so
//!   only PublicMessage handshakes decode.

pub mod abuse;
pub mod common;
pub mod consent;
pub mod fanout;
pub mod group_info;
pub mod identifier;
pub mod key_material;
pub mod mls;
pub mod ratchet_tree_options;
pub mod submit;
pub mod update;

pub use abuse::{AbuseReport, AbuseType, AbusiveMessage};
pub use common::{
    CryptoFailure, IdentifierUri, Protocol, decrypt_with_label, encrypt_with_label,
    sign_with_label, verify_with_label,
};
pub use consent::{Consent, ConsentEntry, ConsentOperation, ConsentScope};
pub use fanout::{FanoutBody, FanoutMessage, join_notify_body, split_notify_body};
pub use group_info::{
    GROUP_INFO_ENCRYPTION_LABEL, GROUP_INFO_REQUEST_LABEL, GROUP_INFO_RESPONSE_LABEL,
    GroupInfoCode, GroupInfoRatchetTreeTbe, GroupInfoRequest, GroupInfoRequestTbs,
    GroupInfoResponse, GroupInfoResponseTbs, GroupInfoStatus, GroupInfoSuccess, PendingProposal,
};
pub use identifier::{
    FieldSource, IdentifierQueryCode, IdentifierRequest, IdentifierResponse, ProfileField,
    QueryElement, SearchIdentifierType, SearchType, UserProfile,
};
pub use key_material::{
    ClientKeyMaterial, ClientStatus, KEY_MATERIAL_REQUEST_LABEL, KeyMaterialClientCode,
    KeyMaterialRequest, KeyMaterialRequestTbs, KeyMaterialResponse, KeyMaterialUserCode,
};
pub use mls::{
    CipherSuite, ExternalSender, GroupInfoBytes, HpkePublicKey, KeyPackageBytes, MessageKind,
    MlsBytes, MlsMessage, RatchetTreeBytes, RawExtension, WelcomeBytes,
};
pub use ratchet_tree_options::{
    GroupInfoOption, GroupInfoRepresentation, PartialGroupInfo, RatchetTreeOption,
    RatchetTreePresence, RatchetTreeRepresentation,
};
pub use submit::{
    FRANKING_INTEGRITY_LABEL, Frank, FrankingIntegrityTbs, ServerFrankingContext,
    SubmitMessageRequest, SubmitMessageResponse, SubmitResponseCode, SubmitStatus,
};
pub use update::{
    HandshakeBundle, HandshakeBundleBody, UpdateOutcome, UpdateRequest, UpdateResponseCode,
    UpdateRoomResponse,
};

pub use crate::room::wire::{WireError, WireStruct, decode_exact, encode};

#[cfg(test)]
mod fixtures;
