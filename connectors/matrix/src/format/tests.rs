//! Tests of both conversions, reply fallbacks, tables, round trips and hostile input.

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
