//! A forgiving HTML tokenizer for [`html_to_markdown`](super::html_to_markdown): tags with their
//! kept attributes, text with entities decoded, comments and `<script>`/`<style>` contents
//! skipped.

use std::borrow::Cow;

type Attrs = Vec<(String, String)>;

/// Attributes the converter reads; others are not kept.
const KEPT_ATTRS: &[&str] = &[
    "href", "src", "alt", "title", "class", "start", "style", "align", "type", "checked",
];

pub(super) enum Token<'a> {
    Start {
        name: String,
        attrs: Attrs,
        self_closing: bool,
    },
    End {
        name: String,
    },
    Text(Cow<'a, str>),
}

enum Markup<'a> {
    Token(Token<'a>, usize),
    Skip(usize),
    Text,
}

/// A forgiving HTML tokenizer: tags with attributes (quoted or not), comments, entities, and
/// `<script>`/`<style>` contents skipped. What cannot be a tag is text.
pub(super) struct Tokenizer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Tokenizer<'a> {
    pub(super) fn new(src: &'a str) -> Self {
        Tokenizer { src, pos: 0 }
    }
}

impl<'a> Iterator for Tokenizer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        while self.pos < self.src.len() {
            let rest = &self.src[self.pos..];
            if rest.starts_with('<') {
                match markup(rest) {
                    Markup::Token(token, len) => {
                        self.pos += len;
                        return Some(token);
                    }
                    Markup::Skip(len) => {
                        self.pos += len;
                        continue;
                    }
                    Markup::Text => {}
                }
            }
            let first = rest.chars().next().map_or(1, char::len_utf8);
            let end = rest[first..].find('<').map_or(rest.len(), |i| i + first);
            self.pos += end;
            return Some(Token::Text(decode_entities(&rest[..end])));
        }
        None
    }
}

fn skip_past(rest: &str, from: usize, needle: &str) -> usize {
    rest[from..]
        .find(needle)
        .map_or(rest.len(), |i| from + i + needle.len())
}

fn name_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|&&b| !(b.is_ascii_whitespace() || b == b'/' || b == b'>'))
        .count()
}

/// Parses the markup at the start of `rest` (which starts with `<`).
fn markup(rest: &str) -> Markup<'_> {
    let b = rest.as_bytes();
    match b.get(1) {
        Some(b'!') if rest.starts_with("<!--") => {
            if rest[4..].starts_with('>') {
                Markup::Skip(5)
            } else if rest[4..].starts_with("->") {
                Markup::Skip(6)
            } else {
                Markup::Skip(skip_past(rest, 4, "-->"))
            }
        }
        Some(b'!' | b'?') => Markup::Skip(skip_past(rest, 1, ">")),
        Some(b'/') => match b.get(2) {
            Some(c) if c.is_ascii_alphabetic() => {
                let name_end = 2 + name_len(&b[2..]);
                let name = rest[2..name_end].to_ascii_lowercase();
                match rest[name_end..].find('>') {
                    Some(i) => Markup::Token(Token::End { name }, name_end + i + 1),
                    None => Markup::Skip(rest.len()),
                }
            }
            _ => Markup::Skip(skip_past(rest, 2, ">")),
        },
        Some(c) if c.is_ascii_alphabetic() => start_tag(rest),
        _ => Markup::Text,
    }
}

