//! Conversion between Matrix `formatted_body` HTML (`org.matrix.custom.html`) and MIMI's
//! GFM-MIMI markdown (`text/markdown;variant=GFM-MIMI`, GitHub-flavoured markdown).
//!
//! * [`markdown_to_html`] renders GFM (strikethrough, tables, task lists) with pulldown-cmark.
//!   Raw HTML in the markdown is shown as text, never passed through, so a MIMI peer cannot
//!   inject markup; links keep only the schemes Matrix allows, and images that are not `mxc://`
//!   become links (Matrix clients only fetch `mxc://` images).
//! * [`html_to_markdown`] is a small converter over a forgiving hand-written tokenizer: it keeps
//!   an explicit stack (no recursion, nesting capped), drops unknown tags but keeps their text,
//!   removes `<mx-reply>` reply fallbacks and `<script>`/`<style>` contents, and backslash-escapes
//!   markdown syntax in text so that literal text stays literal.
//! * [`strip_plain_reply_fallback`] removes the reply fallback from a plain `body`.
//!
//! Line breaks follow chat usage on both sides: a single newline in the markdown is a line break
//! (`<br />`), and a `<br>` becomes a single newline. Two or more `<br>` in a row become a
//! paragraph break.

use std::borrow::Cow;
use std::fmt::Write as _;

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd, html};

/// Schemes Matrix allows in `<a href>` (client-server spec, "m.room.message msgtypes").
const LINK_SCHEMES: &[&str] = &["https", "http", "ftp", "mailto", "magnet"];
/// Schemes kept for `<img src>` when converting to markdown.
const IMAGE_SCHEMES: &[&str] = &["mxc", "https", "http"];
/// Most open HTML elements tracked; deeper start tags are ignored (their text is kept).
const MAX_DEPTH: usize = 1000;
/// Most nested blockquotes and list items; deeper ones are flattened into paragraphs.
const MAX_FRAMES: usize = 64;

/// Markdown (GFM) → (plain-text body, HTML formatted_body) for a Matrix m.room.message.
/// The plain body is the markdown source itself (what Matrix clients without HTML show).
///
/// This returns the `formatted_body`; the caller uses `markdown` itself as `body`.
pub fn markdown_to_html(markdown: &str) -> String {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Kept {
        Dropped,
        Link,
        Image,
        ImageAsLink,
    }

    let options =
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS;
    let mut events: Vec<Event<'_>> = Vec::new();
    let mut html_block: Option<String> = None;
    let mut kept: Vec<Kept> = Vec::new();
    let mut open_links = 0usize;
    // Whether each open container is a list item (an HTML block directly in one is not wrapped
    // in a paragraph, as the text of a tight item is not).
    let mut in_item: Vec<bool> = Vec::new();
    for event in Parser::new_ext(markdown, options) {
        match &event {
            Event::Start(Tag::Item) => in_item.push(true),
            Event::Start(Tag::BlockQuote(_) | Tag::List(_)) => in_item.push(false),
            Event::End(TagEnd::Item | TagEnd::BlockQuote(_) | TagEnd::List(_)) => {
                in_item.pop();
            }
            _ => {}
        }
        match event {
            Event::Start(Tag::HtmlBlock) => html_block = Some(String::new()),
            Event::End(TagEnd::HtmlBlock) => {
                let raw = html_block.take().unwrap_or_default();
                let wrap = !in_item.last().copied().unwrap_or(false);
                if wrap {
                    events.push(Event::Start(Tag::Paragraph));
                }
                for (i, line) in raw.trim_end_matches(['\n', '\r']).split('\n').enumerate() {
                    if i > 0 {
                        events.push(Event::HardBreak);
                    }
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    if !line.is_empty() {
                        events.push(Event::Text(CowStr::from(line.to_owned())));
                    }
                }
                if wrap {
                    events.push(Event::End(TagEnd::Paragraph));
                }
            }
            // Raw HTML never passes through: it becomes (escaped) text.
            Event::Html(raw) | Event::InlineHtml(raw) => match html_block.as_mut() {
                Some(block) => block.push_str(&raw),
                None => events.push(Event::Text(raw)),
            },
            Event::SoftBreak => events.push(Event::HardBreak),
            // Matrix does not allow <input>: task markers stay visible as text.
            Event::TaskListMarker(checked) => {
                events.push(Event::Text(CowStr::Borrowed(if checked {
                    "[x] "
                } else {
                    "[ ] "
                })));
            }
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                if link_type == LinkType::Email || has_scheme(&dest_url, LINK_SCHEMES) {
                    kept.push(Kept::Link);
                    open_links += 1;
                    events.push(Event::Start(Tag::Link {
                        link_type,
                        dest_url,
                        title,
                        id,
                    }));
                } else {
                    kept.push(Kept::Dropped);
                }
            }
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                if has_scheme(&dest_url, &["mxc"]) {
                    kept.push(Kept::Image);
                    events.push(Event::Start(Tag::Image {
                        link_type,
                        dest_url,
                        title,
                        id,
                    }));
                } else if open_links == 0 && has_scheme(&dest_url, LINK_SCHEMES) {
                    kept.push(Kept::ImageAsLink);
                    open_links += 1;
                    let link_type = LinkType::Inline;
                    events.push(Event::Start(Tag::Link {
                        link_type,
                        dest_url,
                        title,
                        id,
                    }));
                } else {
                    kept.push(Kept::Dropped);
                }
            }
            Event::End(TagEnd::Link | TagEnd::Image) => match kept.pop() {
                Some(Kept::Link | Kept::ImageAsLink) => {
                    open_links -= 1;
                    events.push(Event::End(TagEnd::Link));
                }
                Some(Kept::Image) => events.push(Event::End(TagEnd::Image)),
                Some(Kept::Dropped) | None => {}
            },
            other => events.push(other),
        }
    }
    let mut out = String::with_capacity(markdown.len() * 2);
    html::push_html(&mut out, events.into_iter());
    let end = out.trim_end().len();
    out.truncate(end);
    out
}

/// Matrix HTML → GFM markdown. Unknown tags are dropped keeping their text; `<mx-reply>` blocks (reply fallbacks) are removed entirely.
pub fn html_to_markdown(html: &str) -> String {
    Converter::new().run(html)
}

/// Removes the Matrix reply fallback from a plain body: leading lines starting with "> " followed by one empty line.
///
/// A line that is exactly `>` also counts as quoted. The body comes back unchanged when it does
/// not start with such a fallback. Call it only for events that are replies (`m.in_reply_to`).
pub fn strip_plain_reply_fallback(body: &str) -> &str {
    let mut rest = body;
    let mut quoted = 0usize;
    while let Some(end) = rest.find('\n') {
        let line = &rest[..end];
        let line = line.strip_suffix('\r').unwrap_or(line);
        let next = &rest[end + 1..];
        if line.starts_with("> ") || line == ">" {
            quoted += 1;
            rest = next;
        } else if quoted > 0 && line.is_empty() {
            return next;
        } else {
            break;
        }
    }
    body
}

// ---------------------------------------------------------------------------------------------
// URLs and escaping

