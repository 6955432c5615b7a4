//! RFC 9420 structures embedded in MIMI bodies, encoded exactly as MLS encodes them.
//!
//! Small structures (`SignaturePublicKey`, `Credential`, `Capabilities`, `RequiredCapabilities`,
//! `HPKECiphertext`, `ProposalRef`) are openmls's own types: they decode and re-encode
//! byte-identically (every field is a minimal-varint `opaque<V>`, a vector, or a 16-bit code point
//! that openmls keeps even when it does not know it).
//!
//! The large ones (`MLSMessage`, `Welcome`, `GroupInfo`, `KeyPackage`, the ratchet tree) are kept
//! as the exact bytes the peer sent: they are parsed with the matching openmls type, which both
//! validates the syntax and finds where the structure ends (an `MLSMessage` carries no length
//! prefix, so a list of them can only be split by parsing), and the consumed bytes are stored.
//! Re-encoding writes those bytes back, so signatures and hashes computed over them by the
//! sender (KeyPackageRef, ProposalRef, GroupInfo signatures) stay valid.
//!
//! Wire formats openmls does not know, such as draft-mahy-mls-semiprivatemessage (which has no
//! code point yet), cannot be delimited and are refused as decoding errors.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::marker::PhantomData;

use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::{
    ContentType, Credential, KeyPackageIn, MlsMessageBodyIn, MlsMessageIn, RatchetTreeIn,
    SignaturePublicKey, WireFormat,
};
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

/// A reader that keeps a copy of every byte it hands out, to learn what a parser consumed.
struct Recorder<'a, R> {
    inner: &'a mut R,
    seen: Vec<u8>,
}

impl<R: Read> Read for Recorder<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        // `n <= buf.len()` by the `Read` contract; `get` keeps a misbehaving reader harmless.
        self.seen.extend_from_slice(buf.get(..n).unwrap_or(buf));
        Ok(n)
    }
}

/// Parses one `T` from `bytes` and returns it with the exact bytes it consumed.
fn parse_recorded<T: Deserialize, R: Read>(
    bytes: &mut R,
) -> Result<(T, Vec<u8>), tls_codec::Error> {
    let mut recorder = Recorder {
        inner: bytes,
        seen: Vec::new(),
    };
    let value = T::tls_deserialize(&mut recorder)?;
    Ok((value, recorder.seen))
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

fn hex_preview(bytes: &[u8]) -> String {
    const SHOWN: usize = 16;
    match bytes.get(..SHOWN) {
        Some(head) if bytes.len() > SHOWN => format!("{}…", hex::encode(head)),
        _ => hex::encode(bytes),
    }
}

/// The exact encoding of one RFC 9420 structure of type `T`, checked by parsing it with openmls.
///
/// Equality and hashing are over the bytes.
pub struct MlsBytes<T> {
    bytes: Vec<u8>,
    _type: PhantomData<fn() -> T>,
}

/// `KeyPackage` (RFC 9420 §10), without an `MLSMessage` header.
pub type KeyPackageBytes = MlsBytes<KeyPackageIn>;
/// `Welcome` (RFC 9420 §12.4.3.1), without an `MLSMessage` header.
pub type WelcomeBytes = MlsBytes<openmls::prelude::Welcome>;
/// `GroupInfo` (RFC 9420 §12.4.3), without an `MLSMessage` header.
pub type GroupInfoBytes = MlsBytes<VerifiableGroupInfo>;
/// `optional<Node> ratchet_tree<V>` (RFC 9420 §12.4.3.3), the body of the `ratchet_tree` extension.
pub type RatchetTreeBytes = MlsBytes<RatchetTreeIn>;

impl<T> MlsBytes<T> {
    /// The encoding, as received or as produced.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl<T: Deserialize> MlsBytes<T> {
    /// Takes exactly one `T` from `bytes`; trailing bytes are an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, tls_codec::Error> {
        let mut reader = bytes;
        let (_, seen) = parse_recorded::<T, _>(&mut reader)?;
        if !reader.is_empty() {
            return Err(tls_codec::Error::TrailingData);
        }
        Ok(MlsBytes {
            bytes: seen,
            _type: PhantomData,
        })
    }

    /// The encoding of an openmls value (e.g. a `KeyPackage`, a `RatchetTree`, a `Welcome`).
    pub fn from_value(value: &impl Serialize) -> Result<Self, tls_codec::Error> {
        Self::from_bytes(&value.tls_serialize_detached()?)
    }

    /// The openmls value (unverified: signatures are not checked here).
    pub fn parse(&self) -> Result<T, tls_codec::Error> {
        T::tls_deserialize_exact(&self.bytes)
    }
}

