//! The URI syntax shared by every identifier type: splitting and parsing a `mimi://` URI,
//! decoding and checking path segments, building the canonical form and handling HTTP path
//! parameters.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::{MimiUri, PREFIX, ProviderId, SCHEME, UriError, UriKind};

/// Every byte except the RFC 3986 unreserved characters.
pub(super) const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 §3.1).
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Whether `s` starts with `<scheme>://`.
fn has_scheme(s: &str) -> bool {
    s.split_once(':')
        .is_some_and(|(scheme, rest)| is_scheme(scheme) && rest.starts_with("//"))
}

/// RFC 3986 `pchar` minus `pct-encoded`, for ASCII characters.
fn is_raw_pchar(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.' | '_' | '~' // unreserved
            | '!' | '$' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | ';' | '=' // sub-delims
            | ':' | '@'
        )
}

/// Splits `mimi://authority[/path]` into the provider and the path after the
/// first `/` (`None` when there is no path at all).
pub(super) fn split_uri(s: &str) -> Result<(ProviderId, Option<&str>), UriError> {
    if s.is_empty() {
        return Err(UriError::Empty);
    }
    let Some((scheme, after)) = s.split_once(':') else {
        return Err(UriError::MissingScheme);
    };
    let Some(rest) = after.strip_prefix("//").filter(|_| is_scheme(scheme)) else {
        return Err(UriError::MissingScheme);
    };
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(UriError::UnsupportedScheme(scheme.to_owned()));
    }
    if rest.contains(['?', '#']) {
        return Err(UriError::QueryOrFragment);
    }
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (rest, None),
    };
    Ok((ProviderId::parse_authority(authority)?, path))
}

/// Parses a whole MIMI URI.
pub(super) fn parse_uri(s: &str) -> Result<MimiUri, UriError> {
    let (provider, path) = split_uri(s)?;
    let Some(path) = path else {
        return Ok(MimiUri::Provider(provider));
    };
    let mut raw = path.split('/');
    let type_segment = raw.next().unwrap_or_default();
    if type_segment.is_empty() {
        return Err(UriError::EmptySegment { position: 1 });
    }
    let kind = UriKind::from_type_segment(type_segment)
        .ok_or_else(|| UriError::UnknownType(type_segment.to_owned()))?;
    let segments = raw
        .enumerate()
        .map(|(i, segment)| decode_segment(segment, i + 2))
        .collect::<Result<Vec<_>, _>>()?;
    MimiUri::from_parts(provider, kind, segments)
}

/// Percent-decodes one path segment, validating it strictly.
pub(super) fn decode_segment(raw: &str, position: usize) -> Result<String, UriError> {
    if raw.is_empty() {
        return Err(UriError::EmptySegment { position });
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let hi = chars.next().and_then(|c| c.to_digit(16));
            let lo = chars.next().and_then(|c| c.to_digit(16));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(UriError::InvalidPercentEncoding {
                    segment: raw.to_owned(),
                    position,
                });
            };
            out.extend(u8::try_from(hi * 16 + lo).ok());
        } else if is_raw_pchar(c) {
            out.extend(u8::try_from(c).ok());
        } else {
            return Err(UriError::InvalidCharacter { ch: c, position });
        }
    }
    String::from_utf8(out).map_err(|_| UriError::SegmentNotUtf8 { position })
}

/// Checks that every segment is non-empty (positions start after the type).
pub(super) fn check_segments<S: AsRef<str>>(segments: &[S]) -> Result<(), UriError> {
    match segments.iter().position(|s| s.as_ref().is_empty()) {
        Some(i) => Err(UriError::EmptySegment { position: i + 2 }),
        None => Ok(()),
    }
}

/// Builds the canonical string of a typed URI.
pub(super) fn canonical<S: AsRef<str>>(
    provider: &ProviderId,
    kind: UriKind,
    segments: &[S],
) -> String {
    let mut uri = provider.as_str().to_owned();
    if let Some(letter) = kind.type_segment() {
        uri.push('/');
        uri.push_str(letter);
    }
    for segment in segments {
        uri.push('/');
        uri.extend(utf8_percent_encode(segment.as_ref(), NOT_UNRESERVED));
    }
    uri
}

/// Adds `mimi://` to a decoded path parameter that lacks a scheme.
pub(super) fn with_scheme(decoded: &str) -> Cow<'_, str> {
    if has_scheme(decoded) {
        Cow::Borrowed(decoded)
    } else {
        Cow::Owned(format!("{PREFIX}{decoded}"))
    }
}

/// Percent-decodes a raw path parameter.
pub(super) fn decode_path_param(raw: &str) -> Result<Cow<'_, str>, UriError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| UriError::NotUtf8)
}
