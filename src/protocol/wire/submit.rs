//! `POST /submitMessage/{roomId}` bodies and franking (protocol-06 §5.4, §5.4.1).

use openmls::prelude::ContentType;
use tls_codec::{Serialize, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use crate::room::wire::WireStruct;

use super::common::{IdentifierUri, PARTICIPANT, Protocol, ROOM, check_protocol, check_uri};
use super::mls::{CipherSuite, MessageKind, MlsMessage};

/// The `SignWithLabel` label of `franking_integrity_signature`.
pub const FRANKING_INTEGRITY_LABEL: &str = "FrankingIntegrityTBS";

/// `struct { Protocol protocol; select (protocol) { case mls10: MLSMessage appMessage;
/// IdentifierURI sendingUri; }; } SubmitMessageRequest;`
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct SubmitMessageRequest {
    pub protocol: Protocol,
    /// A PrivateMessage with content type application.
    pub app_message: MlsMessage,
    /// The sender's user URI or pseudonym; must be an active participant.
    pub sending_uri: IdentifierUri,
}

impl WireStruct for SubmitMessageRequest {
    const NAME: &'static str = "SubmitMessageRequest";

    fn check(&self) -> Result<(), String> {
        check_protocol(self.protocol)?;
        check_application("appMessage", &self.app_message)?;
        check_uri("sendingUri", &self.sending_uri, PARTICIPANT)
    }
}

pub(crate) fn check_application(field: &str, message: &MlsMessage) -> Result<(), String> {
    match message.kind() {
        MessageKind::PrivateMessage(ContentType::Application) => Ok(()),
        other => Err(format!(
            "{field} must be a PrivateMessage(Application), got {}",
            other.describe()
        )),
    }
}

/// `SubmitResponseCode`. protocol-06 §5.4 names code 0 `accepted` in the enum but selects on
/// `success` and describes `success`; both name code 0 here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum SubmitResponseCode {
    Accepted = 0,
    NotAllowed = 1,
    EpochTooOld = 2,
}

impl SubmitResponseCode {
    /// The draft's other name for [`SubmitResponseCode::Accepted`].
    pub const SUCCESS: SubmitResponseCode = SubmitResponseCode::Accepted;
}

/// `struct { uint8 server_frank[32]; CipherSuite franking_signature_ciphersuite;
/// opaque franking_integrity_signature<V>; } Frank;`
#[derive(Clone, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct Frank {
    pub server_frank: [u8; 32],
    pub franking_signature_ciphersuite: CipherSuite,
    pub franking_integrity_signature: VLBytes,
}

/// `statusCode` together with its `select` arm.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum SubmitStatus {
    /// `case success:` (code 0, `accepted` in the enum).
    #[tls_codec(discriminant = 0)]
    Accepted {
        /// The hub acceptance time, ms since the UNIX epoch.
        accepted_timestamp: u64,
        frank: Option<Frank>,
    },
    #[tls_codec(discriminant = 1)]
    NotAllowed,
    #[tls_codec(discriminant = 2)]
    EpochTooOld { current_epoch: u64 },
}

impl SubmitStatus {
    pub fn code(&self) -> SubmitResponseCode {
        match self {
            SubmitStatus::Accepted { .. } => SubmitResponseCode::Accepted,
            SubmitStatus::NotAllowed => SubmitResponseCode::NotAllowed,
            SubmitStatus::EpochTooOld { .. } => SubmitResponseCode::EpochTooOld,
        }
    }
}

/// `struct { Protocol protocol; select (protocol) { case mls10: SubmitResponseCode statusCode;
/// select (statusCode) {...}; }; } SubmitMessageResponse;`
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct SubmitMessageResponse {
    pub protocol: Protocol,
    pub status: SubmitStatus,
}

impl WireStruct for SubmitMessageResponse {
    const NAME: &'static str = "SubmitMessageResponse";