fn scheme(url: &str) -> Option<&str> {
    let scheme = &url[..url.find(':')?];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// Whether `url` is absolute with one of the `allowed` schemes (so never `javascript:`).
fn has_scheme(url: &str, allowed: &[&str]) -> bool {
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
fn line_start_escape(text: &str) -> Option<usize> {
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
struct EscapeCtx {
    /// The character written just before the text, if any.
    prev: Option<char>,
    line_start: bool,
    /// Inside a table cell: escape `|`.
    pipe: bool,
    /// Inside a heading: escape `#`.
    hash: bool,
}

/// Appends `text` to `out`, backslash-escaping what markdown would read as syntax.
fn escape_into(out: &mut String, text: &str, ctx: EscapeCtx) {
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
fn push_destination(out: &mut String, url: &str) {
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

fn push_title(out: &mut String, title: &str) {
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

fn longest_run(text: &str, wanted: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == wanted { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

fn is_html_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0C')
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

type Attrs = Vec<(String, String)>;

/// Attributes the converter reads; others are not kept.
const KEPT_ATTRS: &[&str] = &[
    "href", "src", "alt", "title", "class", "start", "style", "align", "type", "checked",
];

enum Token<'a> {
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
struct Tokenizer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Tokenizer<'a> {
    fn new(src: &'a str) -> Self {
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

// ---------------------------------------------------------------------------------------------
// HTML → markdown converter

/// Elements the converter understands; the rest are dropped (their text is kept).
#[derive(Clone, Copy, PartialEq, Eq)]
enum El {
    Strong,
    Em,
    Strike,
    Code,
    Pre,
    A,
    P,
    Div,
    Heading,
    Blockquote,
    Ul,
    Ol,
    Li,
    Table,
    Section,
    Tr,
    Cell,
    Caption,
}

const EL_COUNT: usize = El::Caption as usize + 1;

impl El {
    fn index(self) -> usize {
        self as usize
    }
}

fn classify(name: &str) -> Option<El> {
    Some(match name {
        "b" | "strong" => El::Strong,
        "i" | "em" => El::Em,
        "del" | "s" | "strike" => El::Strike,
        "code" => El::Code,
        "pre" => El::Pre,
        "a" => El::A,
        "p" => El::P,
        "div" | "details" | "summary" | "center" | "section" | "article" | "header" | "footer"
        | "main" | "aside" | "nav" | "figure" | "figcaption" | "address" | "dl" | "dt" | "dd" => {
            El::Div
        }
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => El::Heading,
        "blockquote" => El::Blockquote,
        "ul" => El::Ul,
        "ol" => El::Ol,
        "li" => El::Li,
        "table" => El::Table,
        "thead" | "tbody" | "tfoot" => El::Section,
        "tr" => El::Tr,
        "td" | "th" => El::Cell,
        "caption" => El::Caption,
        _ => return None,
    })
}

/// What closing an open element has to do.
enum Action {
    None,
    Space,
    /// An inline marker: its place in `markers` while pending, the flush generation it was
    /// (re)opened in, and its opening and closing markdown.
    Marker {
        pos: usize,
        generation: u64,
        open: &'static str,
        close: String,
    },
    InlineCode,
    Pre,
    Block,
    Heading,
    Frame,
    List,
    Table,
    Row,
    Cell,
    Caption,
}

struct Open {
    el: El,
    action: Action,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Sep {
    None,
    Newline,
    Blank,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing written in this frame yet (or a tight block start is pending).
    Empty,
    /// A run of inline content (a paragraph) is open.
    Inline,
    /// The last thing written was a closed block: new content needs a blank line.
    AfterBlock,
}

enum FrameKind {
    Root,
    Quote,
    Item { marker: String, pending: bool },
}

/// A container that prefixes its lines: the document, a blockquote or a list item.
struct Frame {
    kind: FrameKind,
    state: State,
    /// The delimiter of a list that ended just before, to keep adjacent lists apart.
    last_list: Option<char>,
}

impl Frame {
    fn new(kind: FrameKind) -> Self {
        Frame {
            kind,
            state: State::Empty,
            last_list: None,
        }
    }
}

struct ListCtx {
    ordered: bool,
    next: u64,
    delim: char,
    loose: bool,
    items: usize,
    /// `frames.len()` when the list opened: its items are frames at that index.
    depth: usize,
}

enum Capture {
    Inline(String),
    Pre {
        text: String,
        lang: String,
        fresh: bool,
    },
}

#[derive(Clone, Copy)]
enum Align {
    None,
    Left,
    Center,
    Right,
}

#[derive(Default)]
struct TableState {
    rows: Vec<Vec<String>>,
    row: Option<Vec<String>>,
    cell: Option<String>,
    caption: String,
    aligns: Vec<Align>,
}

impl TableState {
    fn flush_row(&mut self) {
        if let Some(cell) = self.cell.take() {
            self.row
                .get_or_insert_with(Vec::new)
                .push(cell.trim().to_owned());
        }
        if let Some(row) = self.row.take()
            && !row.is_empty()
        {
            self.rows.push(row);
        }
    }
}

fn attr<'b>(attrs: &'b [(String, String)], name: &str) -> Option<&'b str> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn language(attrs: &[(String, String)]) -> String {
    attr(attrs, "class")
        .into_iter()
        .flat_map(str::split_ascii_whitespace)
        .find_map(|class| class.strip_prefix("language-"))
        .filter(|lang| !lang.is_empty() && !lang.contains('`'))
        .unwrap_or_default()
        .to_owned()
}

fn alignment(attrs: &[(String, String)]) -> Align {
    fn word(value: &str) -> Align {
        let value = value.trim_start().to_ascii_lowercase();
        if value.starts_with("left") {
            Align::Left
        } else if value.starts_with("center") {
            Align::Center
        } else if value.starts_with("right") {
            Align::Right
        } else {
            Align::None
        }
    }
    let from_style = attr(attrs, "style").and_then(|style| {
        let style = style.to_ascii_lowercase();
        let at = style.find("text-align")?;
        Some(word(
            style[at + "text-align".len()..]
                .trim_start()
                .strip_prefix(':')?,
        ))
    });
    from_style.unwrap_or_else(|| attr(attrs, "align").map_or(Align::None, word))
}

struct Converter {
    out: String,
    frames: Vec<Frame>,
    lists: Vec<ListCtx>,
    stack: Vec<Open>,
    counts: [usize; EL_COUNT],
    /// Depth of `<mx-reply>` being skipped.
    skip: usize,
    sep: Sep,
    /// How many frames the pending separator's blank line belongs to.
    sep_depth: usize,
    line_open: bool,
    line_has_content: bool,
    /// Changes whenever a frame is pushed or popped: a line is never shared by two frame
    /// configurations.
    frame_serial: u64,
    line_serial: u64,
    pending_space: bool,
    pending_breaks: u32,
    /// Opening markers (`**`, `[`…) not written yet: empty elements write nothing.
    markers: String,
    /// Counts the writes of `markers`: a marker opened in an earlier generation was written.
    flush_gen: u64,
    /// `Action::Marker`s on the stack.
    open_markers: usize,
    /// A heading's `## `, written before the heading's first content.
    line_marker: Option<String>,
    /// The element whose opening marker starts `markers`.
    first_marker: Option<El>,
    capture: Option<Capture>,
    table: Option<TableState>,
    /// Inside a heading or table: content must stay on one line.
    single_line: usize,
    in_heading: usize,
    /// Where the last emphasis closing marker ended and what it was: an opening marker of the
    /// same kind right after it merges with it (`*a**b*` would not parse as two emphases).
    last_close: Option<(El, usize, String)>,
    /// Start, end and text of the last code span, merged with a code span right after it.
    last_code: Option<(usize, usize, String)>,
}

impl Converter {
    fn new() -> Self {
        Converter {
            out: String::new(),
            frames: vec![Frame::new(FrameKind::Root)],
            lists: Vec::new(),
            stack: Vec::new(),
            counts: [0; EL_COUNT],
            skip: 0,
            sep: Sep::None,
            sep_depth: 0,
            line_open: false,
            line_has_content: false,
            frame_serial: 0,
            line_serial: 0,
            pending_space: false,
            pending_breaks: 0,
            markers: String::new(),
            flush_gen: 0,
            open_markers: 0,
            line_marker: None,
            first_marker: None,
            capture: None,
            table: None,
            single_line: 0,
            in_heading: 0,
            last_close: None,
            last_code: None,
        }
    }

    fn run(mut self, html: &str) -> String {
        for token in Tokenizer::new(html) {
            match token {
                Token::Start {
                    name,
                    attrs,
                    self_closing,
                } => {
                    self.start_tag(&name, &attrs, self_closing);
                }
                Token::End { name } => self.end_tag(&name),
                Token::Text(text) => self.text(&text),
            }
        }
        while let Some(open) = self.pop_open() {
            self.close(open);
        }
        let end = self.out.trim_end().len();
        self.out.truncate(end);
        self.out
    }

    fn top(&self) -> &Frame {
        &self.frames[self.frames.len() - 1]
    }

    fn top_mut(&mut self) -> &mut Frame {
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    fn push_open(&mut self, el: El, action: Action) {
        self.counts[el.index()] += 1;
        self.stack.push(Open { el, action });
    }

    fn pop_open(&mut self) -> Option<Open> {
        let open = self.stack.pop()?;
        self.counts[open.el.index()] -= 1;
        Some(open)
    }

    fn unfresh(&mut self) {
        if let Some(Capture::Pre { fresh, .. }) = &mut self.capture {
            *fresh = false;
        }
    }

    // -- tokens --------------------------------------------------------------------------------

    fn start_tag(&mut self, name: &str, attrs: &[(String, String)], self_closing: bool) {
        if self.skip > 0 {
            if name == "mx-reply" && !self_closing {
                self.skip += 1;
            }
            return;
        }
        self.unfresh();
        match name {
            "mx-reply" => {
                if !self_closing {
                    self.skip = 1;
                }
                return;
            }
            "br" => return self.line_break(),
            "hr" => return self.rule(),
            "img" => return self.image(attrs),
            "input" => return self.checkbox(attrs),
            _ => {}
        }
        let Some(el) = classify(name) else { return };
        if self_closing || self.stack.len() >= MAX_DEPTH {
            return;
        }
        if let Some(capture) = &mut self.capture {
            if let (El::Code, Capture::Pre { lang, .. }) = (el, capture)
                && lang.is_empty()
            {
                *lang = language(attrs);
            }
            self.push_open(el, Action::None);
            return;
        }
        self.imply_end_tags(el);
        let action = self.open_action(el, name, attrs);
        self.push_open(el, action);
    }

    fn end_tag(&mut self, name: &str) {
        if self.skip > 0 {
            if name == "mx-reply" {
                self.skip -= 1;
            }
            return;
        }
        self.unfresh();
        if name == "br" {
            return self.line_break();
        }
        let Some(el) = classify(name) else { return };
        if self.counts[el.index()] == 0 {
            return;
        }
        while let Some(open) = self.pop_open() {
            let done = open.el == el;
            self.close(open);
            if done {
                break;
            }
        }
    }

    fn text(&mut self, text: &str) {
        if self.skip > 0 {
            return;
        }
        match &mut self.capture {
            Some(Capture::Pre {
                text: buf, fresh, ..
            }) => {
                let mut t = text;
                if *fresh {
                    t = t
                        .strip_prefix("\r\n")
                        .or_else(|| t.strip_prefix('\n'))
                        .unwrap_or(t);
                    *fresh = false;
                }
                buf.push_str(&t.replace("\r\n", "\n").replace('\r', "\n"));
                return;
            }
            Some(Capture::Inline(code)) => {
                code.extend(text.chars().map(|c| {
                    if matches!(c, '\n' | '\r' | '\t') {
                        ' '
                    } else {
                        c
                    }
                }));
                return;
            }
            None => {}
        }
        if self.table.as_ref().is_some_and(|t| t.cell.is_none()) {
            return;
        }
        let mut rest = text;
        if self.at_item_start() {
            let trimmed = rest.trim_start_matches(is_html_space);
            for (written, marker) in [("[ ]", "[ ]"), ("[x]", "[x]"), ("[x]", "[X]")] {
                if let Some(after) = trimmed.strip_prefix(marker)
                    && after.starts_with(is_html_space)
                {
                    self.write_atom(written);
                    rest = after;
                    break;
                }
            }
        }
        self.inline_text(rest);
    }

    fn inline_text(&mut self, text: &str) {
        let mut word_start = None;
        for (i, c) in text.char_indices() {
            if is_html_space(c) {
                if let Some(start) = word_start.take() {
                    self.write_word(&text[start..i]);
                }
                self.pending_space = true;
            } else if word_start.is_none() {
                word_start = Some(i);
            }
        }
        if let Some(start) = word_start {
            self.write_word(&text[start..]);
        }
    }

    // -- elements ------------------------------------------------------------------------------

    fn imply_end_tags(&mut self, el: El) {
        const P_SCOPE: &[El] = &[
            El::Li,
            El::Blockquote,
            El::Cell,
            El::Caption,
            El::Table,
            El::Div,
            El::Ul,
            El::Ol,
        ];
        match el {
            El::P | El::Div | El::Blockquote | El::Ul | El::Ol | El::Pre | El::Table => {
                self.close_open(&[El::P], P_SCOPE);
            }
            El::Heading => {
                self.close_open(&[El::P], P_SCOPE);
                self.close_open(&[El::Heading], P_SCOPE);
            }
            El::Li => {
                self.close_open(&[El::P], P_SCOPE);
                self.close_open(&[El::Li], &[El::Ul, El::Ol]);
            }
            El::Tr => self.close_open(&[El::Tr], &[El::Table]),
            El::Section => {
                self.close_open(&[El::Tr], &[El::Table]);
                self.close_open(&[El::Section], &[El::Table]);
            }
            El::Cell => self.close_open(&[El::Cell], &[El::Tr, El::Table]),
            _ => {}
        }
    }

    /// Closes the nearest open element among `targets`, unless an element of `scope` is nearer.
    fn close_open(&mut self, targets: &[El], scope: &[El]) {
        if targets.iter().all(|t| self.counts[t.index()] == 0) {
            return;
        }
        let found = self
            .stack
            .iter()
            .rposition(|o| targets.contains(&o.el) || scope.contains(&o.el));
        if let Some(i) = found
            && targets.contains(&self.stack[i].el)
        {
            while self.stack.len() > i {
                if let Some(open) = self.pop_open() {
                    self.close(open);
                }
            }
        }
    }

    fn open_action(&mut self, el: El, name: &str, attrs: &[(String, String)]) -> Action {
        let flat = self.single_line > 0;
        let deep = self.frames.len() >= MAX_FRAMES;
        match el {
            El::Strong | El::Em | El::Strike => {
                if self.counts[el.index()] > 0 {
                    return Action::None;
                }
                let marker = match el {
                    El::Strong => "**",
                    El::Em => "*",
                    _ => "~~",
                };
                let (pos, generation) = self.open_marker(el, marker);
                Action::Marker {
                    pos,
                    generation,
                    open: marker,
                    close: marker.to_owned(),
                }
            }
            El::A => match attr(attrs, "href") {
                Some(href) if self.counts[El::A.index()] == 0 && has_scheme(href, LINK_SCHEMES) => {
                    let mut close = String::from("](");
                    push_destination(&mut close, href);
                    if let Some(title) = attr(attrs, "title")
                        && !title.is_empty()
                    {
                        push_title(&mut close, title);
                    }
                    close.push(')');
                    let (pos, generation) = self.open_marker(El::A, "[");
                    Action::Marker {
                        pos,
                        generation,
                        open: "[",
                        close,
                    }
                }
                _ => Action::None,
            },
            El::Code => {
                self.capture = Some(Capture::Inline(String::new()));
                Action::InlineCode
            }
            El::Pre if flat => {
                self.capture = Some(Capture::Inline(String::new()));
                Action::InlineCode
            }
            El::Pre => {
                self.block_sep(true);
                let lang = language(attrs);
                self.capture = Some(Capture::Pre {
                    text: String::new(),
                    lang,
                    fresh: true,
                });
                Action::Pre
            }
            El::P
            | El::Div
            | El::Heading
            | El::Blockquote
            | El::Ul
            | El::Ol
            | El::Li
            | El::Table
                if flat =>
            {
                self.pending_space = true;
                Action::Space
            }
            El::P | El::Div => {
                if el == El::P {
                    self.mark_loose();
                }
                self.block_boundary();
                Action::Block
            }
            El::Heading => {
                self.block_sep(true);
                let level = name.as_bytes().get(1).map_or(1, |d| usize::from(d - b'0'));
                self.line_marker = Some("#".repeat(level) + " ");
                self.single_line += 1;
                self.in_heading += 1;
                Action::Heading
            }
            El::Blockquote | El::Ul | El::Ol if deep => {
                self.block_boundary();
                Action::Block
            }
            El::Blockquote => {
                self.block_sep(true);
                self.top_mut().last_list = None;
                self.frame_serial += 1;
                self.frames.push(Frame::new(FrameKind::Quote));
                Action::Frame
            }
            El::Ul | El::Ol => {
                let start = attr(attrs, "start")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(999_999_999);
                self.open_list(el == El::Ol, start);
                Action::List
            }
            El::Li => {
                let in_list = self
                    .lists
                    .last()
                    .is_some_and(|l| l.depth == self.frames.len());
                if in_list && !deep {
                    self.open_item();
                    Action::Frame
                } else {
                    self.block_boundary();
                    Action::Block
                }
            }
            El::Table => {
                self.block_sep(false);
                self.table = Some(TableState::default());
                self.single_line += 1;
                Action::Table
            }
            El::Section | El::Tr | El::Cell | El::Caption => {
                let Some(table) = self.table.as_mut().filter(|t| t.cell.is_none()) else {
                    self.pending_space = true;
                    return Action::Space;
                };
                match el {
                    El::Cell => {
                        if table.rows.is_empty() {
                            table.aligns.push(alignment(attrs));
                        }
                        table.row.get_or_insert_with(Vec::new);
                        table.cell = Some(String::new());
                        self.pending_space = false;
                        Action::Cell
                    }
                    El::Caption => {
                        table.cell = Some(String::new());
                        self.pending_space = false;
                        Action::Caption
                    }
                    _ => {
                        table.flush_row();
                        Action::Row
                    }
                }
            }
        }
    }

    fn close(&mut self, open: Open) {
        let el = open.el;
        match open.action {
            Action::None => {}
            Action::Space => self.pending_space = true,
            Action::Marker {
                pos,
                generation,
                close,
                ..
            } => {
                self.open_markers -= 1;
                if generation == self.flush_gen {
                    self.truncate_markers(pos);
                } else if let Some(target) = self.target() {
                    target.push_str(&close);
                    let end = target.len();
                    if el != El::A {
                        self.last_close = Some((el, end, close));
                    }
                }
            }
            Action::InlineCode => {
                if let Some(Capture::Inline(code)) = self.capture.take() {
                    self.inline_code(&code);
                }
            }
            Action::Pre => {
                if let Some(Capture::Pre { text, lang, .. }) = self.capture.take() {
                    self.code_block(&text, &lang);
                }
            }
            Action::Block => self.block_boundary(),
            Action::Heading => {
                self.line_marker = None;
                self.single_line -= 1;
                self.in_heading -= 1;
                self.block_boundary();
            }
            Action::Frame => self.pop_frame(),
            Action::List => {
                self.block_boundary();
                if let Some(list) = self.lists.pop()
                    && list.items > 0
                {
                    self.top_mut().last_list = Some(list.delim);
                }
            }
            Action::Table => {
                self.single_line -= 1;
                if let Some(table) = self.table.take() {
                    self.render_table(table);
                }
            }
            Action::Row => {
                if let Some(table) = &mut self.table {
                    table.flush_row();
                }
            }
            Action::Cell => {
                self.split_markers();
                if let Some(table) = &mut self.table
                    && let Some(cell) = table.cell.take()
                {
                    table
                        .row
                        .get_or_insert_with(Vec::new)
                        .push(cell.trim().to_owned());
                }
                self.pending_space = false;
            }
            Action::Caption => {
                if let Some(table) = &mut self.table
                    && let Some(caption) = table.cell.take()
                {
                    table.caption = caption;
                }
                self.pending_space = false;
            }
        }
    }

    fn open_marker(&mut self, el: El, marker: &str) -> (usize, u64) {
        let pos = self.markers.len();
        if pos == 0 {
            self.first_marker = Some(el);
        }
        self.markers.push_str(marker);
        self.open_markers += 1;
        (pos, self.flush_gen)
    }

    /// At a block boundary, closes the inline markers already written (innermost first) and
    /// makes them pending again, so that emphasis or a link never spans blocks:
    /// `<b>a<p>b</p></b>` gives `**a**` and `**b**`.
    fn split_markers(&mut self) {
        if self.open_markers == 0 {
            return;
        }
        let generation = self.flush_gen;
        let mut closes = String::new();
        for open in self.stack.iter().rev() {
            if let Action::Marker {
                generation: opened,
                close,
                ..
            } = &open.action
                && *opened < generation
            {
                closes.push_str(close);
            }
        }
        if closes.is_empty() {
            return;
        }
        // Written markers belong to elements opened before any still-pending one.
        let mut reopen = String::new();
        let mut first = None;
        for entry in &mut self.stack {
            let el = entry.el;
            if let Action::Marker {
                pos,
                generation: opened,
                open,
                ..
            } = &mut entry.action
            {
                if *opened < generation {
                    first.get_or_insert(el);
                    *pos = reopen.len();
                    *opened = generation;
                    reopen.push_str(open);
                } else {
                    *pos += reopen.len();
                }
            }
        }
        let writable = match &self.table {
            Some(table) => table.cell.is_some(),
            None => self.line_open && self.sep == Sep::None && self.top().state == State::Inline,
        };
        if writable && let Some(target) = self.target() {
            target.push_str(&closes);
        }
        reopen.push_str(&self.markers);
        self.markers = reopen;
        self.first_marker = first;
        self.last_close = None;
    }

    fn truncate_markers(&mut self, pos: usize) {
        self.markers.truncate(pos);
        if pos == 0 {
            self.first_marker = None;
        }
    }

    fn line_break(&mut self) {
        if self.skip > 0 {
            return;
        }
        match &mut self.capture {
            Some(Capture::Pre { text, .. }) => return text.push('\n'),
            Some(Capture::Inline(code)) => return code.push(' '),
            None => {}
        }
        if self.single_line > 0 {
            self.pending_space = true;
        } else if self.top().state == State::Inline {
            self.pending_breaks = self.pending_breaks.saturating_add(1);
        }
    }

    fn rule(&mut self) {
        if self.capture.is_some() {
            return;
        }
        if self.single_line > 0 {
            self.pending_space = true;
            return;
        }
        let tight = self.block_sep(true);
        let on_marker = matches!(self.top().kind, FrameKind::Item { pending: true, .. });
        // `---` under a text line would make it a heading, and `- ---` is a rule, not an item.
        self.write_line(if tight || on_marker { "___" } else { "---" });
        self.block_boundary();
    }

    fn image(&mut self, attrs: &[(String, String)]) {
        if self.capture.is_some() {
            return;
        }
        let alt = attr(attrs, "alt").unwrap_or_default();
        match attr(attrs, "src") {
            Some(src) if has_scheme(src, IMAGE_SCHEMES) => {
                let mut md = String::from("![");
                let alt = alt.replace(is_html_space, " ");
                let ctx = EscapeCtx {
                    prev: None,
                    line_start: false,
                    pipe: self.table.is_some(),
                    hash: false,
                };
                escape_into(&mut md, &alt, ctx);
                md.push_str("](");
                push_destination(&mut md, src);
                if let Some(title) = attr(attrs, "title")
                    && !title.is_empty()
                {
                    push_title(&mut md, title);
                }
                md.push(')');
                self.write_atom(&md);
            }
            _ => self.inline_text(alt),
        }
    }

    fn checkbox(&mut self, attrs: &[(String, String)]) {
        if self.capture.is_none()
            && attr(attrs, "type").is_some_and(|t| t.eq_ignore_ascii_case("checkbox"))
            && self.at_item_start()
        {
            self.write_atom(if attr(attrs, "checked").is_some() {
                "[x]"
            } else {
                "[ ]"
            });
            self.pending_space = true;
        }
    }

    fn at_item_start(&self) -> bool {
        self.table.is_none()
            && self.markers.is_empty()
            && matches!(self.top().kind, FrameKind::Item { pending: true, .. })
    }

    fn mark_loose(&mut self) {
        let depth = self.frames.len();
        if matches!(self.top().kind, FrameKind::Item { .. })
            && let Some(list) = self.lists.last_mut()
            && list.depth + 1 == depth
        {
            list.loose = true;
        }
    }

    fn open_list(&mut self, ordered: bool, start: u64) {
        let previous = self.top().last_list;
        let tight = self.block_sep(!ordered || start == 1);
        let default = if ordered { '.' } else { '-' };
        let delim = if !tight && previous == Some(default) && self.top().state == State::AfterBlock
        {
            if ordered { ')' } else { '*' }
        } else {
            default
        };
        self.top_mut().last_list = None;
        let depth = self.frames.len();
        self.lists.push(ListCtx {
            ordered,
            next: start,
            delim,
            loose: false,
            items: 0,
            depth,
        });
    }

    fn open_item(&mut self) {
        self.block_boundary();
        let Some(list) = self.lists.last_mut() else {
            return;
        };
        let sep = match (list.items, list.loose) {
            (0, _) if self.frames[self.frames.len() - 1].state == State::Empty => Sep::None,
            (0, _) | (_, true) => Sep::Blank,
            (_, false) => Sep::Newline,
        };
        list.items += 1;
        let marker = if list.ordered {
            let marker = format!("{}{} ", list.next, list.delim);
            list.next = (list.next + 1).min(999_999_999);
            marker
        } else {
            format!("{} ", list.delim)
        };
        if sep != Sep::None {
            self.request(sep);
        }
        self.frame_serial += 1;
        self.frames.push(Frame::new(FrameKind::Item {
            marker,
            pending: true,
        }));
    }

    fn pop_frame(&mut self) {
        if self.frames.len() <= 1 {
            return;
        }
        self.block_boundary();
        if matches!(self.top().kind, FrameKind::Item { pending: true, .. }) {
            // An empty item still needs its marker.
            self.begin_line();
            let end = self.out.trim_end_matches(' ').len();
            self.out.truncate(end);
            self.block_boundary();
        }
        let had_content = self.top().state != State::Empty;
        self.frames.pop();
        self.frame_serial += 1;
        self.sep_depth = self.sep_depth.min(self.frames.len());
        if had_content {
            self.top_mut().state = State::AfterBlock;
        }
    }

    fn render_table(&mut self, mut table: TableState) {
        table.flush_row();
        let caption = table.caption.trim();
        if !caption.is_empty() {
            self.begin_line();
            if let Some(at) = line_start_escape(caption) {
                self.out.push_str(&caption[..at]);
                self.out.push('\\');
                self.out.push_str(&caption[at..]);
            } else {
                self.out.push_str(caption);
            }
            self.line_has_content = true;
            self.block_boundary();
        }
        let columns = table.rows.iter().map(Vec::len).max().unwrap_or(0);
        if columns == 0 {
            return;
        }
        for (i, row) in table.rows.iter().enumerate() {
            let mut line = String::from("|");
            for c in 0..columns {
                line.push(' ');
                line.push_str(row.get(c).map_or("", String::as_str));
                line.push_str(" |");
            }
            self.write_line(&line);
            if i == 0 {
                let mut line = String::from("|");
                for c in 0..columns {
                    line.push_str(match table.aligns.get(c) {
                        Some(Align::Left) => " :--- |",
                        Some(Align::Center) => " :---: |",
                        Some(Align::Right) => " ---: |",
                        Some(Align::None) | None => " --- |",
                    });
                }
                self.write_line(&line);
            }
        }
        self.block_boundary();
    }

    fn inline_code(&mut self, code: &str) {
        if code.is_empty() || !self.start_atom() {
            return;
        }
        let last = self.last_code.take();
        let in_table = self.table.is_some();
        let Some(target) = self.target() else { return };
        let mut code = code.to_owned();
        if let Some((start, end, previous)) = last
            && target.len() == end
        {
            target.truncate(start);
            code.insert_str(0, &previous);
        }
        let shown = if in_table {
            code.replace('|', "\\|")
        } else {
            code.clone()
        };
        let ticks = "`".repeat(longest_run(&shown, '`') + 1);
        let pad = shown.starts_with('`')
            || shown.ends_with('`')
            || (shown.starts_with(' ') && shown.ends_with(' ') && shown.contains(|c| c != ' '));
        let space = if pad { " " } else { "" };
        let start = target.len();
        let _ = write!(target, "{ticks}{space}{shown}{space}{ticks}");
        let end = target.len();
        self.line_has_content = true;
        self.last_code = Some((start, end, code));
    }

    fn code_block(&mut self, text: &str, lang: &str) {
        let fence = "`".repeat(longest_run(text, '`').max(2) + 1);
        self.write_line(&format!("{fence}{lang}"));
        if !text.is_empty() {
            for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
                self.write_line(line);
            }
        }
        self.write_line(&fence);
        self.block_boundary();
    }

    // -- output --------------------------------------------------------------------------------

    fn request(&mut self, sep: Sep) {
        self.sep_depth = if self.sep == Sep::None {
            self.frames.len()
        } else {
            self.sep_depth.min(self.frames.len())
        };
        self.sep = self.sep.max(sep);
    }

    /// Ends the current run of inline content in the current frame.
    fn block_boundary(&mut self) {
        self.split_markers();
        let frame = self.top_mut();
        if frame.state == State::Inline {
            frame.state = State::AfterBlock;
        }
        self.pending_breaks = 0;
        self.pending_space = false;
    }

    /// Separation before a block starting in the current frame. Returns whether it directly
    /// follows the text of a tight list item (then a newline is enough, and keeps the list tight).
    fn block_sep(&mut self, interrupts: bool) -> bool {
        let frame = self.top();
        let tight = interrupts
            && frame.state == State::Inline
            && matches!(frame.kind, FrameKind::Item { .. });
        self.block_boundary();
        if tight {
            self.request(Sep::Newline);
            self.top_mut().state = State::Empty;
        } else if self.top().state != State::Empty {
            self.request(Sep::Blank);
        }
        tight
    }

    fn prefix(&mut self, depth: usize, consume: bool) -> String {
        let mut prefix = String::new();
        for frame in &mut self.frames[..depth] {
            match &mut frame.kind {
                FrameKind::Root => {}
                FrameKind::Quote => prefix.push_str("> "),
                FrameKind::Item { marker, pending } => {
                    if consume && *pending {
                        prefix.push_str(marker);
                        *pending = false;
                    } else {
                        prefix.extend(std::iter::repeat_n(' ', marker.len()));
                    }
                }
            }
        }
        prefix
    }

    /// Makes `out` ready for content: pending separators, then the line prefix.
    fn begin_line(&mut self) {
        match self.top().state {
            State::AfterBlock => self.request(Sep::Blank),
            State::Inline if self.pending_breaks > 0 => {
                if self.pending_breaks > 1 {
                    self.split_markers();
                }
                self.request(if self.pending_breaks > 1 {
                    Sep::Blank
                } else {
                    Sep::Newline
                });
            }
            _ => {}
        }
        self.pending_breaks = 0;
        if self.line_open && self.line_serial != self.frame_serial {
            self.request(Sep::Newline);
        }
        if self.sep != Sep::None {
            if self.line_open {
                self.out.push('\n');
                self.line_open = false;
            }
            if self.sep == Sep::Blank && !self.out.is_empty() {
                let prefix = self.prefix(self.sep_depth, false);
                self.out.push_str(prefix.trim_end());
                self.out.push('\n');
            }
            self.sep = Sep::None;
        }
        if !self.line_open {
            let prefix = self.prefix(self.frames.len(), true);
            self.out.push_str(&prefix);
            self.line_open = true;
            self.line_has_content = false;
            self.line_serial = self.frame_serial;
        }
        let frame = self.top_mut();
        frame.state = State::Inline;
        frame.last_list = None;
    }

    /// Writes one whole line (of a code block, table or rule).
    fn write_line(&mut self, line: &str) {
        self.begin_line();
        self.out.push_str(line);
        self.line_has_content = true;
        self.request(Sep::Newline);
    }

    /// Where inline content goes: the open table cell, nowhere (table outside cells) or `out`.
    fn target(&mut self) -> Option<&mut String> {
        match &mut self.table {
            Some(table) => table.cell.as_mut(),
            None => Some(&mut self.out),
        }
    }

    /// Writes what goes before inline content (separators, space, opening markers); returns
    /// false when the content has nowhere to go.
    fn start_atom(&mut self) -> bool {
        if self.table.is_none() {
            self.begin_line();
            if let Some(marker) = self.line_marker.take() {
                self.out.push_str(&marker);
                self.line_has_content = true;
                self.pending_space = false;
            }
        }
        let has_content = self.line_has_content;
        let pending_space = std::mem::take(&mut self.pending_space);
        let last_close = self.last_close.take();
        let first_marker = self.first_marker.take();
        let mut markers = std::mem::take(&mut self.markers);
        let flushing = !markers.is_empty();
        let in_table = self.table.is_some();
        let Some(target) = self.target() else {
            self.markers = markers;
            self.first_marker = first_marker;
            return false;
        };
        let has_content = if in_table {
            !target.is_empty()
        } else {
            has_content
        };
        if pending_space && has_content {
            target.push(' ');
        }
        if let Some((el, end, close)) = last_close
            && first_marker == Some(el)
            && target.len() == end
            && target.ends_with(&close)
            && markers.starts_with(&close)
        {
            target.truncate(end - close.len());
            markers.drain(..close.len());
        }
        target.push_str(&markers);
        if !markers.is_empty() {
            self.line_has_content = true;
        }
        markers.clear();
        self.markers = markers;
        if flushing {
            // Everything pending is written now (or merged with what was written).
            self.flush_gen += 1;
        }
        true
    }

    /// Writes already-formatted markdown (code span, image, task marker).
    fn write_atom(&mut self, markdown: &str) {
        if self.start_atom()
            && let Some(target) = self.target()
        {
            target.push_str(markdown);
            self.line_has_content = true;
        }
    }

    fn write_word(&mut self, word: &str) {
        if !self.start_atom() {
            return;
        }
        let line_start = self.table.is_none() && !self.line_has_content;
        let pipe = self.table.is_some();
        let hash = self.in_heading > 0;
        if let Some(target) = self.target() {
            let prev = target.chars().next_back();
            escape_into(
                target,
                word,
                EscapeCtx {
                    prev,
                    line_start,
                    pipe,
                    hash,
                },
            );
            self.line_has_content = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md2html(md: &str) -> String {
        markdown_to_html(md)
    }

    fn html2md(html: &str) -> String {
        html_to_markdown(html)
    }

    #[test]
    fn markdown_to_html_common_constructs() {
        let cases: &[(&str, &str)] = &[
            ("hello", "<p>hello</p>"),
            ("**bold**", "<p><strong>bold</strong></p>"),
            ("*em* and _em_", "<p><em>em</em> and <em>em</em></p>"),
            ("~~gone~~", "<p><del>gone</del></p>"),
            ("`a < b`", "<p><code>a &lt; b</code></p>"),
            (
                "[site](https://example.org/a?b=1&c=2)",
                "<p><a href=\"https://example.org/a?b=1&amp;c=2\">site</a></p>",
            ),
            ("# Title", "<h1>Title</h1>"),
            ("### Small", "<h3>Small</h3>"),
            ("> quoted", "<blockquote>\n<p>quoted</p>\n</blockquote>"),
            ("- a\n- b", "<ul>\n<li>a</li>\n<li>b</li>\n</ul>"),
            (
                "3. c\n4. d",
                "<ol start=\"3\">\n<li>c</li>\n<li>d</li>\n</ol>",
            ),
            (
                "```rust\nfn main() {}\n```",
                "<pre><code class=\"language-rust\">fn main() {}\n</code></pre>",
            ),
            ("---", "<hr />"),
            ("line one\nline two", "<p>line one<br />\nline two</p>"),
            ("a  \nb", "<p>a<br />\nb</p>"),
            (
                "- [ ] todo\n- [x] done",
                "<ul>\n<li>[ ] todo</li>\n<li>[x] done</li>\n</ul>",
            ),
            (
                "![cat](mxc://example.org/abc)",
                "<p><img src=\"mxc://example.org/abc\" alt=\"cat\" /></p>",
            ),
            (
                "![cat](https://example.org/cat.png)",
                "<p><a href=\"https://example.org/cat.png\">cat</a></p>",
            ),
            ("[bad](javascript:alert(1))", "<p>bad</p>"),
            ("[rel](/relative)", "<p>rel</p>"),
            (
                "<mail@example.org>",
                "<p><a href=\"mailto:mail@example.org\">mail@example.org</a></p>",
            ),
            (
                "<https://example.org>",
                "<p><a href=\"https://example.org\">https://example.org</a></p>",
            ),
            (
                "| a | b |\n|:-:|--:|\n| 1 | 2 |",
                "<table><thead><tr><th style=\"text-align: center\">a</th><th style=\"text-align: right\">b</th></tr></thead><tbody>\n<tr><td style=\"text-align: center\">1</td><td style=\"text-align: right\">2</td></tr>\n</tbody></table>",
            ),
        ];
        for (md, html) in cases {
            assert_eq!(md2html(md), *html, "markdown {md:?}");
        }
    }

    #[test]
    fn raw_html_in_markdown_is_escaped() {
        let cases = [
            "<script>alert(1)</script>",
            "hi <script>alert(1)</script> there",
            "<div onclick=\"x()\">\n*block*\n</div>",
            "<img src=x onerror=alert(1)>",
            "> <b>quoted</b>",
            "- <i>item</i>",
            "<!-- comment -->",
            "text <a href=\"javascript:x\">link</a>",
        ];
        for md in cases {
            let html = md2html(md);
            for tag in ["<script", "<div", "<img", "<b>", "<i>", "<!--", "<a "] {
                assert!(!html.contains(tag), "{md:?} gave {html:?}");
            }
        }
        assert_eq!(
            md2html("<script>alert(1)</script>"),
            "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
        );
        assert_eq!(md2html("a <b>x</b>"), "<p>a &lt;b&gt;x&lt;/b&gt;</p>");
        assert_eq!(
            md2html("<div>\nhello\n</div>"),
            "<p>&lt;div&gt;<br />\nhello<br />\n&lt;/div&gt;</p>"
        );
    }

    #[test]
    fn html_to_markdown_common_constructs() {
        let cases: &[(&str, &str)] = &[
            ("plain text", "plain text"),
            ("<strong>bold</strong> <b>b</b>", "**bold** **b**"),
            ("<em>em</em> <i>i</i>", "*em* *i*"),
            (
                "<del>a</del> <strike>b</strike> <s>c</s>",
                "~~a~~ ~~b~~ ~~c~~",
            ),
            ("<code>let x = 1;</code>", "`let x = 1;`"),
            ("<code>a`b</code>", "``a`b``"),
            ("<code>`a</code>", "`` `a ``"),
            (
                "<a href=\"https://example.org\">site</a>",
                "[site](https://example.org)",
            ),
            (
                "<a href=\"https://example.org/a b\">x</a>",
                "[x](<https://example.org/a b>)",
            ),
            (
                "<a href=\"https://example.org/(x)\" title='T \"q\"'>x</a>",
                "[x](<https://example.org/(x)> \"T \\\"q\\\"\")",
            ),
            ("<a href=\"javascript:alert(1)\">js</a>", "js"),
            ("<a>no href</a>", "no href"),
            ("line1<br>line2<br/>line3", "line1\nline2\nline3"),
            ("a<br><br>b", "a\n\nb"),
            ("<p>one</p><p>two</p>", "one\n\ntwo"),
            (
                "<h1>Title</h1><h2>Sub</h2><h6>six</h6>",
                "# Title\n\n## Sub\n\n###### six",
            ),
            (
                "<blockquote>quoted<br>more</blockquote>after",
                "> quoted\n> more\n\nafter",
            ),
            ("<blockquote><p>a</p><p>b</p></blockquote>", "> a\n>\n> b"),
            ("<ul><li>a</li><li>b</li></ul>", "- a\n- b"),
            ("<ol><li>a</li><li>b</li></ol>", "1. a\n2. b"),
            ("<ol start=\"7\"><li>a</li><li>b</li></ol>", "7. a\n8. b"),
            ("<hr>", "---"),
            ("a<hr>b", "a\n\n---\n\nb"),
            (
                "<img src=\"mxc://example.org/abc\" alt=\"a cat\">",
                "![a cat](mxc://example.org/abc)",
            ),
            (
                "<img src=\"data:image/png;base64,xx\" alt=\"inline\">",
                "inline",
            ),
            (
                "<pre><code class=\"language-rust\">fn main() {\n    x();\n}\n</code></pre>",
                "```rust\nfn main() {\n    x();\n}\n```",
            ),
            ("<pre>plain\n  pre</pre>", "```\nplain\n  pre\n```"),
            (
                "<pre><code>has ``` fence\n</code></pre>",
                "````\nhas ``` fence\n````",
            ),
            (
                "<u>under</u> <sup>1</sup> <span data-mx-color=\"#f00\">red</span> <font color=red>f</font>",
                "under 1 red f",
            ),
            ("<unknown-tag>kept</unknown-tag>", "kept"),
            ("<b>a <i>b</i> c</b>", "**a *b* c**"),
            ("<b>foo </b>bar", "**foo** bar"),
            ("foo<b> bar</b>", "foo **bar**"),
            ("<b></b>empty<i> </i>", "empty"),
            ("<b>x<b>y</b>z</b>", "**xyz**"),
            (
                "<em>x</em><em>y</em> <b>a</b><b><i>b</i></b>",
                "*xy* **a*b***",
            ),
            (
                "<i>a</i><b>b</b> <del>c</del><del>d</del>",
                "*a***b** ~~cd~~",
            ),
            ("<p><em>x</em></p><p><em>y</em></p>", "*x*\n\n*y*"),
            (
                "<code>a</code><code>b`</code> <code>c</code>",
                "`` ab` `` `c`",
            ),
            ("intra<b>word</b>bold", "intra**word**bold"),
            ("<p>  lots   of\n\n  space  </p>", "lots of space"),
            ("<script>alert('x')</script>ok<style>p{}</style>", "ok"),
            ("<!-- hidden -->shown", "shown"),
            (
                "<details><summary>More</summary>Hidden text</details>",
                "More\n\nHidden text",
            ),
            (
                "<table><tr><td>a|b</td><td><code>x|y</code></td></tr></table>",
                "| a\\|b | `x\\|y` |\n| --- | --- |",
            ),
            (
                "<ul><li><input type=\"checkbox\" checked> done</li><li><input type=checkbox> todo</li></ul>",
                "- [x] done\n- [ ] todo",
            ),
        ];
        for (html, md) in cases {
            assert_eq!(html2md(html), *md, "html {html:?}");
        }
    }

    #[test]
    fn text_is_escaped() {
        let cases: &[(&str, &str)] = &[
            ("*not bold*", "\\*not bold\\*"),
            ("_not em_ snake_case_name", "\\_not em\\_ snake_case_name"),
            ("`not code`", "\\`not code\\`"),
            ("[not](a link)", "\\[not\\](a link)"),
            ("<p># not heading</p>", "\\# not heading"),
            ("<p>&gt; not quote</p>", "\\> not quote"),
            ("<p>- not item</p>", "\\- not item"),
            ("<p>+ not item</p>", "\\+ not item"),
            ("<p>1. not item</p>", "1\\. not item"),
            ("<p>2024) not item</p>", "2024\\) not item"),
            ("a<br>===", "a\n\\==="),
            ("a<br>- b", "a\n\\- b"),
            ("a | b<br>|---|---|", "a | b\n\\|---|---|"),
            ("a | b<br>:--|--", "a | b\n\\:--|--"),
            ("~~not struck~~", "\\~\\~not struck\\~\\~"),
            ("&lt;b&gt;not a tag&lt;/b&gt;", "\\<b>not a tag\\</b>"),
            ("back\\slash", "back\\\\slash"),
            ("&amp;copy; and &amp; alone", "\\&copy; and & alone"),
            ("a # b - c 1. d", "a # b - c 1. d"),
            ("<h2>C# #</h2>", "## C\\# \\#"),
        ];
        for (html, md) in cases {
            assert_eq!(html2md(html), *md, "html {html:?}");
            // And the markdown shows the same text again.
            let back = md2html(md);
            assert!(
                !back.contains("<strong>") && !back.contains("<em>") && !back.contains("<code>"),
                "{md:?} → {back:?}"
            );
            assert!(
                !back.contains("<li>") && !back.contains("<blockquote>"),
                "{md:?} → {back:?}"
            );
            assert_eq!(
                back.contains("<h"),
                html.starts_with("<h"),
                "{md:?} → {back:?}"
            );
        }
    }

    #[test]
    fn entities() {
        let cases: &[(&str, &str)] = &[
            ("&amp; &lt; &gt; &quot; &#39; &apos;", "& \\< > \" ' '"),
            ("&#65;&#x42;&#X43;&#x1F600;", "ABC😀"),
            ("&#0; &#xD800; &#99999999999;", "\u{FFFD} \u{FFFD} \u{FFFD}"),
            ("&nbsp;x&copy;&hellip;&mdash;", "\u{a0}x©…—"),
            (
                "&amp stray & and &unknown; &",
                "& stray & and \\&unknown; &",
            ),
            (
                "<a href=\"https://e.org/?a=1&amp;b=2\">q</a>",
                "[q](https://e.org/?a=1&b=2)",
            ),
            (
                "<a href='https://e.org/?x=&copy;'>q</a>",
                "[q](https://e.org/?x=©)",
            ),
            ("<code>&lt;tag&gt; &amp;</code>", "`<tag> &`"),
            ("<pre>a &lt; b</pre>", "```\na < b\n```"),
        ];
        for (html, md) in cases {
            assert_eq!(html2md(html), *md, "html {html:?}");
        }
        // `&copy;` written literally must not come back as ©.
        assert_eq!(md2html(&html2md("&amp;copy;")), "<p>&amp;copy;</p>");
    }

    #[test]
    fn nested_lists() {
        let cases: &[(&str, &str)] = &[
            (
                "<ul><li>a<ul><li>b<ul><li>c</li></ul></li></ul></li><li>d</li></ul>",
                "- a\n  - b\n    - c\n- d",
            ),
            (
                "<ol><li>one<ul><li>x</li><li>y</li></ul></li><li>two</li></ol>",
                "1. one\n   - x\n   - y\n2. two",
            ),
            (
                "<ul><li><p>loose a</p></li><li><p>loose b</p></li></ul>",
                "- loose a\n\n- loose b",
            ),
            (
                "<ul><li><p>para 1</p><p>para 2</p></li></ul>",
                "- para 1\n\n  para 2",
            ),
            ("<ul><li><blockquote>q</blockquote></li></ul>", "- > q"),
            (
                "<blockquote><ul><li>a</li><li>b</li></ul></blockquote>",
                "> - a\n> - b",
            ),
            (
                "<ul><li>a<pre><code>x\n</code></pre></li></ul>",
                "- a\n  ```\n  x\n  ```",
            ),
            ("<ul><li></li><li>b</li></ul>", "-\n- b"),
            ("<ul><li>a<li>b</ul>", "- a\n- b"),
            ("<ul><li>a</li></ul><ul><li>b</li></ul>", "- a\n\n* b"),
            ("<p>intro</p><ul><li>a</li></ul>", "intro\n\n- a"),
            ("intro<ul><li>a</li></ul>outro", "intro\n\n- a\n\noutro"),
            ("<ul><li><hr></li></ul>", "- ___"),
        ];
        for (html, md) in cases {
            assert_eq!(html2md(html), *md, "html {html:?}");
        }
    }

    #[test]
    fn mx_reply_is_removed() {
        let html = "<mx-reply><blockquote><a href=\"https://matrix.to/#/!room:x/$ev\">In reply to</a> \
                    <a href=\"https://matrix.to/#/@alice:x\">@alice:x</a><br>original <b>text</b></blockquote></mx-reply>\
                    my <em>answer</em>";
        assert_eq!(html2md(html), "my *answer*");
        assert_eq!(
            html2md("<mx-reply><mx-reply>x</mx-reply>y</mx-reply>z"),
            "z"
        );
        assert_eq!(html2md("<MX-REPLY>gone</MX-REPLY>kept"), "kept");
        assert_eq!(html2md("before<mx-reply>never closed"), "before");
    }

    #[test]
    fn plain_reply_fallback() {
        let cases: &[(&str, &str)] = &[
            ("> <@alice:x> hello\n> second\n\nmy reply", "my reply"),
            (
                "> <@alice:x> hello\n>\n> after blank\n\nreply\n\nmore",
                "reply\n\nmore",
            ),
            ("> <@alice:x> hi\r\n\r\nreply", "reply"),
            ("no fallback", "no fallback"),
            (
                "> quote without blank line\nreply",
                "> quote without blank line\nreply",
            ),
            ("> only a quote", "> only a quote"),
            ("\nreply", "\nreply"),
            ("> a\n\n", ""),
            (">no space\n\nreply", ">no space\n\nreply"),
        ];
        for (body, stripped) in cases {
            assert_eq!(strip_plain_reply_fallback(body), *stripped, "body {body:?}");
        }
    }

    #[test]
    fn tables() {
        let html = "<table><thead><tr><th>Name</th><th style=\"text-align: right\">Qty</th></tr></thead>\
                    <tbody><tr><td><b>apple</b></td><td>3</td></tr><tr><td>pear<br>green</td></tr></tbody></table>";
        assert_eq!(
            html2md(html),
            "| Name | Qty |\n| --- | ---: |\n| **apple** | 3 |\n| pear green |  |"
        );
        let no_head = "<table><caption>Fruit</caption><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td><td>e</td></tr></table>";
        assert_eq!(
            html2md(no_head),
            "Fruit\n\n| a | b |  |\n| --- | --- | --- |\n| c | d | e |"
        );
        assert_eq!(html2md("<table></table>after"), "after");
        assert_eq!(
            html2md("<table><tr><td><table><tr><td>in</td></tr></table></td></tr></table>"),
            "| in |\n| --- |"
        );
    }

    const ROUND_TRIP: &[&str] = &[
        "hello world",
        "**bold** and *italic* and ~~struck~~ and `code`",
        "***both***",
        "**bold with *nested* em**",
        "a [link](https://example.org/path?q=1&r=2) here",
        "[link with title](https://example.org \"The title\")",
        "<https://example.org/auto>",
        "# Heading 1\n\n## Heading **2**\n\ntext",
        "> quote\n> more\n\n> > nested",
        "- a\n- b\n  - c\n  - d\n- e",
        "1. one\n2. two\n   1. inner\n3. three",
        "5. five\n6. six",
        "- loose\n\n- list\n\n  with paragraphs",
        "- [ ] todo\n- [x] done",
        "```rust\nfn main() {\n    println!(\"hi\");\n}\n```",
        "```\n\nleading blank line\n```",
        "    indented code\n",
        "line one\nline two\nline three",
        "para one\n\npara two",
        "text with \\*escaped\\* stars and \\_underscores\\_ and snake_case",
        "\\# not a heading\n\n\\- not a list\n\n1\\. not ordered",
        "a < b > c & d &amp; e",
        "---",
        "above\n\n---\n\nbelow",
        "![image](mxc://example.org/abcdef)",
        "[![img](mxc://e.org/x)](https://example.org)",
        "| a | b |\n| --- | :-: |\n| 1 | **2** |\n| `x\\|y` | z |",
        "<b>raw html</b> stays text",
        "<div>\nblock html\n</div>",
        "> - quoted list\n> - items\n>\n> ```\n> code in quote\n> ```",
        "- item\n\n  > quote in item\n\n  ```\n  code in item\n  ```",
        "emoji 🎉 and ünïcödé",
        "trailing backslash\\",
        "* star list\n* items",
        "1) paren list\n2) items",
        "Mention [Alice](https://matrix.to/#/@alice:example.org) hi",
        "a\\\nhard break",
    ];

    #[test]
    fn round_trips() {
        for md in ROUND_TRIP {
            let html1 = md2html(md);
            let md2 = html2md(&html1);
            let html2 = md2html(&md2);
            assert_eq!(
                html1, html2,
                "markdown {md:?} → html {html1:?} → markdown {md2:?}"
            );
            // And the second pass is a fixed point.
            assert_eq!(html2md(&html2), md2, "markdown {md:?}");
        }
    }

    #[test]
    fn round_trips_keep_common_markdown_as_is() {
        let same = [
            "hello world",
            "**bold** and *italic* and ~~struck~~ and `code`",
            "a [link](https://example.org/path) here",
            "# Heading 1\n\n## Heading **2**\n\ntext",
            "- a\n- b\n  - c\n  - d\n- e",
            "1. one\n2. two\n   1. inner\n3. three",
            "> quote\n> more",
            "```rust\nfn main() {}\n```",
            "line one\nline two",
            "para one\n\npara two",
            "- [ ] todo\n- [x] done",
            "| a | b |\n| --- | :---: |\n| 1 | 2 |",
            "![image](mxc://example.org/abcdef)",
            "above\n\n---\n\nbelow",
            "snake_case and 2*3",
        ];
        for md in same {
            let expected = md.replace("2*3", "2\\*3");
            assert_eq!(html2md(&md2html(md)), expected, "markdown {md:?}");
        }
    }

    #[test]
    fn round_trips_from_html() {
        // Typical Matrix client output survives html → markdown → html.
        let cases = [
            "<p>Hello <strong>world</strong></p>",
            "<p>a<br />\nb</p>",
            "<ul>\n<li>one</li>\n<li>two</li>\n</ul>",
            "<blockquote>\n<p>q</p>\n</blockquote>",
            "<pre><code class=\"language-py\">print(1)\n</code></pre>",
            "<p><a href=\"https://matrix.to/#/@bob:example.org\">Bob</a>: hi</p>",
            "<h2>T</h2>",
            "<p><del>x</del> <code>y</code> <em>z</em></p>",
        ];
        for html in cases {
            assert_eq!(md2html(&html2md(html)), html, "html {html:?}");
        }
    }

    #[test]
    fn nasty_input_terminates_without_panicking() {
        let deep_b = "<b>".repeat(10_000) + "deep" + &"</b>".repeat(10_000);
        assert_eq!(html2md(&deep_b), "**deep**");
        let deep_unclosed = "<b><i>".repeat(10_000) + "x";
        assert_eq!(html2md(&deep_unclosed), "***x***");
        let deep_quote = "<blockquote>".repeat(10_000) + "q";
        let md = html2md(&deep_quote);
        assert!(md.ends_with("> q") && md.len() < 1000, "{md:?}");
        let deep_list = "<ul><li>".repeat(10_000) + "x";
        assert!(html2md(&deep_list).ends_with('x'));
        let deep_div = "<div>".repeat(10_000) + "d" + &"</span></p>".repeat(10_000);
        assert_eq!(html2md(&deep_div), "d");
        let mixed = "<p>".to_owned() + &"<b>".repeat(5_000) + &"<hr><li></i>".repeat(5_000);
        let _ = html2md(&mixed);
        let nasty = [
            "",
            "<",
            ">",
            "<<>>",
            "<<b>>x<</b>>",
            "&",
            "&&&;",
            "&#",
            "&#x",
            "&#;",
            "&#xZZ;",
            "<b",
            "<b class=",
            "<b class=\"unterminated",
            "<a href='x",
            "</",
            "</>",
            "</b",
            "<!--",
            "<!-->x",
            "<!--->y",
            "<!",
            "<?xml",
            "<script>never closed",
            "<style",
            "<p><p><p>",
            "</p></p>",
            "<li>stray</li>",
            "<td>stray cell</td>",
            "<tr><th>h",
            "<table><td>x",
            "<pre>",
            "<pre><code>",
            "<code>",
            "<a href=\"https://x\">",
            "<img>",
            "<img src>",
            "<br/><br/><br/>",
            "<ul></ul></ol><ol>",
            "<h1><h2>x",
            "<blockquote><li>x</blockquote>",
            "<mx-reply>",
            "</mx-reply>x",
            "\u{0}\u{1}<b>\u{feff}</b>",
            "é<é>ü</ü>",
            "<b\u{e9}>x",
            "<a =x>y</a>",
            "<a href=\"https://x\" href=\"javascript:y\">z</a>",
            "<table><caption># c",
            "<ol start=99999999999999999999><li>x",
            "<ol start=-3><li>x",
            "<h9>x</h9>",
        ];
        for html in nasty {
            let md = html2md(html);
            let _ = md2html(&md);
        }
        assert_eq!(html2md("<<>>"), "\\<\\<>>");
        assert_eq!(html2md("a & b"), "a & b");
        assert_eq!(html2md("<b>unclosed"), "**unclosed**");
        // Markdown side: deep nesting and odd input must not blow up either.
        let deep_md = [
            "> ".repeat(10_000),
            "- ".repeat(10_000),
            "*".repeat(20_000),
            "[".repeat(10_000),
        ];
        for md in deep_md {
            let _ = md2html(&md);
        }
        for md in [
            "",
            "\0",
            "<",
            "&",
            "`",
            "~~~",
            "|",
            "| a |\n|",
            "<!--",
            "<![CDATA[x]]>",
        ] {
            let _ = html2md(&md2html(md));
        }
    }
}
