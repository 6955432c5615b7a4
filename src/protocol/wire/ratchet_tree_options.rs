//! `RatchetTreeOption`, `PartialGroupInfo` (draft-mahy-mls-ratchet-tree-options) and
//! `GroupInfoOption` (protocol-06 §5.3).
//!
//! protocol-06 imports `RatchetTreeOption` and `PartialGroupInfo` from
//! draft-mahy-mls-ratchet-tree-options without repeating them. The layouts here follow the
//! project's digest (mimi-spec.md §4.2, taken from OtaK/mls-spec): `full(1){tree}`,
//! `httpsUri(2){url, tree_signature}`, `outOfBand(3){tree_signature}`, `distributionService(4)`,
//! and `PartialGroupInfo{presence, Extension group_info_extensions<V>, opaque signature<V>}`.

use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::common::check_utf8;
use super::mls::{GroupInfoBytes, RatchetTreeBytes, RawExtension};

/// `enum { reserved(0), full(1), httpsUri(2), outOfBand(3), distributionService(4), (255) }
/// RatchetTreeRepresentation;`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RatchetTreeRepresentation {
    Full = 1,
    HttpsUri = 2,
    OutOfBand = 3,
    DistributionService = 4,
}

/// How the receiver gets the ratchet tree that the `Welcome` or `GroupInfo` leaves out.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum RatchetTreeOption {
    /// The whole tree (`optional<Node> ratchet_tree<V>`).
    #[tls_codec(discriminant = 1)]
    Full { ratchet_tree: RatchetTreeBytes },
    /// An `https` URL serving the tree, and a signature over it. The URL is `opaque<V>` UTF-8.
    #[tls_codec(discriminant = 2)]
    HttpsUri {
        ratchet_tree_url: VLBytes,
        tree_signature: VLBytes,
    },
    /// The receiver already has the tree; the signature lets it check that copy.
    #[tls_codec(discriminant = 3)]
    OutOfBand { tree_signature: VLBytes },
    /// The Distribution Service (here: the hub) supplies the tree.
    #[tls_codec(discriminant = 4)]
    DistributionService,
}

impl RatchetTreeOption {
    pub fn representation(&self) -> RatchetTreeRepresentation {
        match self {
            RatchetTreeOption::Full { .. } => RatchetTreeRepresentation::Full,
            RatchetTreeOption::HttpsUri { .. } => RatchetTreeRepresentation::HttpsUri,
            RatchetTreeOption::OutOfBand { .. } => RatchetTreeRepresentation::OutOfBand,
            RatchetTreeOption::DistributionService => {
                RatchetTreeRepresentation::DistributionService
            }
        }
    }

    pub(crate) fn check(&self, field: &str) -> Result<(), String> {
        if let RatchetTreeOption::HttpsUri {
            ratchet_tree_url, ..
        } = self
        {
            check_utf8(
                &format!("{field}.ratchet_tree_url"),
                ratchet_tree_url.as_slice(),
            )?;
            let url = std::str::from_utf8(ratchet_tree_url.as_slice()).unwrap_or_default();
            if !url.starts_with("https://") {
                return Err(format!(
                    "{field}.ratchet_tree_url must be an https URL, got `{url}`"
                ));
            }
        }
        Ok(())
    }
}

/// `enum { no_ratchet_tree(0), present(1), removed(2), added(3), (255) } RatchetTreePresence;`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum RatchetTreePresence {
    NoRatchetTree = 0,
    Present = 1,
    Removed = 2,
    Added = 3,
}

/// `struct { RatchetTreePresence ratchet_tree_presence; Extension group_info_extensions<V>;
/// opaque signature<V>; } PartialGroupInfo;` — what the Distribution Service needs to rebuild
/// the GroupInfo from the commit it has seen.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct PartialGroupInfo {
    pub ratchet_tree_presence: RatchetTreePresence,
    pub group_info_extensions: Vec<RawExtension>,
    pub signature: VLBytes,
}

/// `enum { reserved(0), full(1), partial(2), (255) } GroupInfoRepresentation;`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupInfoRepresentation {
    Full = 1,
    Partial = 2,
}

/// `struct { GroupInfoRepresentation representation; select (representation) { case full:
/// GroupInfo groupInfo; case partial: PartialGroupInfo partialGroupInfo; } } GroupInfoOption;`
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum GroupInfoOption {
    /// A bare RFC 9420 `GroupInfo` (no `MLSMessage` header).
    #[tls_codec(discriminant = 1)]
    Full(GroupInfoBytes),
    #[tls_codec(discriminant = 2)]
    Partial(PartialGroupInfo),
}

