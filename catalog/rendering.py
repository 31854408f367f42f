"""Author-written Markdown to HTML that cannot run script: rendered, then sanitized by nh3."""
import markdown
import nh3

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1",
    "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span",
    "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"}, "img": {"src", "alt", "title"}, "code": {"class"},
    "th": {"align"}, "td": {"align"}, "h1": {"id"}, "h2": {"id"}, "h3": {"id"}, "h4": {"id"},
}


def render_docs(text: str) -> str:
    html = markdown.markdown(text or "", extensions=["fenced_code", "tables", "toc"])
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     url_schemes={"http", "https", "mailto"}, link_rel="nofollow noopener")
