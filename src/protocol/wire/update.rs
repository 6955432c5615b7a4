//! `POST /update/{roomId}` bodies (protocol-06 §5.3).

use std::io::{Read, Write};

use openmls::ciphersuite::hash_ref::ProposalRef;
use openmls::prelude::ContentType;
use tls_codec::{Deserialize, Serialize, Size, TlsDeserialize, TlsSerialize, TlsSize};

use crate::room::wire::WireStruct;

use super::mls::{GroupInfoBytes, MessageKind, MlsMessage, WelcomeBytes};
use super::ratchet_tree_options::{GroupInfoOption, RatchetTreeOption};

/// The `select (proposalOrCommit.content.content_type)` arm of a [`HandshakeBundle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeBundleBody {
    /// `case commit:` — the Welcome and GroupInfo omit the ratchet tree, which travels in
    /// `ratchet_tree_option`.
    Commit {
        /// A bare RFC 9420 `Welcome` (no `MLSMessage` header), present when the commit adds.
        welcome: Option<WelcomeBytes>,
        group_info_option: GroupInfoOption,
        ratchet_tree_option: RatchetTreeOption,
    },
    /// `case proposal:` — further proposals of the same epoch.
    Proposal { more_proposals: Vec<MlsMessage> },
}

/// `HandshakeBundle`: a proposal or commit and what comes with it.
///
/// protocol-06 §5.3 allows a PublicMessage or a SemiPrivateMessage. SemiPrivateMessage has no
/// wire format code point yet, so only PublicMessage is decodable; a PrivateMessage handshake is
/// refused by the check because the hub could not read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeBundle {
    pub proposal_or_commit: MlsMessage,
    pub body: HandshakeBundleBody,
}

fn arm_for(message: &MlsMessage) -> Result<ContentType, tls_codec::Error> {
    match message.kind() {
        MessageKind::PublicMessage(c @ (ContentType::Proposal | ContentType::Commit))
        | MessageKind::PrivateMessage(c @ (ContentType::Proposal | ContentType::Commit)) => Ok(c),
        other => Err(tls_codec::Error::DecodingError(format!(
            "HandshakeBundle.proposalOrCommit is a {}, which selects no arm",
            other.describe()
        ))),
    }
}

impl HandshakeBundle {
    fn body_matches(&self) -> Result<(), tls_codec::Error> {
        let expected = arm_for(&self.proposal_or_commit)?;
        let actual = match self.body {
            HandshakeBundleBody::Commit { .. } => ContentType::Commit,
            HandshakeBundleBody::Proposal { .. } => ContentType::Proposal,
        };
        if expected == actual {
            Ok(())
        } else {
            Err(tls_codec::Error::EncodingError(format!(
                "HandshakeBundle holds a {expected:?} with the {actual:?} arm"
            )))
        }
    }
}

impl Size for HandshakeBundle {
    fn tls_serialized_len(&self) -> usize {
        self.proposal_or_commit.tls_serialized_len()
            + match &self.body {
                HandshakeBundleBody::Commit {
                    welcome,
                    group_info_option,
                    ratchet_tree_option,
                } => {
                    welcome.tls_serialized_len()
                        + group_info_option.tls_serialized_len()
                        + ratchet_tree_option.tls_serialized_len()
                }
                HandshakeBundleBody::Proposal { more_proposals } => {
                    more_proposals.tls_serialized_len()
                }
            }
    }
}

impl Serialize for HandshakeBundle {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        // An arm that the message does not select would decode differently: refuse it.
        self.body_matches()?;
        let mut written = self.proposal_or_commit.tls_serialize(writer)?;
        written += match &self.body {
            HandshakeBundleBody::Commit {
                welcome,
                group_info_option,
                ratchet_tree_option,
            } => {
                welcome.tls_serialize(writer)?
                    + group_info_option.tls_serialize(writer)?
                    + ratchet_tree_option.tls_serialize(writer)?
            }
            HandshakeBundleBody::Proposal { more_proposals } => {
                more_proposals.tls_serialize(writer)?
            }
        };
        Ok(written)
    }
}

