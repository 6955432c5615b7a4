//! Matrix HTML → GFM markdown: the converter's state (open elements, the frames that prefix
//! lines, lists, tables, pending markers) and its handling of tokens; [`elements`] opens and
//! closes elements, [`output`] writes the markdown.

mod elements;
mod output;

use super::escape::is_html_space;
use super::tokenizer::{Token, Tokenizer};

/// Schemes kept for `<img src>` when converting to markdown.
const IMAGE_SCHEMES: &[&str] = &["mxc", "https", "http"];
/// Most open HTML elements tracked; deeper start tags are ignored (their text is kept).
const MAX_DEPTH: usize = 1000;
/// Most nested blockquotes and list items; deeper ones are flattened into paragraphs.
const MAX_FRAMES: usize = 64;

/// Matrix HTML → GFM markdown. Unknown tags are dropped keeping their text; `<mx-reply>` blocks (reply fallbacks) are removed entirely.
pub fn html_to_markdown(html: &str) -> String {
    Converter::new().run(html)
}

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
}
