//! URL scheme checks and markdown escaping: backslash-escaping text so that it stays literal,
//! and writing link destinations and titles.

use std::fmt::Write as _;

fn scheme(url: &str) -> Option<&str> {
    let scheme = &url[..url.find(':')?];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// Whether `url` is absolute with one of the `allowed` schemes (so never `javascript:`).
pub(super) fn has_scheme(url: &str, allowed: &[&str]) -> bool {
    scheme(url).is_some_and(|s| allowed.iter().any(|a| a.eq_ignore_ascii_case(s)))
}

/// Whether the text after a `&` would be read as an entity reference by a markdown parser.
fn entity_like(after_amp: &str) -> bool {
    let s = after_amp.strip_prefix('#').unwrap_or(after_amp);
    let n = s.bytes().take_while(u8::is_ascii_alphanumeric).count();
    n > 0 && s.as_bytes().get(n) == Some(&b';')
}

/// Byte position of the character to backslash-escape so that `text` (a word), placed at the
/// start of a line, does not start a block (heading, quote, list item, setext underline, table
/// delimiter row).
pub(super) fn line_start_escape(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    match bytes.first()? {
        b'#' | b'>' | b'-' | b'+' | b'=' => Some(0),
        b'|' | b':' if bytes.iter().all(|b| matches!(b, b'|' | b':' | b'-')) => Some(0),
        b'0'..=b'9' => {
            let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            matches!(bytes.get(digits), Some(b'.' | b')')).then_some(digits)
        }
        _ => None,
    }
}

#[derive(Clone, Copy)]
pub(super) struct EscapeCtx {
    /// The character written just before the text, if any.
    pub(super) prev: Option<char>,
    pub(super) line_start: bool,
    /// Inside a table cell: escape `|`.
    pub(super) pipe: bool,
    /// Inside a heading: escape `#`.
    pub(super) hash: bool,
}

/// Appends `text` to `out`, backslash-escaping what markdown would read as syntax.
pub(super) fn escape_into(out: &mut String, text: &str, ctx: EscapeCtx) {
    let forced = if ctx.line_start {
        line_start_escape(text)
    } else {
        None
    };
    let mut prev = ctx.prev;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let escape = forced == Some(i)
            || match c {
                '\\' | '*' | '`' | '[' | ']' | '<' | '~' => true,
                '|' => ctx.pipe,
                '#' => ctx.hash,
                // `_` inside a word never delimits emphasis.
                '_' => {
                    !(prev.is_some_and(char::is_alphanumeric)
                        && next.is_some_and(char::is_alphanumeric))
                }
                '&' => entity_like(&text[i + 1..]),
                _ => false,
            };
        if escape {
            out.push('\\');
        }
        out.push(c);
        prev = Some(c);
    }
}

/// Appends a link destination, in `<…>` form when it has spaces, parentheses or angle brackets.
pub(super) fn push_destination(out: &mut String, url: &str) {
    let pointy = url.is_empty()
        || url
            .chars()
            .any(|c| matches!(c, ' ' | '(' | ')' | '<' | '>') || c.is_control());
    if pointy {
        out.push('<');
    }
    for (i, c) in url.char_indices() {
        if c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
            continue;
        }
        if c == '\\'
            || (pointy && matches!(c, '<' | '>'))
            || (c == '&' && entity_like(&url[i + 1..]))
        {
            out.push('\\');
        }
        out.push(c);
    }
    if pointy {
        out.push('>');
    }
}

pub(super) fn push_title(out: &mut String, title: &str) {
    out.push_str(" \"");
    for c in title.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
}

pub(super) fn longest_run(text: &str, wanted: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == wanted { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

pub(super) fn is_html_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0C')
}