impl<T> Clone for MlsBytes<T> {
    fn clone(&self) -> Self {
        MlsBytes {
            bytes: self.bytes.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> PartialEq for MlsBytes<T> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl<T> Eq for MlsBytes<T> {}

impl<T> Hash for MlsBytes<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl<T> fmt::Debug for MlsBytes<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({} bytes: {})",
            short_type_name::<T>(),
            self.bytes.len(),
            hex_preview(&self.bytes)
        )
    }
}

impl<T> Size for MlsBytes<T> {
    fn tls_serialized_len(&self) -> usize {
        self.bytes.len()
    }
}

impl<T> Serialize for MlsBytes<T> {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        writer.write_all(&self.bytes)?;
        Ok(self.bytes.len())
    }
}

impl<T: Deserialize> Deserialize for MlsBytes<T> {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let (_, seen) = parse_recorded::<T, _>(bytes)?;
        Ok(MlsBytes {
            bytes: seen,
            _type: PhantomData,
        })
    }
}

/// What an `MLSMessage` carries: its wire format and, for framed content, the content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    PublicMessage(ContentType),
    PrivateMessage(ContentType),
    Welcome,
    GroupInfo,
    KeyPackage,
}

impl MessageKind {
    pub fn wire_format(self) -> WireFormat {
        match self {
            MessageKind::PublicMessage(_) => WireFormat::PublicMessage,
            MessageKind::PrivateMessage(_) => WireFormat::PrivateMessage,
            MessageKind::Welcome => WireFormat::Welcome,
            MessageKind::GroupInfo => WireFormat::GroupInfo,
            MessageKind::KeyPackage => WireFormat::KeyPackage,
        }
    }

    /// The content type of a PublicMessage or PrivateMessage.
    pub fn content_type(self) -> Option<ContentType> {
        match self {
            MessageKind::PublicMessage(c) | MessageKind::PrivateMessage(c) => Some(c),
            _ => None,
        }
    }

    pub(crate) fn describe(self) -> String {
        match self {
            MessageKind::PublicMessage(c) => format!("PublicMessage({c:?})"),
            MessageKind::PrivateMessage(c) => format!("PrivateMessage({c:?})"),
            other => format!("{other:?}"),
        }
    }
}

/// The `MLSMessage` header: `ProtocolVersion version = mls10; WireFormat wire_format;`.
const MLS_MESSAGE_HEADER_LEN: usize = 4;

/// One RFC 9420 `MLSMessage`, kept as the exact bytes received.
///
/// An `MLSMessage` has no length prefix: decoding parses it with openmls to find its end.
/// Equality and hashing are over the bytes.
#[derive(Clone)]
pub struct MlsMessage {
    bytes: Vec<u8>,
    kind: MessageKind,
    framing: Option<(Vec<u8>, u64)>,
}