impl GroupInfoOption {
    pub fn representation(&self) -> GroupInfoRepresentation {
        match self {
            GroupInfoOption::Full(_) => GroupInfoRepresentation::Full,
            GroupInfoOption::Partial(_) => GroupInfoRepresentation::Partial,
        }
    }

    pub(crate) fn check(&self, field: &str) -> Result<(), String> {
        if let GroupInfoOption::Partial(p) = self {
            // RFC 9420 §13.4: an extension type appears at most once in a list.
            let mut seen = std::collections::HashSet::new();
            for e in &p.group_info_extensions {
                if !seen.insert(e.extension_type) {
                    return Err(format!(
                        "{field}.group_info_extensions lists extension type {:#06x} twice",
                        e.extension_type
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tls_codec::{Deserialize, Serialize};

    use super::super::fixtures::world;
    use super::*;

    #[test]
    fn ratchet_tree_options_have_the_exact_wire_form() {
        let ds = RatchetTreeOption::DistributionService;
        assert_eq!(ds.tls_serialize_detached().unwrap(), vec![4]);
        let oob = RatchetTreeOption::OutOfBand {
            tree_signature: vec![0xA1, 0xA2].into(),
        };
        assert_eq!(
            oob.tls_serialize_detached().unwrap(),
            vec![3, 2, 0xA1, 0xA2]
        );
        let https = RatchetTreeOption::HttpsUri {
            ratchet_tree_url: b"https://h/t".to_vec().into(),
            tree_signature: vec![0xEE].into(),
        };
        assert_eq!(
            https.tls_serialize_detached().unwrap(),
            [&[2u8, 11][..], b"https://h/t", &[1, 0xEE]].concat()
        );
        assert!(https.check("x").is_ok());
        let http = RatchetTreeOption::HttpsUri {
            ratchet_tree_url: b"http://h/t".to_vec().into(),
            tree_signature: vec![].into(),
        };
        assert!(http.check("x").unwrap_err().contains("https"));
        for bad in [&[0u8][..], &[5], &[3]] {
            assert!(
                RatchetTreeOption::tls_deserialize_exact(bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_full_tree_is_the_ratchet_tree_extension_body() {
        let w = world();
        let full = RatchetTreeOption::Full {
            ratchet_tree: w.ratchet_tree(),
        };
        let bytes = full.tls_serialize_detached().unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[1..], &w.ratchet_tree[..]);
        assert_eq!(
            RatchetTreeOption::tls_deserialize_exact(&bytes).unwrap(),
            full
        );
        assert_eq!(full.representation(), RatchetTreeRepresentation::Full);
    }

    #[test]
    fn group_info_options_have_the_exact_wire_form() {
        let partial = GroupInfoOption::Partial(PartialGroupInfo {
            ratchet_tree_presence: RatchetTreePresence::Removed,
            group_info_extensions: vec![RawExtension {
                extension_type: 0x0004,
                extension_data: vec![0x01].into(),
            }],
            signature: vec![0x5A, 0x5B].into(),
        });
        assert_eq!(
            partial.tls_serialize_detached().unwrap(),
            vec![2, 2, 4, 0x00, 0x04, 1, 0x01, 2, 0x5A, 0x5B]
        );
        assert!(partial.check("g").is_ok());
        let w = world();
        let full = GroupInfoOption::Full(w.group_info());
        let bytes = full.tls_serialize_detached().unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[1..], w.group_info().as_bytes());
        assert_eq!(
            GroupInfoOption::tls_deserialize_exact(&bytes).unwrap(),
            full
        );
        assert!(
            GroupInfoOption::tls_deserialize_exact([0]).is_err(),
            "reserved(0)"
        );
    }

    #[test]
    fn duplicate_extensions_are_refused() {
        let ext = RawExtension {
            extension_type: 0x0004,
            extension_data: vec![].into(),
        };
        let partial = GroupInfoOption::Partial(PartialGroupInfo {
            ratchet_tree_presence: RatchetTreePresence::Present,
            group_info_extensions: vec![ext.clone(), ext],
            signature: vec![].into(),
        });
        assert!(partial.check("g").unwrap_err().contains("twice"));
    }
}
