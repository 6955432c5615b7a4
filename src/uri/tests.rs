#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use percent_encoding::percent_decode_str;
use proptest::prelude::*;

use super::*;

fn provider(s: &str) -> ProviderId {
    ProviderId::new(s).expect("valid provider")
}

fn err<T: FromStr<Err = UriError> + fmt::Debug>(s: &str) -> UriError {
    match s.parse::<T>() {
        Ok(v) => panic!("{s:?} should not parse, got {v:?}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------
// Every example from the drafts
// ---------------------------------------------------------------------------

/// Canonical examples in protocol-06, content (editor's copy) and
/// identity-05, with their kind and decoded segments.
const DRAFT_EXAMPLES: &[(&str, UriKind, &[&str])] = &[
    // protocol-06 §3 table 1 and flows
    ("mimi://a.example", UriKind::Provider, &[]),
    ("mimi://a.example/u/alice", UriKind::User, &["alice"]),
    (
        "mimi://a.example/d/ClientA1",
        UriKind::Client,
        &["ClientA1"],
    ),
    (
        "mimi://a.example/r/clubhouse",
        UriKind::Room,
        &["clubhouse"],
    ),
    (
        "mimi://a.example/g/clubhouse",
        UriKind::Group,
        &["clubhouse"],
    ),
    ("mimi://d.example/u/diana", UriKind::User, &["diana"]),
    ("mimi://e.example/u/eric", UriKind::User, &["eric"]),
    ("mimi://b.example/u/bob", UriKind::User, &["bob"]),
    ("mimi://c.example/u/cathy", UriKind::User, &["cathy"]),
    ("mimi://b.example/u/alice", UriKind::User, &["alice"]),
    (
        "mimi://hub.example/r/Rl33FWLCYWOwxHrYnpWDQg",
        UriKind::Room,
        &["Rl33FWLCYWOwxHrYnpWDQg"],
    ),
    // content editor's copy
    (
        "mimi://example.com/d/3b52249d-68f9-45ce-8bf5-c799f3cad7ec/0003",
        UriKind::Client,
        &["3b52249d-68f9-45ce-8bf5-c799f3cad7ec", "0003"],
    ),
    (
        "mimi://example.com/u/alice-smith",
        UriKind::User,
        &["alice-smith"],
    ),
    (
        "mimi://example.com/u/bob-jones",
        UriKind::User,
        &["bob-jones"],
    ),
    (
        "mimi://example.com/u/cathy-washington",
        UriKind::User,
        &["cathy-washington"],
    ),
    (
        "mimi://example.com/r/engineering_team",
        UriKind::Room,
        &["engineering_team"],
    ),
    // identity-05 §4 and §6
    ("mimi://example.com", UriKind::Provider, &[]),
    ("mimi://example.com/u/juliet", UriKind::User, &["juliet"]),
    (
        "mimi://example.com/d/juliet/balcony",
        UriKind::Client,
        &["juliet", "balcony"],
    ),
    ("mimi://irc.example.com", UriKind::Provider, &[]),
    (
        "mimi://irc.example.com/u/juliet",
        UriKind::User,
        &["juliet"],
    ),
    (
        "mimi://irc.example.com/r/local_announcements_channel",
        UriKind::Room,
        &["local_announcements_channel"],
    ),
    (
        "mimi://irc.example.com/r/projectX",
        UriKind::Room,
        &["projectX"],
    ),
    (
        "mimi://a.example/p/crazykoala75",
        UriKind::Pseudonym,
        &["crazykoala75"],
    ),
    (
        "mimi://a.example/d/alice/ClientA1",
        UriKind::Client,
        &["alice", "ClientA1"],
    ),
    (
        "mimi://a.example/g/TII9t5viBrXiXc",
        UriKind::Group,
        &["TII9t5viBrXiXc"],
    ),
    (
        "mimi://a.example/t/engineering",
        UriKind::Team,
        &["engineering"],
    ),
    (
        "mimi://local.invalid/u/alice.smith",
        UriKind::User,
        &["alice.smith"],
    ),
    (
        "mimi://example.com/d/SvPfLlwBQi-6oddVRrkqpw/04c7",
        UriKind::Client,
        &["SvPfLlwBQi-6oddVRrkqpw", "04c7"],
    ),
];

#[test]
fn draft_examples_round_trip() {
    for &(s, kind, segments) in DRAFT_EXAMPLES {
        let uri: MimiUri = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(uri.kind(), kind, "{s}");
        assert_eq!(uri.as_str(), s, "{s} is canonical");
        assert_eq!(uri.to_string(), s);
        assert_eq!(uri.segments(), segments, "{s}");
        assert_eq!(MimiUri::from_bytes(&uri.to_bytes()), Ok(uri.clone()));
        assert_eq!(uri.to_string().parse::<MimiUri>(), Ok(uri.clone()));
        assert_eq!(
            MimiUri::from_encoded_path_param(&uri.to_path_param()),
            Ok(uri.clone())
        );
        // The typed parser for that kind accepts it, and the others refuse it.
        let typed = match kind {
            UriKind::Provider => s.parse::<ProviderId>().map(|v| v.to_string()),
            UriKind::User => s.parse::<UserUri>().map(|v| v.to_string()),
            UriKind::Client => s.parse::<ClientUri>().map(|v| v.to_string()),
            UriKind::Room => s.parse::<RoomUri>().map(|v| v.to_string()),
            UriKind::Group => s.parse::<GroupUri>().map(|v| v.to_string()),
            UriKind::Pseudonym => s.parse::<PseudonymUri>().map(|v| v.to_string()),
            UriKind::Team => s.parse::<TeamUri>().map(|v| v.to_string()),
        };
        assert_eq!(typed.as_deref(), Ok(s));
        if kind != UriKind::User {
            assert_eq!(
                s.parse::<UserUri>(),
                Err(UriError::WrongKind {
                    expected: UriKind::User,
                    found: kind
                })
            );
        }
    }
}

#[test]
fn raw_at_sign_from_identity_draft_parses_and_is_canonicalised() {
    // identity-05 §4: an IRC user identifier with a raw `@` (a legal pchar).
    let s = "mimi://irc.example.com/u/jcapulet1583@example.com";
    let user: UserUri = s.parse().unwrap();
    assert_eq!(user.local(), "jcapulet1583@example.com");
    assert_eq!(user.provider().domain(), "irc.example.com");
    assert_eq!(
        user.as_str(),
        "mimi://irc.example.com/u/jcapulet1583%40example.com"
    );
    assert_eq!(user.as_str().parse::<UserUri>(), Ok(user));
}

#[test]
fn typed_accessors() {
    let user: UserUri = "mimi://a.example/u/alice".parse().unwrap();
    assert_eq!(user.provider(), &provider("a.example"));
    assert_eq!(user.local(), "alice");
    assert_eq!(UserUri::KIND, UriKind::User);

    let client: ClientUri = "mimi://a.example/d/alice/ClientA1".parse().unwrap();
    assert_eq!(client.segments(), ["alice", "ClientA1"]);
    assert_eq!(client.device(), "ClientA1");
    assert_eq!(client.local(), "alice/ClientA1");
    assert_eq!(client.user_hint(), Some(user.clone()));

    let one: ClientUri = "mimi://a.example/d/ClientA1".parse().unwrap();
    assert_eq!(one.user_hint(), None);
    assert_eq!(one.device(), "ClientA1");
    let three: ClientUri = "mimi://a.example/d/x/y/z".parse().unwrap();
    assert_eq!(three.user_hint(), None);

    let made = ClientUri::for_user(&user, "dev 1").unwrap();
    assert_eq!(made.as_str(), "mimi://a.example/d/alice/dev%201");
    assert_eq!(made.user_hint(), Some(user));

    let room: RoomUri = "mimi://a.example/r/clubhouse".parse().unwrap();
    assert_eq!(
        GroupUri::for_room(&room).as_str(),
        "mimi://a.example/g/clubhouse"
    );
}

#[test]
fn constructors_encode_and_validate() {
    let p = provider("a.example");
    let user = UserUri::new(p.clone(), "al/ice %é").unwrap();
    assert_eq!(user.as_str(), "mimi://a.example/u/al%2Fice%20%25%C3%A9");
    assert_eq!(user.local(), "al/ice %é");
    assert_eq!(
        UserUri::new(p.clone(), ""),
        Err(UriError::EmptySegment { position: 2 })
    );
    assert_eq!(
        RoomUri::new(p.clone(), "x").unwrap().as_str(),
        "mimi://a.example/r/x"
    );
    assert_eq!(
        GroupUri::new(p.clone(), "x").unwrap().as_str(),
        "mimi://a.example/g/x"
    );
    assert_eq!(
        PseudonymUri::new(p.clone(), "x").unwrap().as_str(),
        "mimi://a.example/p/x"
    );
    assert_eq!(
        TeamUri::new(p.clone(), "x").unwrap().as_str(),
        "mimi://a.example/t/x"
    );
    assert_eq!(
        ClientUri::new(p.clone(), &["a", "b"]).unwrap().as_str(),
        "mimi://a.example/d/a/b"
    );
    assert_eq!(
        ClientUri::new(p.clone(), &[]),
        Err(UriError::WrongSegmentCount {
            kind: UriKind::Client,
            found: 0
        })
    );
    assert_eq!(
        ClientUri::new(p, &["a", ""]),
        Err(UriError::EmptySegment { position: 3 })
    );
}

#[test]
fn canonical_form_normalises_case_and_encoding() {
    let user: UserUri = "MIMI://A.Example/u/%61lice%2fx".parse().unwrap();
    assert_eq!(user.as_str(), "mimi://a.example/u/alice%2Fx");
    assert_eq!(user.local(), "alice/x");
    assert_eq!(user, "mimi://a.example/u/alice%2Fx".parse().unwrap());
    // Sub-delims are accepted raw and encoded on output.
    let room: RoomUri = "mimi://a.example/r/a+b=c!".parse().unwrap();
    assert_eq!(room.local(), "a+b=c!");
    assert_eq!(room.as_str(), "mimi://a.example/r/a%2Bb%3Dc%21");
    // Type letters are case-sensitive; local parts too.
    assert_ne!(
        "mimi://a.example/u/Alice".parse::<UserUri>().unwrap(),
        "mimi://a.example/u/alice".parse::<UserUri>().unwrap()
    );
}

#[test]
fn provider_forms() {
    let p: ProviderId = "mimi://A.EXAMPLE:8443".parse().unwrap();
    assert_eq!(p.as_str(), "mimi://a.example:8443");
    assert_eq!(p.domain(), "a.example");
    assert_eq!(p.port(), Some(8443));
    assert_eq!(p.authority(), "a.example:8443");
    assert_eq!(p, "a.example:8443".parse().unwrap());
    assert_eq!(p, ProviderId::new("a.example:8443").unwrap());
    assert_ne!(p, provider("a.example"));

    let bare: ProviderId = "a.example".parse().unwrap();
    assert_eq!(bare.as_str(), "mimi://a.example");
    assert_eq!(bare.port(), None);
    assert_eq!(bare.authority(), "a.example");
    assert_eq!(ProviderId::from_path_param("a.example"), Ok(bare.clone()));
    assert_eq!(
        ProviderId::from_path_param("mimi://a.example"),
        Ok(bare.clone())
    );

    let user: UserUri = "mimi://a.example:8443/u/alice".parse().unwrap();
    assert_eq!(user.provider(), &p);
    assert_eq!(user.as_str(), "mimi://a.example:8443/u/alice");

    for ok in [
        "localhost",
        "xn--bcher-kva.example",
        "127.0.0.1",
        "a-b.c-d.example",
        "local.invalid",
    ] {
        assert!(ProviderId::new(ok).is_ok(), "{ok}");
    }
    assert_eq!(
        "mimi://a.example/u/alice".parse::<ProviderId>(),
        Err(UriError::WrongKind {
            expected: UriKind::Provider,
            found: UriKind::User
        })
    );
}

#[test]
fn path_params() {
    let room: RoomUri = "mimi://a.example/r/clubhouse".parse().unwrap();
    assert_eq!(
        room.to_path_param(),
        "mimi%3A%2F%2Fa.example%2Fr%2Fclubhouse"
    );
    // Decoded forms, with and without the scheme.
    assert_eq!(
        RoomUri::from_path_param("mimi://a.example/r/clubhouse"),
        Ok(room.clone())
    );
    assert_eq!(
        RoomUri::from_path_param("a.example/r/clubhouse"),
        Ok(room.clone())
    );
    // protocol-06 §3.5 drops the `/r/`.
    assert_eq!(
        RoomUri::from_path_param("a.example/clubhouse"),
        Ok(room.clone())
    );
    assert_eq!(
        RoomUri::from_path_param("a.example/x/clubhouse"),
        Err(UriError::UnknownType("x".into()))
    );
    assert_eq!(
        RoomUri::from_path_param("a.example/u"),
        Err(UriError::WrongSegmentCount {
            kind: UriKind::User,
            found: 0
        })
    );
    assert_eq!(
        RoomUri::from_path_param("a.example/u/alice"),
        Err(UriError::WrongKind {
            expected: UriKind::Room,
            found: UriKind::User
        })
    );
    // Raw (encoded) forms.
    assert_eq!(
        RoomUri::from_encoded_path_param("a.example%2Fr%2Fclubhouse"),
        Ok(room.clone())
    );
    assert_eq!(
        RoomUri::from_encoded_path_param("mimi%3A%2F%2Fa.example%2Fr%2Fclubhouse"),
        Ok(room.clone())
    );
    assert_eq!(
        RoomUri::from_encoded_path_param("%FF"),
        Err(UriError::NotUtf8)
    );
    // A port in a scheme-less form is not taken for a scheme.
    let ported = UserUri::from_path_param("a.example:8443/u/alice").unwrap();
    assert_eq!(ported.as_str(), "mimi://a.example:8443/u/alice");
    // Encoded segments survive one extra level of encoding.
    let odd = UserUri::new(provider("a.example"), "a/b%2F c").unwrap();
    assert_eq!(odd.as_str(), "mimi://a.example/u/a%2Fb%252F%20c");
    assert_eq!(
        UserUri::from_encoded_path_param(&odd.to_path_param()),
        Ok(odd.clone())
    );
    let any: MimiUri = odd.clone().into();
    assert_eq!(MimiUri::from_path_param(odd.as_str()), Ok(any));
    let client: ClientUri = "mimi://a.example/d/alice/dev1".parse().unwrap();
    assert_eq!(
        ClientUri::from_path_param("a.example/d/alice/dev1"),
        Ok(client)
    );
    let team: TeamUri = "mimi://a.example/t/x".parse().unwrap();
    assert_eq!(TeamUri::from_path_param("a.example/t/x"), Ok(team));
}

#[test]
fn serde_uses_the_string_form() {
    let user: UserUri = "mimi://a.example/u/al%20ice".parse().unwrap();
    let json = serde_json::to_string(&user).unwrap();
    assert_eq!(json, r#""mimi://a.example/u/al%20ice""#);
    assert_eq!(serde_json::from_str::<UserUri>(&json).unwrap(), user);
    let any: MimiUri = serde_json::from_str(&json).unwrap();
    assert_eq!(any, MimiUri::User(user));
    assert!(serde_json::from_str::<UserUri>(r#""mimi://a.example/r/x""#).is_err());
    let err = serde_json::from_str::<RoomUri>(r#""https://a.example/r/x""#).unwrap_err();
    assert!(
        err.to_string().contains("unsupported scheme `https`"),
        "{err}"
    );
    let p: ProviderId = serde_json::from_str(r#""b.example""#).unwrap();
    assert_eq!(serde_json::to_string(&p).unwrap(), r#""mimi://b.example""#);
}

#[test]
fn conversions_and_traits() {
    let user: UserUri = "mimi://a.example/u/alice".parse().unwrap();
    let any = MimiUri::from(user.clone());
    assert_eq!(any.provider(), user.provider());
    assert_eq!(UserUri::try_from(any.clone()), Ok(user.clone()));
    assert_eq!(
        RoomUri::try_from(any.clone()),
        Err(UriError::WrongKind {
            expected: UriKind::Room,
            found: UriKind::User
        })
    );
    assert_eq!(
        UserUri::try_from("mimi://a.example/u/alice"),
        Ok(user.clone())
    );
    assert_eq!(String::from(user.clone()), "mimi://a.example/u/alice");
    assert_eq!(
        format!("{user:?}"),
        r#"UserUri("mimi://a.example/u/alice")"#
    );
    assert_eq!(
        format!("{any:?}"),
        r#"User(UserUri("mimi://a.example/u/alice"))"#
    );
    assert_eq!(format!("[{user:>28}]"), "[    mimi://a.example/u/alice]");
    let set: HashSet<UserUri> = [user.clone(), "mimi://A.example/u/alice".parse().unwrap()].into();
    assert_eq!(set.len(), 1);
    let mut v: Vec<UserUri> = [
        "mimi://b.example/u/a",
        "mimi://a.example/u/b",
        "mimi://a.example/u/a",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    v.sort();
    let sorted: Vec<&str> = v.iter().map(UserUri::as_str).collect();
    assert_eq!(
        sorted,
        [
            "mimi://a.example/u/a",
            "mimi://a.example/u/b",
            "mimi://b.example/u/a"
        ]
    );
    assert_eq!(user.as_bytes(), b"mimi://a.example/u/alice");
    assert_eq!(UserUri::from_bytes(b"mimi://a.example/u/alice"), Ok(user));
    for kind in UriKind::ALL {
        assert_eq!(kind.type_segment().and_then(UriKind::from_type_segment), {
            (kind != UriKind::Provider).then_some(kind)
        });
    }
}

// ---------------------------------------------------------------------------
// One test per error variant
// ---------------------------------------------------------------------------

#[test]
fn error_empty() {
    assert_eq!(err::<MimiUri>(""), UriError::Empty);
    assert_eq!(UserUri::from_bytes(b""), Err(UriError::Empty));
}

#[test]
fn error_missing_scheme() {
    for s in [
        "a.example/u/alice",
        "a.example:8443/u/alice",
        "mimi:a.example/u/alice",
        "//a.example",
    ] {
        let e = err::<UserUri>(s);
        assert_eq!(e, UriError::MissingScheme, "{s}");
        assert_eq!(e.to_string(), "missing scheme: expected `mimi://`");
    }
}

#[test]
fn error_unsupported_scheme() {
    let e = err::<UserUri>("https://a.example/u/alice");
    assert_eq!(e, UriError::UnsupportedScheme("https".into()));
    assert_eq!(
        e.to_string(),
        "unsupported scheme `https`: expected `mimi://`"
    );
}

#[test]
fn error_userinfo() {
    let e = err::<UserUri>("mimi://alice@a.example/u/alice");
    assert_eq!(e, UriError::UserinfoNotAllowed);
    assert!(e.to_string().starts_with("userinfo not allowed"));
}

#[test]
fn error_query_or_fragment() {
    for s in [
        "mimi://a.example/u/alice?x=1",
        "mimi://a.example/u/alice#frag",
        "mimi://a.example?x",
    ] {
        assert_eq!(err::<MimiUri>(s), UriError::QueryOrFragment, "{s}");
    }
    assert_eq!(
        UriError::QueryOrFragment.to_string(),
        "query or fragment not allowed in a MIMI URI"
    );
}

#[test]
fn error_empty_provider() {
    for s in ["mimi://", "mimi:///u/alice", "mimi://:443/u/alice"] {
        assert_eq!(err::<MimiUri>(s), UriError::EmptyProvider, "{s}");
    }
    assert!(
        UriError::EmptyProvider
            .to_string()
            .starts_with("empty provider")
    );
}

#[test]
fn error_invalid_domain() {
    let e = err::<UserUri>("mimi://a..b/u/alice");
    assert_eq!(
        e,
        UriError::InvalidDomain {
            domain: "a..b".into(),
            problem: DomainProblem::EmptyLabel
        }
    );
    assert_eq!(e.to_string(), "invalid provider domain `a..b`: empty label");

    let long_label = "a".repeat(64);
    let long_name = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(63),
    ]
    .join(".");
    let cases: Vec<(String, DomainProblem)> = vec![
        ("a.example.".into(), DomainProblem::EmptyLabel),
        (".a.example".into(), DomainProblem::EmptyLabel),
        (
            format!("{long_label}.example"),
            DomainProblem::LabelTooLong(long_label.clone()),
        ),
        (long_name.clone(), DomainProblem::TooLong(long_name.len())),
        ("a_b.example".into(), DomainProblem::InvalidCharacter('_')),
        (
            "bücher.example".into(),
            DomainProblem::InvalidCharacter('ü'),
        ),
        ("[::1]".into(), DomainProblem::InvalidCharacter('[')),
        ("a%2eexample".into(), DomainProblem::InvalidCharacter('%')),
        (
            "-a.example".into(),
            DomainProblem::HyphenAtLabelEdge("-a".into()),
        ),
        (
            "a-.example".into(),
            DomainProblem::HyphenAtLabelEdge("a-".into()),
        ),
    ];
    for (domain, problem) in cases {
        let s = format!("mimi://{domain}/u/alice");
        assert_eq!(
            err::<UserUri>(&s),
            UriError::InvalidDomain {
                domain: domain.clone(),
                problem
            },
            "{s}"
        );
    }
    let e = ProviderId::new("a b").unwrap_err();
    assert!(e.to_string().contains("invalid character ' '"), "{e}");
}

#[test]
fn error_invalid_port() {
    for port in ["", "abc", "0", "65536", "99999", "+443", "-1", "44 3"] {
        let s = format!("mimi://a.example:{port}/u/alice");
        assert_eq!(
            err::<UserUri>(&s),
            UriError::InvalidPort {
                authority: format!("a.example:{port}"),
                port: port.into()
            },
            "{s}"
        );
    }
    assert_eq!(
        err::<UserUri>("mimi://a.example:x/u/a").to_string(),
        "invalid port `x` in provider `a.example:x`: expected a number from 1 to 65535"
    );
}

#[test]
fn error_unknown_type() {
    // protocol-06 §3.2 has the typo `mimi://b.example/b/bob`.
    let e = err::<UserUri>("mimi://b.example/b/bob");
    assert_eq!(e, UriError::UnknownType("b".into()));
    assert_eq!(
        e.to_string(),
        "unknown identifier type `b` (expected u, d, r, g, p or t)"
    );
    for s in [
        "mimi://a.example/U/alice",
        "mimi://a.example/user/alice",
        "mimi://a.example/%75/alice",
    ] {
        assert!(matches!(err::<MimiUri>(s), UriError::UnknownType(_)), "{s}");
    }
}

#[test]
fn error_empty_segment() {
    let cases = [
        ("mimi://a.example/", 1),
        ("mimi://a.example//u/alice", 1),
        ("mimi://a.example/u/", 2),
        ("mimi://a.example/d/alice//x", 3),
        ("mimi://a.example/d/alice/", 3),
    ];
    for (s, position) in cases {
        assert_eq!(
            err::<MimiUri>(s),
            UriError::EmptySegment { position },
            "{s}"
        );
    }
    assert_eq!(
        err::<UserUri>("mimi://a.example/u/").to_string(),
        "empty path segment at position 2"
    );
}

#[test]
fn error_invalid_character() {
    let cases = [
        ("mimi://a.example/u/al ice", ' ', 2),
        ("mimi://a.example/u/josé", 'é', 2),
        ("mimi://a.example/d/x/a\"b", '"', 3),
        ("mimi://a.example/r/a[1]", '[', 2),
    ];
    for (s, ch, position) in cases {
        assert_eq!(
            err::<MimiUri>(s),
            UriError::InvalidCharacter { ch, position },
            "{s}"
        );
    }
}

#[test]
fn error_invalid_percent_encoding() {
    for raw in ["al%2", "al%", "%zz", "%g0", "a%%41"] {
        let s = format!("mimi://a.example/u/{raw}");
        let e = err::<UserUri>(&s);
        assert_eq!(
            e,
            UriError::InvalidPercentEncoding {
                segment: raw.into(),
                position: 2
            },
            "{s}"
        );
        assert!(
            e.to_string()
                .starts_with("invalid percent-encoding in segment"),
            "{e}"
        );
    }
}

#[test]
fn error_segment_not_utf8() {
    let e = err::<UserUri>("mimi://a.example/u/%FF");
    assert_eq!(e, UriError::SegmentNotUtf8 { position: 2 });
    assert_eq!(
        e.to_string(),
        "segment at position 2 is not UTF-8 once percent-decoded"
    );
    assert_eq!(
        err::<ClientUri>("mimi://a.example/d/ok/%C3"),
        UriError::SegmentNotUtf8 { position: 3 }
    );
}

#[test]
fn error_not_utf8() {
    assert_eq!(
        UserUri::from_bytes(b"mimi://a.example/u/\xff"),
        Err(UriError::NotUtf8)
    );
    assert_eq!(MimiUri::from_bytes(&[0xc3]), Err(UriError::NotUtf8));
    assert_eq!(UriError::NotUtf8.to_string(), "URI bytes are not UTF-8");
}

#[test]
fn error_wrong_segment_count() {
    let e = err::<UserUri>("mimi://a.example/u/a/b");
    assert_eq!(
        e,
        UriError::WrongSegmentCount {
            kind: UriKind::User,
            found: 2
        }
    );
    assert_eq!(
        e.to_string(),
        "a user URI has exactly one segment after /u/ (found 2)"
    );
    let cases = [
        ("mimi://a.example/u", UriKind::User, 0),
        ("mimi://a.example/d", UriKind::Client, 0),
        ("mimi://a.example/r/a/b", UriKind::Room, 2),
        ("mimi://a.example/g", UriKind::Group, 0),
        ("mimi://a.example/p/a/b/c", UriKind::Pseudonym, 3),
        ("mimi://a.example/t", UriKind::Team, 0),
    ];
    for (s, kind, found) in cases {
        assert_eq!(
            err::<MimiUri>(s),
            UriError::WrongSegmentCount { kind, found },
            "{s}"
        );
    }
    assert_eq!(
        err::<ClientUri>("mimi://a.example/d").to_string(),
        "a client URI has at least one segment after /d/ (found 0)"
    );
}

#[test]
fn error_wrong_kind() {
    let e = err::<UserUri>("mimi://a.example/r/clubhouse");
    assert_eq!(
        e,
        UriError::WrongKind {
            expected: UriKind::User,
            found: UriKind::Room
        }
    );
    assert_eq!(e.to_string(), "expected a user URI, got a room URI");
    assert_eq!(
        err::<ClientUri>("mimi://a.example").to_string(),
        "expected a client URI, got a provider URI"
    );
    assert!(matches!(
        err::<RoomUri>("mimi://a.example/g/x"),
        UriError::WrongKind { .. }
    ));
    assert!(matches!(
        err::<GroupUri>("mimi://a.example/r/x"),
        UriError::WrongKind { .. }
    ));
    assert!(matches!(
        err::<PseudonymUri>("mimi://a.example/u/x"),
        UriError::WrongKind { .. }
    ));
    assert!(matches!(
        err::<TeamUri>("mimi://a.example/p/x"),
        UriError::WrongKind { .. }
    ));
}

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

/// Non-empty strings rich in characters that need encoding.
fn local_part() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<char>(),
            1 => prop::sample::select(vec!['/', '%', ' ', '.', '?', '#', '@', ':', '~', '+']),
            1 => prop::char::range('a', 'z'),
        ],
        1..16,
    )
    .prop_map(String::from_iter)
}

fn provider_id() -> impl Strategy<Value = ProviderId> {
    (
        prop::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", 1..4),
        prop::option::of(1u16..=u16::MAX),
    )
        .prop_filter_map("valid provider", |(labels, port)| {
            let host = labels.join(".");
            let authority = match port {
                Some(port) => format!("{host}:{port}"),
                None => host,
            };
            ProviderId::new(&authority).ok()
        })
}

fn any_uri() -> impl Strategy<Value = MimiUri> {
    (
        provider_id(),
        prop::sample::select(UriKind::ALL.to_vec()),
        local_part(),
        prop::collection::vec(local_part(), 1..4),
    )
        .prop_map(|(provider, kind, local, segments)| {
            let built = match kind {
                UriKind::Provider => Ok(MimiUri::Provider(provider)),
                UriKind::User => UserUri::new(provider, &local).map(MimiUri::from),
                UriKind::Room => RoomUri::new(provider, &local).map(MimiUri::from),
                UriKind::Group => GroupUri::new(provider, &local).map(MimiUri::from),
                UriKind::Pseudonym => PseudonymUri::new(provider, &local).map(MimiUri::from),
                UriKind::Team => TeamUri::new(provider, &local).map(MimiUri::from),
                UriKind::Client => {
                    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
                    ClientUri::new(provider, &segs).map(MimiUri::from)
                }
            };
            built.expect("non-empty segments are always valid")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_arbitrary_strings_never_panic(s in any::<String>()) {
        let _ = s.parse::<MimiUri>();
        let _ = s.parse::<ProviderId>();
        let _ = s.parse::<UserUri>();
        let _ = s.parse::<ClientUri>();
        let _ = RoomUri::from_path_param(&s);
        let _ = RoomUri::from_encoded_path_param(&s);
        let _ = MimiUri::from_path_param(&s);
        let _ = ProviderId::new(&s);
    }

    #[test]
    fn prop_uri_like_strings_never_panic_and_reparse(
        s in "(?i:mimi|https|x)?:?/{0,3}[a-zA-Z0-9.:@%/?#_~ -]{0,40}(/[udrgpt]/[%a-fA-F0-9/é -]{0,12})?"
    ) {
        if let Ok(uri) = s.parse::<MimiUri>() {
            // Whatever parses is stable under its canonical form.
            prop_assert_eq!(uri.as_str().parse::<MimiUri>(), Ok(uri.clone()));
        }
        let _ = RoomUri::from_path_param(&s);
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = MimiUri::from_bytes(&bytes);
        let _ = ClientUri::from_bytes(&bytes);
    }

    #[test]
    fn prop_local_parts_round_trip(provider in provider_id(), local in local_part()) {
        let user = UserUri::new(provider.clone(), &local).unwrap();
        prop_assert_eq!(user.local(), local.as_str());
        let reparsed: UserUri = user.to_string().parse().unwrap();
        prop_assert_eq!(&reparsed, &user);
        prop_assert_eq!(reparsed.as_str(), user.as_str());
        prop_assert_eq!(UserUri::from_bytes(&user.to_bytes()).unwrap(), user.clone());
        // Only unreserved characters and `%XX` escapes follow the type segment.
        let path = user.as_str().strip_prefix(provider.as_str()).unwrap();
        let only_unreserved = path
            .strip_prefix("/u/")
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~%".contains(c));
        prop_assert!(only_unreserved);
        let any: MimiUri = user.as_str().parse().unwrap();
        prop_assert_eq!(any, MimiUri::User(user));

        let room = RoomUri::new(provider.clone(), &local).unwrap();
        prop_assert_eq!(room.as_str().parse::<RoomUri>().unwrap(), room);
        let team = TeamUri::new(provider, &local).unwrap();
        prop_assert_eq!(team.as_str().parse::<TeamUri>().unwrap(), team);
    }

    #[test]
    fn prop_client_segments_round_trip(
        provider in provider_id(),
        segments in prop::collection::vec(local_part(), 1..5),
    ) {
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let client = ClientUri::new(provider, &segs).unwrap();
        prop_assert_eq!(client.segments(), segments.as_slice());
        prop_assert_eq!(client.as_str().parse::<ClientUri>().unwrap(), client.clone());
        prop_assert_eq!(client.user_hint().is_some(), segments.len() == 2);
    }

    #[test]
    fn prop_any_uri_round_trips(uri in any_uri()) {
        prop_assert_eq!(uri.to_string().parse::<MimiUri>().unwrap(), uri.clone());
        let json = serde_json::to_string(&uri).unwrap();
        prop_assert_eq!(serde_json::from_str::<MimiUri>(&json).unwrap(), uri);
    }

    #[test]
    fn prop_path_param_round_trips(uri in any_uri()) {
        let param = uri.to_path_param();
        prop_assert!(!param.contains('/'));
        prop_assert!(param.chars().all(|c| c.is_ascii_alphanumeric() || "-._~%".contains(c)));
        prop_assert_eq!(MimiUri::from_encoded_path_param(&param).unwrap(), uri.clone());
        let decoded = percent_decode_str(&param).decode_utf8().unwrap();
        prop_assert_eq!(decoded.as_ref(), uri.as_str());
        prop_assert_eq!(MimiUri::from_path_param(&decoded).unwrap(), uri.clone());
        let without_scheme = decoded.strip_prefix(PREFIX).unwrap();
        prop_assert_eq!(MimiUri::from_path_param(without_scheme).unwrap(), uri.clone());
        if let MimiUri::Room(room) = &uri {
            prop_assert_eq!(RoomUri::from_path_param(without_scheme).unwrap(), room.clone());
            prop_assert_eq!(RoomUri::from_encoded_path_param(&room.to_path_param()).unwrap(), room.clone());
        }
    }
}