fn start_tag(rest: &str) -> Markup<'_> {
    let b = rest.as_bytes();
    let skip_ws = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let name_end = 1 + name_len(&b[1..]);
    let name = rest[1..name_end].to_ascii_lowercase();
    let mut attrs: Attrs = Vec::new();
    let mut self_closing = false;
    let mut i = name_end;
    loop {
        i = skip_ws(i);
        match b.get(i) {
            None => return Markup::Skip(rest.len()),
            Some(b'>') => {
                i += 1;
                break;
            }
            Some(b'/') => {
                if b.get(i + 1) == Some(&b'>') {
                    self_closing = true;
                    i += 2;
                    break;
                }
                i += 1;
                continue;
            }
            _ => {}
        }
        let start = i;
        if b[i] == b'=' {
            i += 1;
        }
        while b
            .get(i)
            .is_some_and(|&c| !(c.is_ascii_whitespace() || matches!(c, b'/' | b'>' | b'=')))
        {
            i += 1;
        }
        let attr_name = rest[start..i].to_ascii_lowercase();
        i = skip_ws(i);
        let mut value = Cow::Borrowed("");
        if b.get(i) == Some(&b'=') {
            i = skip_ws(i + 1);
            match b.get(i) {
                Some(&quote @ (b'"' | b'\'')) => {
                    let from = i + 1;
                    let Some(len) = rest[from..].find(char::from(quote)) else {
                        return Markup::Skip(rest.len());
                    };
                    value = decode_entities(&rest[from..from + len]);
                    i = from + len + 1;
                }
                _ => {
                    let from = i;
                    while b
                        .get(i)
                        .is_some_and(|&c| !c.is_ascii_whitespace() && c != b'>')
                    {
                        i += 1;
                    }
                    value = decode_entities(&rest[from..i]);
                }
            }
        }
        if KEPT_ATTRS.contains(&attr_name.as_str()) && !attrs.iter().any(|(n, _)| *n == attr_name) {
            attrs.push((attr_name, value.into_owned()));
        }
    }
    if !self_closing && matches!(name.as_str(), "script" | "style") {
        let close = format!("</{name}");
        let end = find_ignore_case(&rest[i..], &close)
            .map_or(rest.len(), |at| skip_past(rest, i + at, ">"));
        return Markup::Skip(end);
    }
    Markup::Token(
        Token::Start {
            name,
            attrs,
            self_closing,
        },
        i,
    )
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Decodes character references: named (common ones), `&#NN;` and `&#xNN;`.
fn decode_entities(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        match parse_entity(rest) {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => out.push('&'),
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Parses a character reference after its `&`: the character and the bytes it used.
fn parse_entity(s: &str) -> Option<(char, usize)> {
    let b = s.as_bytes();
    if b.first() == Some(&b'#') {
        let (radix, start) = match b.get(1) {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let digits = b[start..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || (radix == 16 && c.is_ascii_hexdigit()))
            .count();
        if digits == 0 {
            return None;
        }
        let value = u32::from_str_radix(&s[start..start + digits], radix).unwrap_or(u32::MAX);
        let c = if value == 0 {
            None
        } else {
            char::from_u32(value)
        };
        let mut len = start + digits;
        if b.get(len) == Some(&b';') {
            len += 1;
        }
        return Some((c.unwrap_or('\u{FFFD}'), len));
    }
    let n = b
        .iter()
        .take(32)
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    let name = &s[..n];
    if b.get(n) == Some(&b';') {
        return named_entity(name).map(|c| (c, n + 1));
    }
    // Legacy references written without their semicolon.
    matches!(name, "amp" | "lt" | "gt" | "quot").then(|| named_entity(name).map(|c| (c, n)))?
}

fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "shy" => '\u{ad}',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "bull" => '•',
        "middot" => '·',
        "deg" => '°',
        "times" => '×',
        "divide" => '÷',
        "minus" => '−',
        "plusmn" => '±',
        "le" => '≤',
        "ge" => '≥',
        "ne" => '≠',
        "larr" => '←',
        "rarr" => '→',
        "uarr" => '↑',
        "darr" => '↓',
        "harr" => '↔',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "sect" => '§',
        "para" => '¶',
        "frac12" => '½',
        "frac14" => '¼',
        "frac34" => '¾',
        "iexcl" => '¡',
        "iquest" => '¿',
        "hearts" => '♥',
        "ensp" => '\u{2002}',
        "emsp" => '\u{2003}',
        "thinsp" => '\u{2009}',
        "zwnj" => '\u{200c}',
        "zwj" => '\u{200d}',
        _ => return None,
    })
}
