//! `POST /reportAbuse/{roomId}` body (protocol-06 §5.9). The response has no body.

use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use crate::room::wire::{AppDataDictionary, WireStruct};

use super::common::{IdentifierUri, PARTICIPANT, check_optional_uri, check_uri, check_utf8};
use super::submit::{Frank, check_frank};

/// `struct { opaque message_content<V>; Frank frank; uint64 accepted_timestamp; }
/// AbusiveMessage;`
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct AbusiveMessage {
    /// The decrypted message (e.g. MIMI content, which holds the salt, sender and room URIs).
    pub message_content: VLBytes,
    pub frank: Frank,
    pub accepted_timestamp: u64,
}

/// `enum { reserved(0), (255) } AbuseType;` — no reason code is defined yet, so the only value is
/// `reserved(0)`, which every report carries until the draft adds a taxonomy.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize,
)]
#[repr(u8)]
pub enum AbuseType {
    #[default]
    Reserved = 0,
}

/// `struct { IdentifierUri reportingUser; IdentifierUri allegedAbuserUri; AbuseType reasonCode;
/// opaque note<V>; AbusiveMessage messages<V>; AppDataDictionary abuse_extensions; }
/// AbuseReport;`
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct AbuseReport {
    /// Optional: empty when the reporter stays anonymous.
    pub reporting_user: IdentifierUri,
    pub alleged_abuser_uri: IdentifierUri,
    pub reason_code: AbuseType,
    /// Human-readable UTF-8, possibly empty.
    pub note: VLBytes,
    pub messages: Vec<AbusiveMessage>,
    pub abuse_extensions: AppDataDictionary,
}

impl WireStruct for AbuseReport {
    const NAME: &'static str = "AbuseReport";

    fn check(&self) -> Result<(), String> {
        check_optional_uri("reportingUser", &self.reporting_user, PARTICIPANT)?;
        check_uri("allegedAbuserUri", &self.alleged_abuser_uri, PARTICIPANT)?;
        check_utf8("note", self.note.as_slice())?;
        for (i, m) in self.messages.iter().enumerate() {
            check_frank(&format!("messages[{i}].frank"), &m.frank)?;
        }
        self.abuse_extensions
            .check()
            .map_err(|e| format!("abuse_extensions: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::fixtures::{ALICE, BOB, round_trip, short_vl, varint};
    use super::super::mls::CipherSuite;
    use super::*;
    use crate::room::wire::{decode_exact, encode};

    fn frank() -> Frank {
        Frank {
            server_frank: [9; 32],
            franking_signature_ciphersuite: CipherSuite(1),
            franking_integrity_signature: vec![4, 5].into(),
        }
    }

    #[test]
    fn an_anonymous_report_has_the_exact_wire_form() {
        let report = AbuseReport {
            reporting_user: IdentifierUri::empty(),
            alleged_abuser_uri: IdentifierUri::new(BOB),
            reason_code: AbuseType::Reserved,
            note: b"spam".to_vec().into(),
            messages: vec![],
            abuse_extensions: AppDataDictionary::default(),
        };
        let expected = [
            vec![0],
            short_vl(BOB.as_bytes()),
            vec![0],
            short_vl(b"spam"),
            vec![0],
            vec![0],
        ]
        .concat();
        assert_eq!(round_trip(&report), expected);
    }

    #[test]
    fn messages_carry_content_frank_and_time() {
        let report = AbuseReport {
            reporting_user: IdentifierUri::new(ALICE),
            alleged_abuser_uri: IdentifierUri::new(BOB),
            reason_code: AbuseType::Reserved,
            note: vec![].into(),
            messages: vec![AbusiveMessage {
                message_content: vec![0xA0, 0xA1].into(),
                frank: frank(),
                accepted_timestamp: 3,
            }],
            abuse_extensions: AppDataDictionary::default(),
        };
        let bytes = round_trip(&report);
        let message = [
            vec![2, 0xA0, 0xA1],
            vec![9; 32],
            vec![0, 1, 2, 4, 5],
            vec![0, 0, 0, 0, 0, 0, 0, 3],
        ]
        .concat();
        let tail = [varint(message.len()), message, vec![0]].concat();
        assert_eq!(&bytes[bytes.len() - tail.len()..], &tail[..]);
    }

    #[test]
    fn report_checks() {
        let report = AbuseReport {
            reporting_user: IdentifierUri::empty(),
            alleged_abuser_uri: IdentifierUri::new(BOB),
            reason_code: AbuseType::Reserved,
            note: vec![0xFF].into(),
            messages: vec![],
            abuse_extensions: AppDataDictionary::default(),
        };
        assert!(encode(&report).unwrap_err().to_string().contains("note"));
        let anonymous_abuser = AbuseReport {
            alleged_abuser_uri: IdentifierUri::empty(),
            note: vec![].into(),
            ..report
        };
        assert!(encode(&anonymous_abuser).is_err());
        let bytes = [vec![0], short_vl(BOB.as_bytes()), vec![1, 0, 0, 0]].concat();
        assert!(
            decode_exact::<AbuseReport>(&bytes).is_err(),
            "no reason code but reserved(0)"
        );
    }

    proptest! {
        #[test]
        fn reports_round_trip(
            anonymous in any::<bool>(),
            note in "\\PC{0,40}",
            messages in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..40), any::<u64>()), 0..4),
        ) {
            round_trip(&AbuseReport {
                reporting_user: if anonymous { IdentifierUri::empty() } else { IdentifierUri::new(ALICE) },
                alleged_abuser_uri: IdentifierUri::new(BOB),
                reason_code: AbuseType::Reserved,
                note: note.into_bytes().into(),
                messages: messages
                    .into_iter()
                    .map(|(content, ts)| AbusiveMessage {
                        message_content: content.into(),
                        frank: frank(),
                        accepted_timestamp: ts,
                    })
                    .collect(),
                abuse_extensions: AppDataDictionary::default(),
            });
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_exact::<AbuseReport>(&bytes);
        }
    }
}
