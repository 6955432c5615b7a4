//! `POST /notify/{roomId}` bodies (protocol-06 §5.5): one or more concatenated `FanoutMessage`s.

use std::io::{Read, Write};

use openmls::prelude::ContentType;
use tls_codec::{Deserialize, Serialize, Size};

use crate::room::wire::{WireError, WireStruct, encode};

use super::mls::{MessageKind, MlsMessage};
use super::ratchet_tree_options::RatchetTreeOption;
use super::submit::{Frank, check_application, check_frank};
use super::update::{check_proposal_list, check_public};

/// The arm of a [`FanoutMessage`] selected by what its `message` is.
///
/// protocol-06 §5.5 writes `select (message.wire_format)` but lists the cases `application`,
/// `welcome`, `proposal` and `commit`, mixing wire formats with content types. It is read as:
/// a `mls_welcome` message selects `welcome`; a PublicMessage or PrivateMessage selects the arm
/// of its content type. Other wire formats (GroupInfo, KeyPackage) select no arm and are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FanoutBody {
    /// `case application: optional<Frank> frank;`
    Application { frank: Option<Frank> },
    /// `case welcome: RatchetTreeOption ratchetTreeOption;`
    Welcome {
        ratchet_tree_option: RatchetTreeOption,
    },
    /// `case proposal: MLSMessage moreProposals<V>;` — the HandshakeBundle's list, unchanged.
    Proposal { more_proposals: Vec<MlsMessage> },
    /// `case commit: MLSMessage externalProposals<V>;` — after an external commit, the hub's
    /// replacement proposals for the new epoch, stapled to it.
    Commit { external_proposals: Vec<MlsMessage> },
}

/// Which arm `message` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arm {
    Application,
    Welcome,
    Proposal,
    Commit,
}

fn arm_for(message: &MlsMessage) -> Result<Arm, tls_codec::Error> {
    match message.kind() {
        MessageKind::Welcome => Ok(Arm::Welcome),
        MessageKind::PublicMessage(c) | MessageKind::PrivateMessage(c) => Ok(match c {
            ContentType::Application => Arm::Application,
            ContentType::Proposal => Arm::Proposal,
            ContentType::Commit => Arm::Commit,
        }),
        other => Err(tls_codec::Error::DecodingError(format!(
            "FanoutMessage.message is a {}, which selects no arm",
            other.describe()
        ))),
    }
}

impl FanoutBody {
    fn arm(&self) -> Arm {
        match self {
            FanoutBody::Application { .. } => Arm::Application,
            FanoutBody::Welcome { .. } => Arm::Welcome,
            FanoutBody::Proposal { .. } => Arm::Proposal,
            FanoutBody::Commit { .. } => Arm::Commit,
        }
    }
}

/// `struct { uint64 timestamp; select (protocol) { case mls10: MLSMessage message;
/// select (...) {...}; }; } FanoutMessage;`
///
/// The protocol is the room's and is not on the wire; the only one is `mls10`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FanoutMessage {
    /// The hub acceptance time, ms since the UNIX epoch.
    pub timestamp: u64,
    /// A PrivateMessage (application), a PublicMessage (proposal or commit), or a Welcome.
    pub message: MlsMessage,
    pub body: FanoutBody,
}

impl FanoutMessage {
    fn body_matches(&self) -> Result<(), tls_codec::Error> {
        let expected = arm_for(&self.message)?;
        if expected == self.body.arm() {
            Ok(())
        } else {
            Err(tls_codec::Error::EncodingError(format!(
                "FanoutMessage holds a {} with the {:?} arm",
                self.message.kind().describe(),
                self.body.arm()
            )))
        }
    }
}

impl Size for FanoutMessage {
    fn tls_serialized_len(&self) -> usize {
        8 + self.message.tls_serialized_len()
            + match &self.body {
                FanoutBody::Application { frank } => frank.tls_serialized_len(),
                FanoutBody::Welcome {
                    ratchet_tree_option,
                } => ratchet_tree_option.tls_serialized_len(),
                FanoutBody::Proposal { more_proposals } => more_proposals.tls_serialized_len(),
                FanoutBody::Commit { external_proposals } => {
                    external_proposals.tls_serialized_len()
                }
            }
    }
}

impl Serialize for FanoutMessage {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        self.body_matches()?;
        let mut written = self.timestamp.tls_serialize(writer)?;
        written += self.message.tls_serialize(writer)?;
        written += match &self.body {
            FanoutBody::Application { frank } => frank.tls_serialize(writer)?,
            FanoutBody::Welcome {
                ratchet_tree_option,
            } => ratchet_tree_option.tls_serialize(writer)?,
            FanoutBody::Proposal { more_proposals } => more_proposals.tls_serialize(writer)?,
            FanoutBody::Commit { external_proposals } => {
                external_proposals.tls_serialize(writer)?
            }
        };
        Ok(written)
    }
}

