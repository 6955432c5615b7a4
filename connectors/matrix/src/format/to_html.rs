//! Markdown (GFM) → Matrix HTML, with pulldown-cmark: raw HTML is shown as text, links keep only
//! the schemes Matrix allows, and images that are not `mxc://` become links.

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd, html};

use super::LINK_SCHEMES;
use super::escape::has_scheme;

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
