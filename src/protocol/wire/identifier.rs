//! `POST /identifierQuery/{domain}` bodies (protocol-06 §5.8).

use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use crate::room::wire::{AppDataDictionary, WireStruct};
use crate::uri::UriKind;

use super::common::{IdentifierUri, check_uri, check_utf8};

/// `SearchIdentifierType` (without `reserved(0)`, which has no meaning as a search).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SearchIdentifierType {
    Handle = 1,
    Nick = 2,
    Email = 3,
    Phone = 4,
    PartialName = 5,
    WholeProfile = 6,
    OidcStdClaim = 7,
    VcardField = 8,
}

/// `searchType` together with its `select` arm.
///
/// protocol-06 §5.8 writes `select(type)`; the field it means is `searchType`.
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum SearchType {
    /// The entire handle URI matches exactly (e.g. `im:alice.smith@a.example`).
    #[tls_codec(discriminant = 1)]
    Handle,
    #[tls_codec(discriminant = 2)]
    Nick,
    #[tls_codec(discriminant = 3)]
    Email,
    /// E.164 with a leading `+`.
    #[tls_codec(discriminant = 4)]
    Phone,
    #[tls_codec(discriminant = 5)]
    PartialName,
    #[tls_codec(discriminant = 6)]
    WholeProfile,
    /// An OIDC UserInfo standard claim name (e.g. `given_name`), UTF-8.
    #[tls_codec(discriminant = 7)]
    OidcStdClaim { claim_name: VLBytes },
    /// A vCard property name (e.g. `ORG`), UTF-8.
    #[tls_codec(discriminant = 8)]
    VcardField { property_name: VLBytes },
}

impl SearchType {
    pub fn identifier_type(&self) -> SearchIdentifierType {
        match self {
            SearchType::Handle => SearchIdentifierType::Handle,
            SearchType::Nick => SearchIdentifierType::Nick,
            SearchType::Email => SearchIdentifierType::Email,
            SearchType::Phone => SearchIdentifierType::Phone,
            SearchType::PartialName => SearchIdentifierType::PartialName,
            SearchType::WholeProfile => SearchIdentifierType::WholeProfile,
            SearchType::OidcStdClaim { .. } => SearchIdentifierType::OidcStdClaim,
            SearchType::VcardField { .. } => SearchIdentifierType::VcardField,
        }
    }
}

/// `struct { SearchIdentifierType searchType; select (searchType) {...}; opaque searchValue<V>; }
/// QueryElement;`
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct QueryElement {
    pub search_type: SearchType,
    /// A UTF-8 string.
    pub search_value: VLBytes,
}

/// `struct { QueryElement query_elements<V>; AppDataDictionary id_request_extensions; }
/// IdentifierRequest;` — all elements must match (AND).
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct IdentifierRequest {
    pub query_elements: Vec<QueryElement>,
    pub id_request_extensions: AppDataDictionary,
}

impl WireStruct for IdentifierRequest {
    const NAME: &'static str = "IdentifierRequest";

    fn check(&self) -> Result<(), String> {
        if self.query_elements.is_empty() {
            return Err("query_elements must not be empty".into());
        }
        for (i, q) in self.query_elements.iter().enumerate() {
            check_utf8(
                &format!("query_elements[{i}].searchValue"),
                q.search_value.as_slice(),
            )?;
            match &q.search_type {
                SearchType::OidcStdClaim { claim_name: name }
                | SearchType::VcardField {
                    property_name: name,
                } => {
                    let field = format!("query_elements[{i}] field name");
                    check_utf8(&field, name.as_slice())?;
                    if name.as_slice().is_empty() {
                        return Err(format!("{field} is empty"));
                    }
                }
                _ => {}
            }
        }
        self.id_request_extensions
            .check()
            .map_err(|e| format!("id_request_extensions: {e}"))
    }
}

/// `IdentifierQueryCode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum IdentifierQueryCode {
    Success = 0,
    NotFound = 1,
    Ambiguous = 2,
    Forbidden = 3,
    UnsupportedField = 4,
}

/// `enum { reserved(0), oidcStdClaim(7), vcardField(8), (255) } FieldSource;`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, TlsSerialize, TlsDeserialize, TlsSize)]
#[repr(u8)]
pub enum FieldSource {
    OidcStdClaim = 7,
    VcardField = 8,
}