impl MlsMessage {
    /// Takes exactly one `MLSMessage` from `bytes`; trailing bytes are an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, tls_codec::Error> {
        let mut reader = bytes;
        let message = Self::tls_deserialize(&mut reader)?;
        if !reader.is_empty() {
            return Err(tls_codec::Error::TrailingData);
        }
        Ok(message)
    }

    /// The message of an openmls `MlsMessageOut` (or anything encoding an `MLSMessage`).
    pub fn from_value(value: &impl Serialize) -> Result<Self, tls_codec::Error> {
        Self::from_bytes(&value.tls_serialize_detached()?)
    }

    /// Frames a bare `Welcome` as an `MLSMessage` (`mls10`, `mls_welcome`).
    pub fn from_welcome(welcome: &WelcomeBytes) -> Self {
        Self::framed(
            WireFormat::Welcome,
            welcome.as_bytes(),
            MessageKind::Welcome,
        )
    }

    /// Frames a bare `GroupInfo` as an `MLSMessage` (`mls10`, `mls_group_info`).
    pub fn from_group_info(group_info: &GroupInfoBytes) -> Self {
        Self::framed(
            WireFormat::GroupInfo,
            group_info.as_bytes(),
            MessageKind::GroupInfo,
        )
    }

    /// Frames a bare `KeyPackage` as an `MLSMessage` (`mls10`, `mls_key_package`).
    pub fn from_key_package(key_package: &KeyPackageBytes) -> Self {
        Self::framed(
            WireFormat::KeyPackage,
            key_package.as_bytes(),
            MessageKind::KeyPackage,
        )
    }

    fn framed(wire_format: WireFormat, body: &[u8], kind: MessageKind) -> Self {
        let mut bytes = Vec::with_capacity(MLS_MESSAGE_HEADER_LEN + body.len());
        bytes.extend_from_slice(&1u16.to_be_bytes());
        bytes.extend_from_slice(&(wire_format as u16).to_be_bytes());
        bytes.extend_from_slice(body);
        MlsMessage {
            bytes,
            kind,
            framing: None,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    pub fn wire_format(&self) -> WireFormat {
        self.kind.wire_format()
    }

    /// The content type of a PublicMessage or PrivateMessage.
    pub fn content_type(&self) -> Option<ContentType> {
        self.kind.content_type()
    }

    /// The group id of a PublicMessage or PrivateMessage.
    pub fn group_id(&self) -> Option<&[u8]> {
        self.framing.as_ref().map(|(id, _)| id.as_slice())
    }

    /// The epoch of a PublicMessage or PrivateMessage.
    pub fn epoch(&self) -> Option<u64> {
        self.framing.as_ref().map(|(_, epoch)| *epoch)
    }

    /// The openmls message, e.g. for `MlsGroup::process_message` after `try_into_protocol_message`.
    pub fn parse(&self) -> Result<MlsMessageIn, tls_codec::Error> {
        MlsMessageIn::tls_deserialize_exact(&self.bytes)
    }

    /// The bare `Welcome` inside a `mls_welcome` message.
    pub fn welcome(&self) -> Option<WelcomeBytes> {
        self.body_if(MessageKind::Welcome)
    }

    /// The bare `GroupInfo` inside a `mls_group_info` message.
    pub fn group_info(&self) -> Option<GroupInfoBytes> {
        self.body_if(MessageKind::GroupInfo)
    }

    /// The bare `KeyPackage` inside a `mls_key_package` message.
    pub fn key_package(&self) -> Option<KeyPackageBytes> {
        self.body_if(MessageKind::KeyPackage)
    }

    fn body_if<T: Deserialize>(&self, kind: MessageKind) -> Option<MlsBytes<T>> {
        if self.kind != kind {
            return None;
        }
        MlsBytes::from_bytes(self.bytes.get(MLS_MESSAGE_HEADER_LEN..)?).ok()
    }
}

impl PartialEq for MlsMessage {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for MlsMessage {}

impl Hash for MlsMessage {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl fmt::Debug for MlsMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MlsMessage({}, {} bytes: {})",
            self.kind.describe(),
            self.bytes.len(),
            hex_preview(&self.bytes)
        )
    }
}

impl Size for MlsMessage {
    fn tls_serialized_len(&self) -> usize {
        self.bytes.len()
    }
}

impl Serialize for MlsMessage {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        writer.write_all(&self.bytes)?;
        Ok(self.bytes.len())
    }
}

impl Deserialize for MlsMessage {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let (message, bytes) = parse_recorded::<MlsMessageIn, _>(bytes)?;
        let (kind, framing) = match message.extract() {
            MlsMessageBodyIn::PublicMessage(m) => (
                MessageKind::PublicMessage(m.content_type()),
                Some((m.group_id().as_slice().to_vec(), m.epoch().as_u64())),
            ),
            MlsMessageBodyIn::PrivateMessage(m) => (
                MessageKind::PrivateMessage(m.content_type()),
                Some((m.group_id().as_slice().to_vec(), m.epoch().as_u64())),
            ),
            MlsMessageBodyIn::Welcome(_) => (MessageKind::Welcome, None),
            MlsMessageBodyIn::GroupInfo(_) => (MessageKind::GroupInfo, None),
            MlsMessageBodyIn::KeyPackage(_) => (MessageKind::KeyPackage, None),
            #[allow(unreachable_patterns)]
            _ => {
                return Err(tls_codec::Error::DecodingError(
                    "unsupported MLSMessage wire format".into(),
                ));
            }
        };
        Ok(MlsMessage {
            bytes,
            kind,
            framing,
        })
    }
}

/// RFC 9420 `uint16 CipherSuite`, including values openmls does not implement (GREASE, private
/// use), so that a peer's list of acceptable suites never fails to decode.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, TlsSerialize, TlsDeserialize, TlsSize,
)]
pub struct CipherSuite(pub u16);

