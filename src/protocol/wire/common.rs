//! Shared pieces of the endpoint bodies: `Protocol`, `IdentifierUri`, the URI and text checks,
//! and RFC 9420 `SignWithLabel` / `EncryptWithLabel` for the signed and encrypted MIMI structs.

use openmls::prelude::{Ciphersuite, HpkeCiphertext, OpenMlsCrypto, SignatureScheme};
use openmls_traits::signatures::Signer;
use tls_codec::{Serialize, TlsDeserialize, TlsSerialize, TlsSize, VLByteSlice, VLBytes};

use crate::room::wire::WireError;
use crate::uri::{MimiUri, UriError, UriKind};

/// `enum { reserved(0), mls10(1), (255) } Protocol;` (protocol-06 §5).
///
/// Only `mls10` has a body; every structure carrying a `Protocol` refuses `reserved` in its
/// semantic check (the draft defines no `select` arm for it).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize,
)]
#[repr(u8)]
pub enum Protocol {
    Reserved = 0,
    #[default]
    Mls10 = 1,
}

pub(crate) fn check_protocol(protocol: Protocol) -> Result<(), String> {
    match protocol {
        Protocol::Mls10 => Ok(()),
        Protocol::Reserved => Err("protocol is reserved(0); only mls10(1) has a body".into()),
    }
}

/// `struct { opaque uri<V>; } IdentifierUri;` (protocol-06 §5.2).
///
/// The draft also writes `IdentifierURI` (§5.4) and uses `RoomId` (§5.7) without defining it;
/// both are read as this type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct IdentifierUri {
    pub uri: VLBytes,
}

impl IdentifierUri {
    pub fn new(uri: impl AsRef<str>) -> Self {
        IdentifierUri {
            uri: uri.as_ref().as_bytes().to_vec().into(),
        }
    }

    /// The empty URI, for fields the draft lets the sender leave out (e.g. an anonymous
    /// `reportingUser`, or a `roomId` outside the context of a room).
    pub fn empty() -> Self {
        IdentifierUri {
            uri: VLBytes::new(Vec::new()),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.uri.as_slice()
    }

    /// The URI text, or `None` when the bytes are not UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.uri.as_slice()).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.uri.as_slice().is_empty()
    }

    /// The MIMI identifier these bytes name.
    pub fn to_mimi(&self) -> Result<MimiUri, UriError> {
        MimiUri::from_bytes(self.uri.as_slice())
    }
}

impl From<&MimiUri> for IdentifierUri {
    fn from(uri: &MimiUri) -> Self {
        IdentifierUri {
            uri: uri.to_bytes().into(),
        }
    }
}

impl From<MimiUri> for IdentifierUri {
    fn from(uri: MimiUri) -> Self {
        IdentifierUri::from(&uri)
    }
}

/// Users and pseudonyms: whoever can act as a participant (protocol-06 §5.4 allows a pseudonym
/// as `sendingUri`).
pub(crate) const PARTICIPANT: &[UriKind] = &[UriKind::User, UriKind::Pseudonym];
pub(crate) const USER: &[UriKind] = &[UriKind::User];
pub(crate) const CLIENT: &[UriKind] = &[UriKind::Client];
pub(crate) const ROOM: &[UriKind] = &[UriKind::Room];

/// Checks that `bytes` is a UTF-8 `mimi://` URI of one of the `kinds`.
pub(crate) fn check_mimi(field: &str, bytes: &[u8], kinds: &[UriKind]) -> Result<(), String> {
    let uri = MimiUri::from_bytes(bytes).map_err(|e| format!("{field}: {e}"))?;
    if kinds.contains(&uri.kind()) {
        Ok(())
    } else {
        let expected: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        Err(format!(
            "{field} is a {} URI, expected {}",
            uri.kind().name(),
            expected.join(" or ")
        ))
    }
}

pub(crate) fn check_uri(field: &str, uri: &IdentifierUri, kinds: &[UriKind]) -> Result<(), String> {
    check_mimi(field, uri.as_bytes(), kinds)
}

/// Like [`check_uri`], but an empty URI is allowed.
pub(crate) fn check_optional_uri(
    field: &str,
    uri: &IdentifierUri,
    kinds: &[UriKind],
) -> Result<(), String> {
    if uri.is_empty() {
        Ok(())
    } else {
        check_uri(field, uri, kinds)
    }
}

/// Checks that an opaque field the draft declares as text is UTF-8.
pub(crate) fn check_utf8(field: &str, bytes: &[u8]) -> Result<(), String> {
    std::str::from_utf8(bytes)
        .map(|_| ())
        .map_err(|e| format!("{field} is not UTF-8 (at byte {})", e.valid_up_to()))
}

/// The RFC 9420 label prefix of `SignWithLabel` and `EncryptWithLabel`.
const LABEL_PREFIX: &[u8] = b"MLS 1.0 ";

fn labelled(label: &str, content: &[u8]) -> Result<Vec<u8>, tls_codec::Error> {
    // struct { opaque label<V>; opaque content<V>; } SignContent / EncryptContext
    let mut full_label = LABEL_PREFIX.to_vec();
    full_label.extend_from_slice(label.as_bytes());
    let mut out = VLByteSlice(&full_label).tls_serialize_detached()?;
    out.extend(VLByteSlice(content).tls_serialize_detached()?);
    Ok(out)
}