impl Deserialize for HandshakeBundle {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let proposal_or_commit = MlsMessage::tls_deserialize(bytes)?;
        let body = match arm_for(&proposal_or_commit)? {
            ContentType::Commit => HandshakeBundleBody::Commit {
                welcome: Option::<WelcomeBytes>::tls_deserialize(bytes)?,
                group_info_option: GroupInfoOption::tls_deserialize(bytes)?,
                ratchet_tree_option: RatchetTreeOption::tls_deserialize(bytes)?,
            },
            _ => HandshakeBundleBody::Proposal {
                more_proposals: Vec::<MlsMessage>::tls_deserialize(bytes)?,
            },
        };
        Ok(HandshakeBundle {
            proposal_or_commit,
            body,
        })
    }
}

/// Checks that a handshake message the hub must read is a PublicMessage of `content`.
pub(crate) fn check_public(
    field: &str,
    message: &MlsMessage,
    content: ContentType,
) -> Result<(), String> {
    match message.kind() {
        MessageKind::PublicMessage(c) if c == content => Ok(()),
        other => Err(format!(
            "{field} must be a PublicMessage({content:?}), got {}",
            other.describe()
        )),
    }
}

/// Checks that a full GroupInfo sent with a commit describes the epoch the commit creates.
fn check_group_info_follows(
    group_info: &GroupInfoBytes,
    commit: &MlsMessage,
) -> Result<(), String> {
    let group_info = group_info
        .parse()
        .map_err(|e| format!("groupInfoOption.groupInfo: {e}"))?;
    if commit.group_id() != Some(group_info.group_id().as_slice()) {
        return Err("groupInfoOption.groupInfo belongs to another group".into());
    }
    let next = commit.epoch().and_then(|e| e.checked_add(1));
    if next != Some(group_info.epoch().as_u64()) {
        return Err(format!(
            "groupInfoOption.groupInfo is for epoch {}, the commit creates epoch {next:?}",
            group_info.epoch().as_u64()
        ));
    }
    Ok(())
}

/// Checks that every message of `list` is a PublicMessage proposal of the group of `anchor`
/// (and of its epoch, when `epoch` is given).
pub(crate) fn check_proposal_list(
    field: &str,
    list: &[MlsMessage],
    anchor: &MlsMessage,
    epoch: Option<u64>,
) -> Result<(), String> {
    for (i, m) in list.iter().enumerate() {
        let name = format!("{field}[{i}]");
        check_public(&name, m, ContentType::Proposal)?;
        if m.group_id() != anchor.group_id() {
            return Err(format!("{name} belongs to another group"));
        }
        if let Some(epoch) = epoch
            && m.epoch() != Some(epoch)
        {
            return Err(format!(
                "{name} is for epoch {:?}, expected {epoch}",
                m.epoch()
            ));
        }
    }
    Ok(())
}

impl WireStruct for HandshakeBundle {
    const NAME: &'static str = "HandshakeBundle";

    fn check(&self) -> Result<(), String> {
        self.body_matches().map_err(|e| e.to_string())?;
        match &self.body {
            HandshakeBundleBody::Commit {
                welcome,
                group_info_option,
                ratchet_tree_option,
            } => {
                check_public(
                    "proposalOrCommit",
                    &self.proposal_or_commit,
                    ContentType::Commit,
                )?;
                group_info_option.check("groupInfoOption")?;
                if let GroupInfoOption::Full(group_info) = group_info_option {
                    check_group_info_follows(group_info, &self.proposal_or_commit)?;
                }
                ratchet_tree_option.check("ratchetTreeOption")?;
                if let Some(w) = welcome
                    && w.as_bytes().is_empty()
                {
                    return Err("welcome is empty".into());
                }
            }
            HandshakeBundleBody::Proposal { more_proposals } => {
                check_public(
                    "proposalOrCommit",
                    &self.proposal_or_commit,
                    ContentType::Proposal,
                )?;
                check_proposal_list(
                    "moreProposals",
                    more_proposals,
                    &self.proposal_or_commit,
                    self.proposal_or_commit.epoch(),
                )?;
            }
        }
        Ok(())
    }
}

/// `struct { select (room.protocol) { case mls10: HandshakeBundle bundle; }; } UpdateRequest;`
///
/// Unlike the other bodies it carries no `Protocol` on the wire: the protocol is the room's
/// (protocol-06 §5.3), and the only one is `mls10`, so the body is exactly a `HandshakeBundle`.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct UpdateRequest {
    pub bundle: HandshakeBundle,
}

