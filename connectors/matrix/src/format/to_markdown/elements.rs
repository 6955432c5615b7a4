//! How the converter opens and closes elements: implied end tags, inline markers (emphasis,
//! links), line breaks, rules, images, task checkboxes, lists, tables and code.

use std::fmt::Write as _;

use super::{
    Action, Align, Capture, Converter, El, Frame, FrameKind, IMAGE_SCHEMES, ListCtx, MAX_FRAMES,
    Open, Sep, State, TableState, alignment, attr, language,
};
use crate::format::LINK_SCHEMES;
use crate::format::escape::{
    EscapeCtx, escape_into, has_scheme, is_html_space, line_start_escape, longest_run,
    push_destination, push_title,
};

impl Converter {
    pub(super) fn imply_end_tags(&mut self, el: El) {
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

    pub(super) fn open_action(&mut self, el: El, name: &str, attrs: &[(String, String)]) -> Action {
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

    pub(super) fn close(&mut self, open: Open) {
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
    pub(super) fn split_markers(&mut self) {
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

    pub(super) fn line_break(&mut self) {
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

    pub(super) fn rule(&mut self) {
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

    pub(super) fn image(&mut self, attrs: &[(String, String)]) {
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

    pub(super) fn checkbox(&mut self, attrs: &[(String, String)]) {
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

    pub(super) fn at_item_start(&self) -> bool {
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
}