impl Deserialize for FanoutMessage {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let timestamp = u64::tls_deserialize(bytes)?;
        let message = MlsMessage::tls_deserialize(bytes)?;
        let body = match arm_for(&message)? {
            Arm::Application => FanoutBody::Application {
                frank: Option::<Frank>::tls_deserialize(bytes)?,
            },
            Arm::Welcome => FanoutBody::Welcome {
                ratchet_tree_option: RatchetTreeOption::tls_deserialize(bytes)?,
            },
            Arm::Proposal => FanoutBody::Proposal {
                more_proposals: Vec::<MlsMessage>::tls_deserialize(bytes)?,
            },
            Arm::Commit => FanoutBody::Commit {
                external_proposals: Vec::<MlsMessage>::tls_deserialize(bytes)?,
            },
        };
        Ok(FanoutMessage {
            timestamp,
            message,
            body,
        })
    }
}

impl WireStruct for FanoutMessage {
    const NAME: &'static str = "FanoutMessage";

    fn check(&self) -> Result<(), String> {
        self.body_matches().map_err(|e| e.to_string())?;
        match &self.body {
            FanoutBody::Application { frank } => {
                check_application("message", &self.message)?;
                if let Some(frank) = frank {
                    check_frank("frank", frank)?;
                }
            }
            FanoutBody::Welcome {
                ratchet_tree_option,
            } => ratchet_tree_option.check("ratchetTreeOption")?,
            FanoutBody::Proposal { more_proposals } => {
                check_public("message", &self.message, ContentType::Proposal)?;
                check_proposal_list(
                    "moreProposals",
                    more_proposals,
                    &self.message,
                    self.message.epoch(),
                )?;
            }
            FanoutBody::Commit { external_proposals } => {
                check_public("message", &self.message, ContentType::Commit)?;
                // Replacement proposals belong to the epoch the commit creates.
                let next = self.message.epoch().and_then(|e| e.checked_add(1));
                check_proposal_list("externalProposals", external_proposals, &self.message, next)?;
            }
        }
        Ok(())
    }
}

/// Splits a `/notify` body into its `FanoutMessage`s.
///
/// The body must hold at least one message and nothing after the last one; a truncated or
/// malformed message anywhere fails the whole body (the follower answers with an error and the
/// hub retries). Each message also passes its semantic check.
pub fn split_notify_body(body: &[u8]) -> Result<Vec<FanoutMessage>, WireError> {
    if body.is_empty() {
        return Err(WireError::Invalid {
            structure: FanoutMessage::NAME,
            reason: "a /notify body holds at least one FanoutMessage".into(),
        });
    }
    let mut rest = body;
    let mut messages = Vec::new();
    while !rest.is_empty() {
        let offset = body.len() - rest.len();
        let index = messages.len();
        let message = FanoutMessage::tls_deserialize(&mut rest).map_err(|e| WireError::Codec {
            structure: FanoutMessage::NAME,
            source: tls_codec::Error::DecodingError(format!(
                "message #{index} at byte {offset}: {e}"
            )),
        })?;
        message.check().map_err(|reason| WireError::Invalid {
            structure: FanoutMessage::NAME,
            reason: format!("message #{index} at byte {offset}: {reason}"),
        })?;
        messages.push(message);
    }
    Ok(messages)
}