impl WireStruct for UpdateRequest {
    const NAME: &'static str = "UpdateRequest";

    fn check(&self) -> Result<(), String> {
        self.bundle.check()
    }
}

/// `UpdateResponseCode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum UpdateResponseCode {
    Success = 0,
    WrongEpoch = 1,
    NotAllowed = 2,
    InvalidProposal = 3,
}

/// `responseCode` together with its `select` arm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The hub accepted the update at `accepted_timestamp` (ms since the UNIX epoch).
    Success {
        accepted_timestamp: u64,
    },
    /// The hub's current epoch of the group.
    WrongEpoch {
        current_epoch: u64,
    },
    NotAllowed,
    InvalidProposal {
        invalid_proposals: Vec<ProposalRef>,
    },
}

impl UpdateOutcome {
    pub fn code(&self) -> UpdateResponseCode {
        match self {
            UpdateOutcome::Success { .. } => UpdateResponseCode::Success,
            UpdateOutcome::WrongEpoch { .. } => UpdateResponseCode::WrongEpoch,
            UpdateOutcome::NotAllowed => UpdateResponseCode::NotAllowed,
            UpdateOutcome::InvalidProposal { .. } => UpdateResponseCode::InvalidProposal,
        }
    }
}

/// `struct { UpdateResponseCode responseCode; string errorDescription; select (responseCode)
/// {...} } UpdateRoomResponse;`
///
/// `string` is not a TLS type; it is read as the draft's `UTF8String`, i.e. `opaque<V>` holding
/// UTF-8 (protocol-06 §7.6), which is what tls_codec's `String` encodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateRoomResponse {
    pub error_description: String,
    pub outcome: UpdateOutcome,
}

impl Size for UpdateRoomResponse {
    fn tls_serialized_len(&self) -> usize {
        1 + self.error_description.tls_serialized_len()
            + match &self.outcome {
                UpdateOutcome::Success { .. } | UpdateOutcome::WrongEpoch { .. } => 8,
                UpdateOutcome::NotAllowed => 0,
                UpdateOutcome::InvalidProposal { invalid_proposals } => {
                    invalid_proposals.tls_serialized_len()
                }
            }
    }
}

impl Serialize for UpdateRoomResponse {
    fn tls_serialize<W: Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        let mut written = self.outcome.code().tls_serialize(writer)?;
        written += self.error_description.tls_serialize(writer)?;
        written += match &self.outcome {
            UpdateOutcome::Success { accepted_timestamp } => {
                accepted_timestamp.tls_serialize(writer)?
            }
            UpdateOutcome::WrongEpoch { current_epoch } => current_epoch.tls_serialize(writer)?,
            UpdateOutcome::NotAllowed => 0,
            UpdateOutcome::InvalidProposal { invalid_proposals } => {
                invalid_proposals.tls_serialize(writer)?
            }
        };
        Ok(written)
    }
}

impl Deserialize for UpdateRoomResponse {
    fn tls_deserialize<R: Read>(bytes: &mut R) -> Result<Self, tls_codec::Error> {
        let code = UpdateResponseCode::tls_deserialize(bytes)?;
        let error_description = String::tls_deserialize(bytes)?;
        let outcome = match code {
            UpdateResponseCode::Success => UpdateOutcome::Success {
                accepted_timestamp: u64::tls_deserialize(bytes)?,
            },
            UpdateResponseCode::WrongEpoch => UpdateOutcome::WrongEpoch {
                current_epoch: u64::tls_deserialize(bytes)?,
            },
            UpdateResponseCode::NotAllowed => UpdateOutcome::NotAllowed,
            UpdateResponseCode::InvalidProposal => UpdateOutcome::InvalidProposal {
                invalid_proposals: Vec::<ProposalRef>::tls_deserialize(bytes)?,
            },
        };
        Ok(UpdateRoomResponse {
            error_description,
            outcome,
        })
    }
}

impl WireStruct for UpdateRoomResponse {
    const NAME: &'static str = "UpdateRoomResponse";

