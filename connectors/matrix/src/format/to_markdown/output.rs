//! How the converter writes markdown: block separation, line prefixes of quotes and list items,
//! and inline content with its pending markers and escaping.

use super::{Converter, FrameKind, Sep, State};
use crate::format::escape::{EscapeCtx, escape_into};

impl Converter {
    pub(super) fn request(&mut self, sep: Sep) {
        self.sep_depth = if self.sep == Sep::None {
            self.frames.len()
        } else {
            self.sep_depth.min(self.frames.len())
        };
        self.sep = self.sep.max(sep);
    }

    /// Ends the current run of inline content in the current frame.
    pub(super) fn block_boundary(&mut self) {
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
    pub(super) fn block_sep(&mut self, interrupts: bool) -> bool {
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
    pub(super) fn begin_line(&mut self) {
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
    pub(super) fn write_line(&mut self, line: &str) {
        self.begin_line();
        self.out.push_str(line);
        self.line_has_content = true;
        self.request(Sep::Newline);
    }

    /// Where inline content goes: the open table cell, nowhere (table outside cells) or `out`.
    pub(super) fn target(&mut self) -> Option<&mut String> {
        match &mut self.table {
            Some(table) => table.cell.as_mut(),
            None => Some(&mut self.out),
        }
    }

    /// Writes what goes before inline content (separators, space, opening markers); returns
    /// false when the content has nowhere to go.
    pub(super) fn start_atom(&mut self) -> bool {
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
    pub(super) fn write_atom(&mut self, markdown: &str) {
        if self.start_atom()
            && let Some(target) = self.target()
        {
            target.push_str(markdown);
            self.line_has_content = true;
        }
    }

    pub(super) fn write_word(&mut self, word: &str) {
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
