//! The -08 message ID.
//!
//! ```text
//! hash_output = SHA-256( u16be(len senderUri) || senderUri ||
//!                        u16be(len roomUri)   || roomUri   ||
//!                        message              || salt )
//! messageId   = 0x01 || hash_output[0..30]      (31 bytes of hash, 32 in all)
//! ```
//!
//! `message` is the entire encoded MIMI content document (which already
//! starts with the salt); the salt is appended again against SHA-256 length
//! extension.

use sha2::{Digest, Sha256};

use super::{ContentError, MessageId};

/// Hash algorithm identifier of SHA-256 (IANA named-information registry).
pub const HASH_ALG_SHA256: u8 = 0x01;

fn length_prefix(what: &'static str, value: &str) -> Result<[u8; 2], ContentError> {
    u16::try_from(value.len())
        .map(u16::to_be_bytes)
        .map_err(|_| ContentError::UriTooLong {
            what,
            len: value.len(),
        })
}

/// Computes the -08 message ID of an encoded message.
///
/// `message_cbor` must be the exact deterministic encoding of the message and
/// `salt` its salt (for a document that passed
/// [`MimiContent::from_cbor`](super::MimiContent::from_cbor), the received
/// bytes).
pub fn compute_message_id(
    sender_uri: &str,
    room_uri: &str,
    message_cbor: &[u8],
    salt: &[u8; 16],
) -> Result<MessageId, ContentError> {
    let mut hasher = Sha256::new();
    hasher.update(length_prefix("the sender URI", sender_uri)?);
    hasher.update(sender_uri.as_bytes());
    hasher.update(length_prefix("the room URI", room_uri)?);
    hasher.update(room_uri.as_bytes());
    hasher.update(message_cbor);
    hasher.update(salt);
    let hash = hasher.finalize();
    let mut id = [0u8; 32];
    id[0] = HASH_ALG_SHA256;
    id[1..].copy_from_slice(&hash[..31]);
    Ok(MessageId(id))
}
