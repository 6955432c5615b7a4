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

mod escape;
#[cfg(test)]
mod tests;
mod to_html;
mod to_markdown;
mod tokenizer;

pub use to_html::markdown_to_html;
pub use to_markdown::html_to_markdown;

/// Schemes Matrix allows in `<a href>` (client-server spec, "m.room.message msgtypes").
const LINK_SCHEMES: &[&str] = &["https", "http", "ftp", "mailto", "magnet"];

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