/// A failure of [`sign_with_label`], [`verify_with_label`] or the HPKE helpers.
#[derive(Debug, thiserror::Error)]
pub enum CryptoFailure {
    #[error("encoding failed: {0}")]
    Codec(#[from] tls_codec::Error),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("signing failed: {0:?}")]
    Sign(openmls_traits::signatures::SignerError),
    #[error("cryptographic operation failed: {0:?}")]
    Crypto(openmls_traits::types::CryptoError),
}

/// RFC 9420 §5.1.2 `SignWithLabel(key, label, content)`; `label` without the `"MLS 1.0 "` prefix,
/// e.g. `"KeyMaterialRequestTBS"`.
pub fn sign_with_label(
    signer: &impl Signer,
    label: &str,
    content: &[u8],
) -> Result<Vec<u8>, CryptoFailure> {
    signer
        .sign(&labelled(label, content)?)
        .map_err(CryptoFailure::Sign)
}

/// RFC 9420 §5.1.2 `VerifyWithLabel(key, label, content, signature)`.
pub fn verify_with_label(
    crypto: &impl OpenMlsCrypto,
    scheme: SignatureScheme,
    public_key: &[u8],
    label: &str,
    content: &[u8],
    signature: &[u8],
) -> Result<(), CryptoFailure> {
    crypto
        .verify_signature(scheme, &labelled(label, content)?, public_key, signature)
        .map_err(CryptoFailure::Crypto)
}

/// RFC 9420 §5.1.3 `EncryptWithLabel(public_key, label, context, plaintext)`.
pub fn encrypt_with_label(
    crypto: &impl OpenMlsCrypto,
    suite: Ciphersuite,
    public_key: &[u8],
    label: &str,
    context: &[u8],
    plaintext: &[u8],
) -> Result<HpkeCiphertext, CryptoFailure> {
    crypto
        .hpke_seal(
            suite.hpke_config(),
            public_key,
            &labelled(label, context)?,
            &[],
            plaintext,
        )
        .map_err(CryptoFailure::Crypto)
}

/// RFC 9420 §5.1.3 `DecryptWithLabel(private_key, label, context, kem_output, ciphertext)`.
pub fn decrypt_with_label(
    crypto: &impl OpenMlsCrypto,
    suite: Ciphersuite,
    private_key: &[u8],
    label: &str,
    context: &[u8],
    ciphertext: &HpkeCiphertext,
) -> Result<Vec<u8>, CryptoFailure> {
    crypto
        .hpke_open(
            suite.hpke_config(),
            ciphertext,
            private_key,
            &labelled(label, context)?,
            &[],
        )
        .map_err(CryptoFailure::Crypto)
}

#[cfg(test)]
mod tests {
    use openmls_rust_crypto::RustCrypto;

    use super::super::fixtures::world;
    use super::*;

    #[test]
    fn identifier_uri_is_a_length_prefixed_string() {
        let uri = IdentifierUri::new("mimi://a.example/u/al");
        let mut expected = vec![21];
        expected.extend_from_slice(b"mimi://a.example/u/al");
        assert_eq!(uri.tls_serialize_detached().unwrap(), expected);
        assert_eq!(uri.to_mimi().unwrap().kind(), UriKind::User);
        assert!(check_uri("u", &uri, USER).is_ok());
        assert!(
            check_uri("u", &uri, ROOM)
                .unwrap_err()
                .contains("is a user URI, expected room")
        );
        assert!(check_optional_uri("u", &IdentifierUri::empty(), ROOM).is_ok());
        assert!(check_uri("u", &IdentifierUri::empty(), ROOM).is_err());
        assert!(check_uri("u", &IdentifierUri::new("https://a.example/u/al"), USER).is_err());
    }

    #[test]
    fn protocol_is_one_byte() {
        assert_eq!(Protocol::Mls10.tls_serialize_detached().unwrap(), vec![1]);
        assert_eq!(
            Protocol::Reserved.tls_serialize_detached().unwrap(),
            vec![0]
        );
        assert!(check_protocol(Protocol::Reserved).is_err());
        assert!(<Protocol as tls_codec::Deserialize>::tls_deserialize_exact([2]).is_err());
    }

    #[test]
    fn labels_get_the_mls_prefix() {
        // SignContent { opaque label<V> = "MLS 1.0 X"; opaque content<V> = [0xAA]; }
        assert_eq!(
            labelled("X", &[0xAA]).unwrap(),
            [&[9u8][..], b"MLS 1.0 X", &[1, 0xAA]].concat()
        );
    }

    #[test]
    fn sign_and_verify_with_label() {
        let w = world();
        let signer = w.alice_signer();
        let scheme = w.suite().signature_algorithm();
        let sig = sign_with_label(&signer, "KeyMaterialRequestTBS", b"content").unwrap();
        let crypto = RustCrypto::default();
        verify_with_label(
            &crypto,
            scheme,
            &w.alice_public_key,
            "KeyMaterialRequestTBS",
            b"content",
            &sig,
        )
        .expect("verifies");
        assert!(
            verify_with_label(
                &crypto,
                scheme,
                &w.alice_public_key,
                "GroupInfoRequestTBS",
                b"content",
                &sig
            )
            .is_err(),
            "the label is bound"
        );
    }

    #[test]
    fn encrypt_and_decrypt_with_label() {
        let w = world();
        let crypto = RustCrypto::default();
        let keys = crypto
            .derive_hpke_keypair(w.suite().hpke_config(), &[7u8; 32])
            .unwrap();
        let ct =
            encrypt_with_label(&crypto, w.suite(), &keys.public, "L", b"ctx", b"secret").unwrap();
        let pt = decrypt_with_label(&crypto, w.suite(), &keys.private, "L", b"ctx", &ct).unwrap();
        assert_eq!(pt, b"secret");
        assert!(decrypt_with_label(&crypto, w.suite(), &keys.private, "L", b"other", &ct).is_err());
    }
}
