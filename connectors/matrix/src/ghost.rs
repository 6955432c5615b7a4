//! Ghosts: the Matrix users that stand for remote MIMI users.
//!
//! The localpart is derived reversibly from the MIMI user URI, so the mapping needs no table:
//! `mimi://b.example/u/bob` ↔ `@mimi_b.example_bob:<server>`. Both parts are escaped so the
//! result is a valid (historical-grammar) Matrix localpart and `_` separates them
//! unambiguously: bytes outside `[a-z0-9.-]` become `=` and two lowercase hex digits (so
//! `Bob` is `=42ob`, `_` is `=5f`), as mautrix bridges do.

/// Why a Matrix id is not a ghost of this bridge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GhostError {
    #[error("`{0}` is not a MIMI user URI (mimi://<provider>/u/<name>)")]
    NotAUserUri(String),
    #[error("`{0}` is not a ghost of this bridge")]
    NotAGhost(String),
}

fn escape(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' => out.push(b as char),
            _ => out.push_str(&format!("={b:02x}")),
        }
    }
}

fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' => {
                let hex = s.get(i + 1..i + 3)?;
                if hex.bytes().any(|c| c.is_ascii_uppercase()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b @ (b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-') => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// The ghost naming of one bridge: `@<prefix><provider>_<name>:<server>`.
#[derive(Clone, Debug)]
pub struct GhostNames {
    prefix: String,
    server_name: String,
}

impl GhostNames {
    pub fn new(prefix: &str, server_name: &str) -> GhostNames {
        GhostNames {
            prefix: prefix.to_owned(),
            server_name: server_name.to_owned(),
        }
    }

    /// The ghost's full Matrix user id.
    pub fn user_id(&self, mimi_user: &str) -> Result<String, GhostError> {
        let rest = mimi_user
            .strip_prefix("mimi://")
            .ok_or_else(|| GhostError::NotAUserUri(mimi_user.to_owned()))?;
        let (provider, name) = rest
            .split_once("/u/")
            .filter(|(p, n)| !p.is_empty() && !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| GhostError::NotAUserUri(mimi_user.to_owned()))?;
        let mut localpart = self.prefix.clone();
        escape(provider, &mut localpart);
        localpart.push('_');
        escape(name, &mut localpart);
        Ok(format!("@{localpart}:{}", self.server_name))
    }

    /// The MIMI user a ghost's Matrix user id stands for.
    pub fn mimi_user(&self, user_id: &str) -> Result<String, GhostError> {
        let not = || GhostError::NotAGhost(user_id.to_owned());
        let localpart = user_id
            .strip_prefix('@')
            .and_then(|u| u.strip_suffix(&format!(":{}", self.server_name)))
            .and_then(|l| l.strip_prefix(&self.prefix))
            .ok_or_else(not)?;
        let (provider, name) = localpart.split_once('_').ok_or_else(not)?;
        let (provider, name) = (
            unescape(provider).ok_or_else(not)?,
            unescape(name).ok_or_else(not)?,
        );
        if provider.is_empty() || name.is_empty() {
            return Err(not());
        }
        Ok(format!("mimi://{provider}/u/{name}"))
    }

    /// Whether a Matrix user id is in this bridge's ghost namespace.
    pub fn is_ghost(&self, user_id: &str) -> bool {
        user_id
            .strip_prefix('@')
            .is_some_and(|l| l.starts_with(&self.prefix))
    }

    /// The regex of the ghost namespace, for the registration.
    pub fn namespace_regex(&self, sigil: char) -> String {
        format!(
            "{}{}.*:{}",
            regex_escape(&sigil.to_string()),
            regex_escape(&self.prefix),
            regex_escape(&self.server_name)
        )
    }

    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> GhostNames {
        GhostNames::new("mimi_", "localhost")
    }

    #[test]
    fn ghosts_map_both_ways() {
        let cases = [
            ("mimi://b.example/u/bob", "@mimi_b.example_bob:localhost"),
            (
                "mimi://b.example/u/Bob_2",
                "@mimi_b.example_=42ob=5f2:localhost",
            ),
            (
                "mimi://b.example:8443/u/%40carol%3Ahs",
                "@mimi_b.example=3a8443_=2540carol=253=41hs:localhost",
            ),
        ];
        for (uri, mxid) in cases {
            assert_eq!(names().user_id(uri).unwrap(), mxid);
            assert_eq!(names().mimi_user(mxid).unwrap(), uri);
            assert!(names().is_ghost(mxid));
        }
    }

    #[test]
    fn what_is_not_a_ghost_is_refused() {
        for mxid in [
            "@alice:localhost",
            "@mimi_b.example_bob:other",
            "@mimi_noseparator:localhost",
            "@mimi_b.example_=4:localhost",
            "@mimi_b.example_=4A:localhost",
            "@mimi_B.example_bob:localhost",
            "@mimi__bob:localhost",
        ] {
            assert!(names().mimi_user(mxid).is_err(), "{mxid}");
        }
        for uri in [
            "https://b/u/x",
            "mimi://b.example/r/room",
            "mimi://b.example/u/",
        ] {
            assert!(names().user_id(uri).is_err(), "{uri}");
        }
        assert_eq!(names().namespace_regex('@'), "@mimi_.*:localhost");
    }
}