    fn check(&self) -> Result<(), String> {
        if let UpdateOutcome::InvalidProposal { invalid_proposals } = &self.outcome {
            if invalid_proposals.is_empty() {
                return Err("invalidProposal must list the invalid proposals".into());
            }
            if invalid_proposals.iter().any(|r| r.as_slice().is_empty()) {
                return Err("invalidProposals holds an empty ProposalRef".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::fixtures::{round_trip, varint, world};
    use super::super::ratchet_tree_options::{PartialGroupInfo, RatchetTreePresence};
    use super::*;
    use crate::room::wire::{decode_exact, encode};

    fn commit_bundle() -> UpdateRequest {
        let w = world();
        UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: w.commit(),
                body: HandshakeBundleBody::Commit {
                    welcome: Some(w.welcome()),
                    group_info_option: GroupInfoOption::Full(w.group_info()),
                    ratchet_tree_option: RatchetTreeOption::Full {
                        ratchet_tree: w.ratchet_tree(),
                    },
                },
            },
        }
    }

    #[test]
    fn a_commit_bundle_round_trips_and_is_the_concatenation_of_its_parts() {
        let w = world();
        let request = commit_bundle();
        let bytes = round_trip(&request);
        let expected = [
            w.commit.clone(),
            vec![1],
            w.welcome().into_bytes(),
            vec![1],
            w.group_info().into_bytes(),
            vec![1],
            w.ratchet_tree.clone(),
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn commit_bundle_variants_round_trip() {
        let w = world();
        let request = UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: w.commit(),
                body: HandshakeBundleBody::Commit {
                    welcome: None,
                    group_info_option: GroupInfoOption::Partial(PartialGroupInfo {
                        ratchet_tree_presence: RatchetTreePresence::Present,
                        group_info_extensions: vec![],
                        signature: vec![9; 64].into(),
                    }),
                    ratchet_tree_option: RatchetTreeOption::DistributionService,
                },
            },
        };
        let bytes = round_trip(&request);
        let tail = [vec![0, 2, 1, 0, 0x40, 64], vec![9; 64], vec![4]].concat();
        assert_eq!(&bytes[w.commit.len()..], &tail[..]);
    }

    #[test]
    fn a_proposal_bundle_round_trips() {
        let w = world();
        let request = UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: w.proposal(0),
                body: HandshakeBundleBody::Proposal {
                    more_proposals: vec![w.proposal(1)],
                },
            },
        };
        let bytes = round_trip(&request);
        // moreProposals<V>: a varint length, then the messages back to back.
        let expected = [
            w.proposals[0].clone(),
            varint(w.proposals[1].len()),
            w.proposals[1].clone(),
        ]
        .concat();
        assert_eq!(bytes, expected);
        let empty = UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: w.proposal(1),
                body: HandshakeBundleBody::Proposal {
                    more_proposals: vec![],
                },
            },
        };
        assert_eq!(
            round_trip(&empty),
            [w.proposals[1].clone(), vec![0]].concat()
        );
    }

    #[test]
    fn the_arm_must_match_the_message() {
        let w = world();
        let wrong = HandshakeBundle {
            proposal_or_commit: w.commit(),
            body: HandshakeBundleBody::Proposal {
                more_proposals: vec![],
            },
        };
        assert!(encode(&wrong).is_err());
        assert!(
            wrong.tls_serialize_detached().is_err(),
            "even without the check"
        );
        // An application message selects no arm.
        let bytes = [w.application.clone(), vec![0]].concat();
        let err = decode_exact::<UpdateRequest>(&bytes).unwrap_err();
        assert!(err.to_string().contains("selects no arm"), "{err}");
        // A welcome is not a handshake either.
        let bytes = [w.welcome_message.clone(), vec![0]].concat();
        assert!(decode_exact::<HandshakeBundle>(&bytes).is_err());
    }

    #[test]
    fn the_group_info_must_describe_the_new_epoch_of_the_same_group() {
        let w = world();
        let bundle = |group_info| HandshakeBundle {
            proposal_or_commit: w.commit(),
            body: HandshakeBundleBody::Commit {
                welcome: None,
                group_info_option: GroupInfoOption::Full(group_info),
                ratchet_tree_option: RatchetTreeOption::DistributionService,
            },
        };
        assert!(encode(&bundle(w.group_info())).is_ok());
        let err = encode(&bundle(w.other_group_info()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("another group"), "{err}");
    }

    #[test]
    fn more_proposals_must_be_proposals() {
        let w = world();
        let bundle = HandshakeBundle {
            proposal_or_commit: w.proposal(0),
            body: HandshakeBundleBody::Proposal {
                more_proposals: vec![w.commit()],
            },
        };
        let err = encode(&bundle).unwrap_err().to_string();
        assert!(err.contains("moreProposals[0]"), "{err}");
        let bundle = HandshakeBundle {
            proposal_or_commit: w.proposal(0),
            body: HandshakeBundleBody::Proposal {
                more_proposals: vec![w.application()],
            },
        };
        assert!(encode(&bundle).is_err());
    }

    #[test]
    fn a_truncated_bundle_is_refused() {
        let bytes = encode(&commit_bundle()).unwrap();
        for cut in [bytes.len() - 1, bytes.len() / 2, 10] {
            assert!(decode_exact::<UpdateRequest>(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn update_responses_have_the_exact_wire_form() {
        let ok = UpdateRoomResponse {
            error_description: String::new(),
            outcome: UpdateOutcome::Success {
                accepted_timestamp: 0x0102_0304_0506_0708,
            },
        };
        assert_eq!(round_trip(&ok), vec![0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        let epoch = UpdateRoomResponse {
            error_description: "é".into(),
            outcome: UpdateOutcome::WrongEpoch { current_epoch: 7 },
        };
        assert_eq!(
            round_trip(&epoch),
            vec![1, 2, 0xC3, 0xA9, 0, 0, 0, 0, 0, 0, 0, 7]
        );
        let denied = UpdateRoomResponse {
            error_description: "no".into(),
            outcome: UpdateOutcome::NotAllowed,
        };
        assert_eq!(round_trip(&denied), vec![2, 2, b'n', b'o']);
        let w = world();
        let invalid = UpdateRoomResponse {
            error_description: "bad".into(),
            outcome: UpdateOutcome::InvalidProposal {
                invalid_proposals: vec![w.proposal_ref(0), w.proposal_ref(1)],
            },
        };
        let bytes = round_trip(&invalid);
        // ProposalRef = opaque<V> of a SHA-256 hash: 1 + 32 bytes each.
        assert_eq!(&bytes[..5], &[3, 3, b'b', b'a', b'd']);
        // 66 bytes need a two-byte varint length.
        assert_eq!(&bytes[5..7], &[0x40, 66]);
        assert_eq!(
            &bytes[7..],
            &[w.proposal_refs[0].clone(), w.proposal_refs[1].clone()].concat()[..]
        );
    }

    #[test]
    fn update_response_checks() {
        let empty = UpdateRoomResponse {
            error_description: String::new(),
            outcome: UpdateOutcome::InvalidProposal {
                invalid_proposals: vec![],
            },
        };
        assert!(encode(&empty).is_err());
        assert!(
            decode_exact::<UpdateRoomResponse>(&[4, 0]).is_err(),
            "unknown code"
        );
        assert!(
            decode_exact::<UpdateRoomResponse>(&[2, 1, 0xFF]).is_err(),
            "not UTF-8"
        );
        assert!(decode_exact::<UpdateRoomResponse>(&[0, 0, 1, 2, 3]).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_exact::<UpdateRequest>(&bytes);
            let _ = decode_exact::<HandshakeBundle>(&bytes);
            let _ = decode_exact::<UpdateRoomResponse>(&bytes);
        }

        #[test]
        fn update_responses_round_trip(
            text in "\\PC{0,40}",
            code in 0u8..4,
            number in any::<u64>(),
        ) {
            let outcome = match code {
                0 => UpdateOutcome::Success { accepted_timestamp: number },
                1 => UpdateOutcome::WrongEpoch { current_epoch: number },
                2 => UpdateOutcome::NotAllowed,
                _ => UpdateOutcome::InvalidProposal {
                    invalid_proposals: vec![world().proposal_ref((number % 2) as usize)],
                },
            };
            round_trip(&UpdateRoomResponse { error_description: text, outcome });
        }

        #[test]
        fn mutated_bundles_never_panic(pos in any::<usize>(), byte in any::<u8>()) {
            let mut bytes = encode(&commit_bundle()).unwrap();
            let at = pos % bytes.len();
            bytes[at] = byte;
            if let Ok(v) = decode_exact::<UpdateRequest>(&bytes) {
                prop_assert_eq!(encode(&v).unwrap(), bytes);
            }
        }
    }
}