impl CipherSuite {
    /// The openmls suite, when openmls knows it.
    pub fn known(self) -> Option<openmls::prelude::Ciphersuite> {
        openmls::prelude::Ciphersuite::try_from(self.0).ok()
    }
}

impl From<openmls::prelude::Ciphersuite> for CipherSuite {
    fn from(suite: openmls::prelude::Ciphersuite) -> Self {
        CipherSuite(suite as u16)
    }
}

/// RFC 9420 `struct { SignaturePublicKey signature_key; Credential credential; } ExternalSender;`
///
/// Same encoding as openmls's `ExternalSender`, whose fields are not public; this one lets the
/// receiver of a `GroupInfoResponse` get at the hub's signature key.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ExternalSender {
    pub signature_key: SignaturePublicKey,
    pub credential: Credential,
}

impl From<ExternalSender> for openmls::prelude::ExternalSender {
    fn from(sender: ExternalSender) -> Self {
        openmls::prelude::ExternalSender::new(sender.signature_key, sender.credential)
    }
}

impl TryFrom<&openmls::prelude::ExternalSender> for ExternalSender {
    type Error = tls_codec::Error;

    fn try_from(sender: &openmls::prelude::ExternalSender) -> Result<Self, Self::Error> {
        ExternalSender::tls_deserialize_exact(sender.tls_serialize_detached()?)
    }
}

/// RFC 9420 `struct { ExtensionType extension_type; opaque extension_data<V>; } Extension;`,
/// kept raw so unknown and draft extensions round-trip unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct RawExtension {
    pub extension_type: u16,
    pub extension_data: VLBytes,
}

/// RFC 9420 `opaque HPKEPublicKey<V>`.
pub type HpkePublicKey = VLBytes;

#[cfg(test)]
mod tests {
    use openmls::prelude::{BasicCredential, Ciphersuite};
    use proptest::prelude::*;

    use super::super::fixtures::world;
    use super::*;

    #[test]
    fn real_messages_are_classified_and_kept_byte_exact() {
        let w = world();
        let commit = w.commit();
        assert_eq!(
            commit.kind(),
            MessageKind::PublicMessage(ContentType::Commit)
        );
        assert_eq!(commit.as_bytes(), &w.commit[..]);
        assert_eq!(commit.epoch(), Some(0));
        assert_eq!(
            commit.group_id(),
            Some(super::super::fixtures::GROUP.as_bytes())
        );

        let app = w.application();
        assert_eq!(
            app.kind(),
            MessageKind::PrivateMessage(ContentType::Application)
        );
        assert_eq!(app.epoch(), Some(1));

        for i in 0..2 {
            let p = w.proposal(i);
            assert_eq!(p.kind(), MessageKind::PublicMessage(ContentType::Proposal));
            assert_eq!(p.epoch(), Some(1));
        }
        assert_eq!(w.welcome_message().kind(), MessageKind::Welcome);
        assert_eq!(w.welcome_message().epoch(), None);
        assert!(w.commit().welcome().is_none());
    }

    #[test]
    fn bare_structs_strip_and_restore_the_mls_message_header() {
        let w = world();
        let framed = w.welcome_message();
        let bare = framed.welcome().expect("a welcome");
        assert_eq!(&framed.as_bytes()[..4], &[0x00, 0x01, 0x00, 0x03]);
        assert_eq!(bare.as_bytes(), &framed.as_bytes()[4..]);
        assert_eq!(MlsMessage::from_welcome(&bare), framed);
        assert!(bare.parse().is_ok());

        let gi = w.group_info();
        let reframed = MlsMessage::from_group_info(&gi);
        assert_eq!(reframed.as_bytes(), &w.group_info_message[..]);
        assert_eq!(
            MlsMessage::from_bytes(reframed.as_bytes()).unwrap().kind(),
            MessageKind::GroupInfo
        );

        let kp = w.key_package(0);
        let framed_kp = MlsMessage::from_key_package(&kp);
        let parsed = MlsMessage::from_bytes(framed_kp.as_bytes()).expect("framed kp parses");
        assert_eq!(parsed.kind(), MessageKind::KeyPackage);
        assert_eq!(parsed.key_package(), Some(kp));
    }