    fn check(&self) -> Result<(), String> {
        check_protocol(self.protocol)?;
        if let SubmitStatus::Accepted {
            frank: Some(frank), ..
        } = &self.status
        {
            check_frank("frank", frank)?;
        }
        Ok(())
    }
}

pub(crate) fn check_frank(field: &str, frank: &Frank) -> Result<(), String> {
    if frank.franking_integrity_signature.as_slice().is_empty() {
        return Err(format!("{field}.franking_integrity_signature is empty"));
    }
    Ok(())
}

/// `struct { IdentifierUri sender_uri; IdentifierUri room_uri; uint64 accepted_timestamp; }
/// ServerFrankingContext;` (§5.4.1.2)
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ServerFrankingContext {
    pub sender_uri: IdentifierUri,
    pub room_uri: IdentifierUri,
    pub accepted_timestamp: u64,
}

/// `struct { opaque server_frank[32]; CipherSuite franking_signature_ciphersuite;
/// ServerFrankingContext context; } FrankingIntegrityTBS;` — what the hub signs with label
/// `"FrankingIntegrityTBS"`. `opaque x[32]` and `uint8 x[32]` (in `Frank`) encode alike.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct FrankingIntegrityTbs {
    pub server_frank: [u8; 32],
    pub franking_signature_ciphersuite: CipherSuite,
    pub context: ServerFrankingContext,
}

impl FrankingIntegrityTbs {
    /// The `content` of `SignWithLabel`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, tls_codec::Error> {
        self.tls_serialize_detached()
    }
}

impl WireStruct for ServerFrankingContext {
    const NAME: &'static str = "ServerFrankingContext";

    fn check(&self) -> Result<(), String> {
        check_uri("sender_uri", &self.sender_uri, PARTICIPANT)?;
        check_uri("room_uri", &self.room_uri, ROOM)
    }
}

impl WireStruct for FrankingIntegrityTbs {
    const NAME: &'static str = "FrankingIntegrityTBS";

    fn check(&self) -> Result<(), String> {
        self.context.check()
    }
}

#[cfg(test)]
mod tests {
    use openmls_rust_crypto::RustCrypto;
    use proptest::prelude::*;

    use super::super::common::{sign_with_label, verify_with_label};
    use super::super::fixtures::{ALICE, ROOM, round_trip, short_vl, world};
    use super::*;
    use crate::room::wire::{decode_exact, encode};

    fn frank() -> Frank {
        Frank {
            server_frank: [0x11; 32],
            franking_signature_ciphersuite: CipherSuite(1),
            franking_integrity_signature: vec![0x22; 3].into(),
        }
    }