/// Concatenates `FanoutMessage`s into one `/notify` body.
pub fn join_notify_body(messages: &[FanoutMessage]) -> Result<Vec<u8>, WireError> {
    if messages.is_empty() {
        return Err(WireError::Invalid {
            structure: FanoutMessage::NAME,
            reason: "a /notify body holds at least one FanoutMessage".into(),
        });
    }
    let mut body = Vec::new();
    for message in messages {
        body.extend(encode(message)?);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::fixtures::{round_trip, varint, world};
    use super::super::mls::CipherSuite;
    use super::*;
    use crate::room::wire::decode_exact;

    fn pool(i: usize, timestamp: u64) -> FanoutMessage {
        let w = world();
        let (message, body) = match i {
            0 => (w.application(), FanoutBody::Application { frank: None }),
            1 => (
                w.application(),
                FanoutBody::Application {
                    frank: Some(Frank {
                        server_frank: [7; 32],
                        franking_signature_ciphersuite: CipherSuite(1),
                        franking_integrity_signature: vec![1; 64].into(),
                    }),
                },
            ),
            2 => (
                w.welcome_message(),
                FanoutBody::Welcome {
                    ratchet_tree_option: RatchetTreeOption::Full {
                        ratchet_tree: w.ratchet_tree(),
                    },
                },
            ),
            3 => (
                w.welcome_message(),
                FanoutBody::Welcome {
                    ratchet_tree_option: RatchetTreeOption::DistributionService,
                },
            ),
            4 => (
                w.proposal(0),
                FanoutBody::Proposal {
                    more_proposals: vec![w.proposal(1)],
                },
            ),
            5 => (
                w.commit(),
                FanoutBody::Commit {
                    external_proposals: vec![],
                },
            ),
            6 => (
                w.commit(),
                FanoutBody::Commit {
                    external_proposals: vec![w.proposal(0), w.proposal(1)],
                },
            ),
            _ => (
                w.proposal(1),
                FanoutBody::Proposal {
                    more_proposals: vec![],
                },
            ),
        };
        FanoutMessage {
            timestamp,
            message,
            body,
        }
    }

    const POOL: usize = 8;

    #[test]
    fn every_arm_round_trips() {
        for i in 0..POOL {
            round_trip(&pool(i, 1_700_000_000_000 + i as u64));
        }
    }

    #[test]
    fn the_wire_form_is_timestamp_message_arm() {
        let w = world();
        let bytes = round_trip(&pool(0, 0x0102_0304_0506_0708));
        assert_eq!(
            bytes,
            [vec![1, 2, 3, 4, 5, 6, 7, 8], w.application.clone(), vec![0]].concat()
        );
        let bytes = round_trip(&pool(3, 1));
        assert_eq!(
            bytes,
            [
                vec![0, 0, 0, 0, 0, 0, 0, 1],
                w.welcome_message.clone(),
                vec![4]
            ]
            .concat()
        );
        let bytes = round_trip(&pool(6, 2));
        let list_len = w.proposals[0].len() + w.proposals[1].len();
        assert_eq!(
            bytes,
            [
                vec![0, 0, 0, 0, 0, 0, 0, 2],
                w.commit.clone(),
                varint(list_len),
                w.proposals[0].clone(),
                w.proposals[1].clone()
            ]
            .concat()
        );
    }

    #[test]
    fn messages_that_select_no_arm_are_refused() {
        let w = world();
        let body = [vec![0; 8], w.group_info_message.clone(), vec![4]].concat();
        let err = split_notify_body(&body).unwrap_err().to_string();
        assert!(err.contains("selects no arm"), "{err}");
        let wrong = FanoutMessage {
            timestamp: 0,
            message: w.commit(),
            body: FanoutBody::Application { frank: None },
        };
        assert!(join_notify_body(&[wrong]).is_err());
    }

    #[test]
    fn arm_contents_are_checked() {
        let w = world();
        // moreProposals holds proposals only.
        let stale = FanoutMessage {
            timestamp: 0,
            message: w.proposal(0),
            body: FanoutBody::Proposal {
                more_proposals: vec![w.commit()],
            },
        };
        assert!(crate::room::wire::encode(&stale).is_err());
        let https = FanoutMessage {
            timestamp: 0,
            message: w.welcome_message(),
            body: FanoutBody::Welcome {
                ratchet_tree_option: RatchetTreeOption::HttpsUri {
                    ratchet_tree_url: b"ftp://x".to_vec().into(),
                    tree_signature: vec![].into(),
                },
            },
        };
        assert!(crate::room::wire::encode(&https).is_err());
    }

    #[test]
    fn empty_bodies_and_trailing_garbage_are_refused() {
        assert!(split_notify_body(&[]).is_err());
        assert!(join_notify_body(&[]).is_err());
        let mut body = join_notify_body(&[pool(0, 1), pool(5, 2)]).unwrap();
        assert_eq!(split_notify_body(&body).unwrap().len(), 2);
        body.extend_from_slice(&[0; 8]);
        let err = split_notify_body(&body).unwrap_err().to_string();
        assert!(err.contains("message #2"), "{err}");
        assert!(decode_exact::<FanoutMessage>(&body).is_err());
    }

    proptest! {
        #[test]
        fn concatenations_of_one_to_five_messages_split_back(
            picks in proptest::collection::vec((0..POOL, any::<u64>()), 1..=5),
            cut in any::<usize>(),
            garbage in proptest::collection::vec(any::<u8>(), 1..8),
        ) {
            let messages: Vec<FanoutMessage> =
                picks.iter().map(|&(i, ts)| pool(i, ts)).collect();
            let body = join_notify_body(&messages).unwrap();
            prop_assert_eq!(&split_notify_body(&body).unwrap(), &messages);

            // A tail cut inside the last message is refused: no prefix of a message decodes.
            let last_len = crate::room::wire::encode(messages.last().unwrap()).unwrap().len();
            let last_start = body.len() - last_len;
            let keep = last_start + 1 + cut % (last_len - 1);
            let err = split_notify_body(&body[..keep]).unwrap_err().to_string();
            let expected = format!("message #{}", messages.len() - 1);
            prop_assert!(err.contains(&expected), "{}", err);

            // Fewer than 8 bytes after the last message cannot be another one.
            let mut padded = body.clone();
            padded.extend_from_slice(&garbage);
            prop_assert!(split_notify_body(&padded).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = split_notify_body(&bytes);
            let _ = decode_exact::<FanoutMessage>(&bytes);
        }

        #[test]
        fn mutated_bodies_never_panic(
            picks in proptest::collection::vec(0..POOL, 1..=3),
            pos in any::<usize>(),
            byte in any::<u8>(),
        ) {
            let messages: Vec<FanoutMessage> = picks.iter().map(|&i| pool(i, 0)).collect();
            let mut body = join_notify_body(&messages).unwrap();
            let at = pos % body.len();
            body[at] = byte;
            if let Ok(split) = split_notify_body(&body) {
                prop_assert_eq!(join_notify_body(&split).unwrap(), body);
            }
        }
    }
}