    #[test]
    fn concatenated_messages_are_split_where_each_ends() {
        let w = world();
        let mut stream = Vec::new();
        stream.extend_from_slice(&w.commit);
        stream.extend_from_slice(&w.application);
        stream.extend_from_slice(&w.proposals[1]);
        stream.extend_from_slice(&w.welcome_message);
        let mut rest = &stream[..];
        let mut got = Vec::new();
        while !rest.is_empty() {
            got.push(MlsMessage::tls_deserialize(&mut rest).expect("one message"));
        }
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].as_bytes(), &w.commit[..]);
        assert_eq!(got[1].as_bytes(), &w.application[..]);
        assert_eq!(got[2].as_bytes(), &w.proposals[1][..]);
        assert_eq!(got[3].as_bytes(), &w.welcome_message[..]);
    }

    #[test]
    fn truncated_or_padded_messages_are_refused() {
        let w = world();
        for cut in [1, 4, w.commit.len() / 2, w.commit.len() - 1] {
            assert!(
                MlsMessage::from_bytes(&w.commit[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut padded = w.commit.clone();
        padded.push(0);
        assert_eq!(
            MlsMessage::from_bytes(&padded).unwrap_err(),
            tls_codec::Error::TrailingData
        );
        // ProtocolVersion other than mls10.
        let mut v2 = w.commit.clone();
        v2[1] = 2;
        assert!(MlsMessage::from_bytes(&v2).is_err());
        // An unknown wire format (e.g. a SemiPrivateMessage code point) cannot be delimited.
        let mut unknown = w.commit.clone();
        unknown[3] = 0x07;
        assert!(MlsMessage::from_bytes(&unknown).is_err());
    }

    #[test]
    fn cipher_suites_keep_unknown_values() {
        let grease = CipherSuite::tls_deserialize_exact([0x0A, 0x0A]).unwrap();
        assert_eq!(grease, CipherSuite(0x0A0A));
        assert_eq!(grease.known(), None);
        let known = CipherSuite::from(Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519);
        assert_eq!(known.tls_serialize_detached().unwrap(), vec![0x00, 0x01]);
        assert_eq!(
            known.known(),
            Some(Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
        );
    }

    #[test]
    fn external_sender_encodes_like_openmls() {
        let w = world();
        let ours = ExternalSender {
            signature_key: w.alice_signature_key(),
            credential: BasicCredential::new(b"mimi://hub.example".to_vec()).into(),
        };
        let theirs: openmls::prelude::ExternalSender = ours.clone().into();
        assert_eq!(
            ours.tls_serialize_detached().unwrap(),
            theirs.tls_serialize_detached().unwrap()
        );
        assert_eq!(ExternalSender::try_from(&theirs).unwrap(), ours);
        // signature_key<V> then Credential { uint16 credential_type = basic(1); opaque identity<V> }
        let bytes = ours.tls_serialize_detached().unwrap();
        assert_eq!(bytes[0], 32, "Ed25519 key length");
        assert_eq!(&bytes[33..36], &[0x00, 0x01, 18]);
    }

    #[test]
    fn raw_extensions_have_the_rfc_9420_layout() {
        let e = RawExtension {
            extension_type: 0x0006,
            extension_data: vec![0xAB].into(),
        };
        assert_eq!(
            e.tls_serialize_detached().unwrap(),
            vec![0x00, 0x06, 0x01, 0xAB]
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_mls_parsers(
            bytes in proptest::collection::vec(any::<u8>(), 0..512)
        ) {
            let _ = MlsMessage::from_bytes(&bytes);
            let _ = WelcomeBytes::from_bytes(&bytes);
            let _ = GroupInfoBytes::from_bytes(&bytes);
            let _ = KeyPackageBytes::from_bytes(&bytes);
            let _ = RatchetTreeBytes::from_bytes(&bytes);
        }

        /// Any prefix of a real message, or the message with one byte changed, never panics.
        #[test]
        fn mutated_real_messages_never_panic(pick in 0usize..5, pos in any::<usize>(), byte in any::<u8>()) {
            let w = world();
            let source = [&w.commit, &w.application, &w.welcome_message, &w.group_info_message, &w.proposals[0]][pick];
            let mut bytes = source.clone();
            let at = pos % bytes.len();
            bytes[at] = byte;
            if let Ok(m) = MlsMessage::from_bytes(&bytes) {
                prop_assert_eq!(m.as_bytes(), &bytes[..]);
            }
            let _ = MlsMessage::from_bytes(&source[..at]);
        }
    }
}