    #[test]
    fn a_request_with_a_real_application_message_round_trips() {
        let w = world();
        let request = SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: w.application(),
            sending_uri: IdentifierUri::new(ALICE),
        };
        let bytes = round_trip(&request);
        assert_eq!(
            bytes,
            [vec![1], w.application.clone(), short_vl(ALICE.as_bytes())].concat()
        );
    }

    #[test]
    fn only_application_private_messages_are_submitted() {
        let w = world();
        for message in [w.commit(), w.proposal(0), w.welcome_message()] {
            let request = SubmitMessageRequest {
                protocol: Protocol::Mls10,
                app_message: message,
                sending_uri: IdentifierUri::new(ALICE),
            };
            assert!(
                encode(&request)
                    .unwrap_err()
                    .to_string()
                    .contains("appMessage")
            );
        }
        let request = SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: w.application(),
            sending_uri: IdentifierUri::new("mimi://a.example/d/alice/laptop"),
        };
        assert!(
            encode(&request)
                .unwrap_err()
                .to_string()
                .contains("sendingUri")
        );
        let pseudonym = SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: w.application(),
            sending_uri: IdentifierUri::new("mimi://a.example/p/crazykoala75"),
        };
        round_trip(&pseudonym);
    }

    #[test]
    fn responses_have_the_exact_wire_form() {
        let accepted = SubmitMessageResponse {
            protocol: Protocol::Mls10,
            status: SubmitStatus::Accepted {
                accepted_timestamp: 0x0000_0195_0000_0001,
                frank: None,
            },
        };
        assert_eq!(
            round_trip(&accepted),
            vec![1, 0, 0, 0, 0x01, 0x95, 0, 0, 0, 1, 0]
        );
        let franked = SubmitMessageResponse {
            protocol: Protocol::Mls10,
            status: SubmitStatus::Accepted {
                accepted_timestamp: 5,
                frank: Some(frank()),
            },
        };
        let expected = [
            vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1],
            vec![0x11; 32],
            vec![0, 1, 3, 0x22, 0x22, 0x22],
        ]
        .concat();
        assert_eq!(round_trip(&franked), expected);
        let denied = SubmitMessageResponse {
            protocol: Protocol::Mls10,
            status: SubmitStatus::NotAllowed,
        };
        assert_eq!(round_trip(&denied), vec![1, 1]);
        let old = SubmitMessageResponse {
            protocol: Protocol::Mls10,
            status: SubmitStatus::EpochTooOld { current_epoch: 9 },
        };
        assert_eq!(round_trip(&old), vec![1, 2, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(accepted.status.code(), SubmitResponseCode::SUCCESS);
        assert_eq!(old.status.code(), SubmitResponseCode::EpochTooOld);
        assert!(decode_exact::<SubmitMessageResponse>(&[1, 3]).is_err());
        assert!(
            decode_exact::<SubmitMessageResponse>(&[0, 1]).is_err(),
            "reserved protocol"
        );
    }

    #[test]
    fn franking_integrity_is_signed_over_the_tbs() {
        let w = world();
        let tbs = FrankingIntegrityTbs {
            server_frank: [0x33; 32],
            franking_signature_ciphersuite: w.suite().into(),
            context: ServerFrankingContext {
                sender_uri: IdentifierUri::new(ALICE),
                room_uri: IdentifierUri::new(ROOM),
                accepted_timestamp: 1,
            },
        };
        let bytes = round_trip(&tbs);
        assert_eq!(
            bytes,
            [
                vec![0x33; 32],
                vec![0, 1],
                short_vl(ALICE.as_bytes()),
                short_vl(ROOM.as_bytes()),
                vec![0, 0, 0, 0, 0, 0, 0, 1]
            ]
            .concat()
        );
        let sig = sign_with_label(&w.alice_signer(), FRANKING_INTEGRITY_LABEL, &bytes).unwrap();
        verify_with_label(
            &RustCrypto::default(),
            w.suite().signature_algorithm(),
            &w.alice_public_key,
            FRANKING_INTEGRITY_LABEL,
            &tbs.to_bytes().unwrap(),
            &sig,
        )
        .unwrap();
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_exact::<SubmitMessageRequest>(&bytes);
            let _ = decode_exact::<SubmitMessageResponse>(&bytes);
            let _ = decode_exact::<FrankingIntegrityTbs>(&bytes);
            let _ = decode_exact::<ServerFrankingContext>(&bytes);
        }

        #[test]
        fn responses_round_trip(
            code in 0u8..3,
            number in any::<u64>(),
            franked in any::<bool>(),
            server_frank in any::<[u8; 32]>(),
            suite in any::<u16>(),
            sig in proptest::collection::vec(any::<u8>(), 1..80),
        ) {
            let status = match code {
                0 => SubmitStatus::Accepted {
                    accepted_timestamp: number,
                    frank: franked.then(|| Frank {
                        server_frank,
                        franking_signature_ciphersuite: CipherSuite(suite),
                        franking_integrity_signature: sig.into(),
                    }),
                },
                1 => SubmitStatus::NotAllowed,
                _ => SubmitStatus::EpochTooOld { current_epoch: number },
            };
            round_trip(&SubmitMessageResponse { protocol: Protocol::Mls10, status });
        }
    }
}