/// `struct { FieldSource fieldSource; string fieldName; opaque fieldValue<V>; } ProfileField;`
/// (`string` read as `opaque<V>` UTF-8).
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct ProfileField {
    pub field_source: FieldSource,
    pub field_name: String,
    pub field_value: VLBytes,
}

/// `struct { IdentifierUri stableUri; ProfileField fields<V>; } UserProfile;`
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct UserProfile {
    pub stable_uri: IdentifierUri,
    pub fields: Vec<ProfileField>,
}

/// `struct { IdentifierQueryCode responseCode; IdentifierUri uri<V>; UserProfile
/// foundProfiles<V>; AppDataDictionary id_response_extensions; } IdentifierResponse;`
#[derive(Clone, Debug, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct IdentifierResponse {
    pub response_code: IdentifierQueryCode,
    pub uri: Vec<IdentifierUri>,
    pub found_profiles: Vec<UserProfile>,
    pub id_response_extensions: AppDataDictionary,
}

/// What an identifier query can find: users, pseudonyms and teams.
const FINDABLE: &[UriKind] = &[UriKind::User, UriKind::Pseudonym, UriKind::Team];

impl WireStruct for IdentifierResponse {
    const NAME: &'static str = "IdentifierResponse";

    fn check(&self) -> Result<(), String> {
        for (i, u) in self.uri.iter().enumerate() {
            check_uri(&format!("uri[{i}]"), u, FINDABLE)?;
        }
        for (i, p) in self.found_profiles.iter().enumerate() {
            check_uri(
                &format!("foundProfiles[{i}].stableUri"),
                &p.stable_uri,
                FINDABLE,
            )?;
        }
        let found = !self.uri.is_empty() || !self.found_profiles.is_empty();
        match self.response_code {
            // "success means that at least one result matched the query"
            IdentifierQueryCode::Success if !found => {
                return Err("responseCode success with no uri and no profile".into());
            }
            IdentifierQueryCode::Success => {}
            other if found => {
                return Err(format!("responseCode {other:?} cannot carry results"));
            }
            _ => {}
        }
        self.id_response_extensions
            .check()
            .map_err(|e| format!("id_response_extensions: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::fixtures::{ALICE, round_trip, short_vl};
    use super::*;
    use crate::room::wire::{decode_exact, encode};

    #[test]
    fn requests_have_the_exact_wire_form() {
        let request = IdentifierRequest {
            query_elements: vec![
                QueryElement {
                    search_type: SearchType::Handle,
                    search_value: b"al".to_vec().into(),
                },
                QueryElement {
                    search_type: SearchType::OidcStdClaim {
                        claim_name: b"given_name".to_vec().into(),
                    },
                    search_value: b"Al".to_vec().into(),
                },
            ],
            id_request_extensions: AppDataDictionary::default(),
        };
        let elements = [
            vec![1],
            short_vl(b"al"),
            vec![7],
            short_vl(b"given_name"),
            short_vl(b"Al"),
        ]
        .concat();
        let expected = [short_vl(&elements), vec![0]].concat();
        assert_eq!(round_trip(&request), expected);
        assert_eq!(
            request.query_elements[1].search_type.identifier_type(),
            SearchIdentifierType::OidcStdClaim
        );
    }

    #[test]
    fn request_checks() {
        let empty = IdentifierRequest {
            query_elements: vec![],
            id_request_extensions: AppDataDictionary::default(),
        };
        assert!(encode(&empty).is_err());
        let unnamed = IdentifierRequest {
            query_elements: vec![QueryElement {
                search_type: SearchType::VcardField {
                    property_name: vec![].into(),
                },
                search_value: b"x".to_vec().into(),
            }],
            id_request_extensions: AppDataDictionary::default(),
        };
        assert!(encode(&unnamed).is_err());
        let binary = IdentifierRequest {
            query_elements: vec![QueryElement {
                search_type: SearchType::Email,
                search_value: vec![0xFF].into(),
            }],
            id_request_extensions: AppDataDictionary::default(),
        };
        assert!(encode(&binary).unwrap_err().to_string().contains("UTF-8"));
        assert!(
            decode_exact::<IdentifierRequest>(&[2, 0, 0, 0]).is_err(),
            "reserved(0)"
        );
        assert!(
            decode_exact::<IdentifierRequest>(&[2, 9, 0, 0]).is_err(),
            "unknown type"
        );
    }

    #[test]
    fn responses_have_the_exact_wire_form() {
        let none = IdentifierResponse {
            response_code: IdentifierQueryCode::NotFound,
            uri: vec![],
            found_profiles: vec![],
            id_response_extensions: AppDataDictionary::default(),
        };
        assert_eq!(round_trip(&none), vec![1, 0, 0, 0]);
        let found = IdentifierResponse {
            response_code: IdentifierQueryCode::Success,
            uri: vec![IdentifierUri::new(ALICE)],
            found_profiles: vec![UserProfile {
                stable_uri: IdentifierUri::new(ALICE),
                fields: vec![ProfileField {
                    field_source: FieldSource::VcardField,
                    field_name: "ORG".into(),
                    field_value: b"Example".to_vec().into(),
                }],
            }],
            id_response_extensions: AppDataDictionary::default(),
        };
        let uri = short_vl(ALICE.as_bytes());
        let field = [vec![8], short_vl(b"ORG"), short_vl(b"Example")].concat();
        let profile = [uri.clone(), short_vl(&field)].concat();
        let expected = [vec![0], short_vl(&uri), short_vl(&profile), vec![0]].concat();
        assert_eq!(round_trip(&found), expected);
    }

    #[test]
    fn response_codes_constrain_the_results() {
        let success_without_results = IdentifierResponse {
            response_code: IdentifierQueryCode::Success,
            uri: vec![],
            found_profiles: vec![],
            id_response_extensions: AppDataDictionary::default(),
        };
        assert!(encode(&success_without_results).is_err());
        let forbidden_with_results = IdentifierResponse {
            response_code: IdentifierQueryCode::Forbidden,
            uri: vec![IdentifierUri::new(ALICE)],
            ..success_without_results.clone()
        };
        assert!(encode(&forbidden_with_results).is_err());
        let room = IdentifierResponse {
            uri: vec![IdentifierUri::new("mimi://a.example/r/x")],
            ..success_without_results
        };
        assert!(encode(&room).is_err());
        // FieldSource reserved(0) and unknown values are refused.
        for source in [0u8, 1, 9] {
            let field = [vec![source], short_vl(b"n"), short_vl(b"v")].concat();
            assert!(ProfileField::tls_deserialize_exact(&field).is_err());
        }
    }

    fn query_element() -> impl Strategy<Value = QueryElement> {
        (1u8..=8, "[a-zA-Z_]{1,12}", "\\PC{0,24}").prop_map(|(t, name, value)| {
            let name: VLBytes = name.into_bytes().into();
            let search_type = match t {
                1 => SearchType::Handle,
                2 => SearchType::Nick,
                3 => SearchType::Email,
                4 => SearchType::Phone,
                5 => SearchType::PartialName,
                6 => SearchType::WholeProfile,
                7 => SearchType::OidcStdClaim { claim_name: name },
                _ => SearchType::VcardField {
                    property_name: name,
                },
            };
            QueryElement {
                search_type,
                search_value: value.into_bytes().into(),
            }
        })
    }

    use tls_codec::Deserialize as _;

    proptest! {
        #[test]
        fn requests_round_trip(elements in proptest::collection::vec(query_element(), 1..6)) {
            round_trip(&IdentifierRequest {
                query_elements: elements,
                id_request_extensions: AppDataDictionary::default(),
            });
        }

        #[test]
        fn responses_round_trip(
            users in proptest::collection::vec("[a-z]{1,8}", 1..4),
            fields in proptest::collection::vec(("\\PC{0,12}", any::<bool>(), proptest::collection::vec(any::<u8>(), 0..20)), 0..4),
        ) {
            let uris: Vec<IdentifierUri> = users
                .iter()
                .map(|u| IdentifierUri::new(format!("mimi://x.example/u/{u}")))
                .collect();
            let fields: Vec<ProfileField> = fields
                .into_iter()
                .map(|(name, vcard, value)| ProfileField {
                    field_source: if vcard { FieldSource::VcardField } else { FieldSource::OidcStdClaim },
                    field_name: name,
                    field_value: value.into(),
                })
                .collect();
            round_trip(&IdentifierResponse {
                response_code: IdentifierQueryCode::Success,
                found_profiles: uris
                    .iter()
                    .map(|u| UserProfile { stable_uri: u.clone(), fields: fields.clone() })
                    .collect(),
                uri: uris,
                id_response_extensions: AppDataDictionary::default(),
            });
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_exact::<IdentifierRequest>(&bytes);
            let _ = decode_exact::<IdentifierResponse>(&bytes);
        }
    }
}
