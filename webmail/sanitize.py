"""Mail bodies made safe to show: HTML through nh3 (the Rust `ammonia` sanitiser, which
parses like a browser, html5ever, and rebuilds the document from an allow-list), plain
text escaped and linkified.

What a sanitised HTML body may contain:

- the tags and attributes of ordinary mail (text formatting, lists, tables with their
  presentational attributes, images, links) and nothing else: no <script>, <style>,
  <iframe>, <object>, <embed>, <form>, <svg>, <math>, <base>, <meta>, no event handler,
  no `id` (no clobbering), and only http, https, mailto and tel links (`data:`, `cid:`,
  `javascript:` and relative links are removed);
- inline `style` attributes, limited to layout and typography properties (`position` and
  the like are dropped). Inline styles are needed: most mail is laid out with them. They are
  acceptable because the body is its own document, shown in a sandboxed iframe (no
  scripts, opaque origin) and served with a Content-Security-Policy of `default-src
  'none'`: a style cannot run code or load anything the policy does not allow, so even a
  `url()` we fail to recognise cannot reach a remote host while remote content is blocked.
  We still rewrite the `url()`s we do recognise so the "N remote images blocked" count is
  honest, and drop a style that tries `expression(`, `javascript:` or bindings.
- remote images (`src`, `srcset`, `background` with http/https) are replaced by a local
  placeholder unless the user allowed remote content (for this message or this sender)
  and counted; `cid:` images point to the message's own inline attachment; `data:` images
  are kept only for raster types (png, jpeg, gif, webp).
- links open in a new browsing context (`target=_blank`) with `rel="noopener noreferrer
  nofollow"`, so the opened page never learns where it was linked from nor gets a handle
  on the webmail.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import nh3
from markupsafe import Markup, escape

PLACEHOLDER = ("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='24' height='24'%3E"
               "%3Crect width='24' height='24' fill='%23e5e7eb'/%3E%3Cpath d='M4 18l5-6 4 4 3-3 4 5z' "
               "fill='%239ca3af'/%3E%3C/svg%3E")

TAGS = {
    "a", "abbr", "address", "b", "bdi", "bdo", "big", "blockquote", "br", "caption", "center", "cite", "code",
    "col", "colgroup", "dd", "del", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "font", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp",
    "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "tt", "u", "ul", "var", "wbr",
}
# Removed with everything inside them (the rest of the unknown tags lose the tag, keep the text).
DROP_WITH_CONTENT = {"script", "style", "iframe", "object", "embed", "applet", "noscript", "noembed",
                     "noframes", "template", "svg", "math", "title", "head", "select", "textarea", "button"}

_PRESENTATION = {"align", "valign", "width", "height", "bgcolor", "border", "dir", "lang", "title", "style",
                 "class"}
ATTRIBUTES: dict[str, set[str]] = {
    "*": _PRESENTATION,
    "a": {"href", "name"},
    "img": {"src", "srcset", "alt", "hspace", "vspace"},
    "table": {"cellpadding", "cellspacing", "frame", "rules", "summary", "background"},
    "td": {"colspan", "rowspan", "nowrap", "background", "headers", "scope"},
    "th": {"colspan", "rowspan", "nowrap", "background", "headers", "scope"},
    "tr": {"background"},
    "col": {"span"},
    "colgroup": {"span"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value"},
    "blockquote": {"cite", "type"},
    "q": {"cite"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
}
STYLE_PROPERTIES = {
    "background", "background-color", "background-image", "background-position", "background-repeat",
    "background-size", "border", "border-bottom", "border-bottom-color", "border-bottom-style",
    "border-bottom-width", "border-collapse", "border-color", "border-left", "border-left-color",
    "border-left-style", "border-left-width", "border-radius", "border-right", "border-right-color",
    "border-right-style", "border-right-width", "border-spacing", "border-style", "border-top",
    "border-top-color", "border-top-style", "border-top-width", "border-width", "caption-side", "clear",
    "color", "direction", "display", "empty-cells", "float", "font", "font-family", "font-size", "font-style",
    "font-variant", "font-weight", "height", "letter-spacing", "line-height", "list-style",
    "list-style-position", "list-style-type", "margin", "margin-bottom", "margin-left", "margin-right",
    "margin-top", "max-height", "max-width", "min-height", "min-width", "mso-line-height-rule", "opacity",
    "overflow", "padding", "padding-bottom", "padding-left", "padding-right", "padding-top", "table-layout",
    "text-align", "text-decoration", "text-indent", "text-transform", "vertical-align", "white-space",
    "width", "word-break", "word-spacing", "word-wrap",
}
URL_SCHEMES = {"http", "https", "mailto", "tel", "cid", "data"}  # cid/data: images only (see _filter)
SAFE_DATA_IMAGE = ("data:image/png", "data:image/jpeg", "data:image/jpg", "data:image/gif", "data:image/webp")
_DANGEROUS_STYLE = ("expression", "javascript:", "vbscript:", "behavior", "-moz-binding", "@import")
# A CSS url() whose target is on the network (absolute or protocol-relative).
_REMOTE_CSS_URL = re.compile(r"""url\(\s*(['"]?)\s*(?:https?:)?//[^)]*\)""", re.IGNORECASE)


def _remote(url: str) -> bool:
    low = url.strip().lower()
    return low.startswith(("http:", "https:", "//"))


@dataclass(slots=True)
class Sanitised:
    html: str
    blocked: int  # remote images replaced by the placeholder (0 when remote content is allowed)
    remote: int  # remote images in the message, blocked or not


def sanitise_html(html: str, *, allow_remote: bool = False,
                  cid_url: Callable[[str], str | None] | None = None) -> Sanitised:
    """The HTML body of a mail made safe (see the module docstring). `cid_url` maps a
    Content-ID (without `cid:`) to the URL of the inline attachment, or None."""
    counts = {"blocked": 0, "remote": 0}
    ours: set[str] = set()  # the relative URLs we wrote ourselves (the mail's own are removed)

    def image(url: str) -> str | None:
        low = url.strip().lower()
        if low.startswith("cid:"):
            local = cid_url(url.strip()[4:].strip("<>")) if cid_url is not None else None
            if local is not None:
                ours.add(local)
            return local
        if low.startswith("data:"):
            return url if low.startswith(SAFE_DATA_IMAGE) else None
        if _remote(url):
            counts["remote"] += 1
            if allow_remote:
                return url
            counts["blocked"] += 1
            return PLACEHOLDER
        return None

    def srcset(value: str) -> str | None:
        candidates = [c.strip() for c in value.split(",") if c.strip()]
        urls = [c.split()[0] for c in candidates]
        if not urls or not all(_remote(u) for u in urls):
            return None  # cid/data/relative candidates: the plain src is enough
        counts["remote"] += 1
        if allow_remote:
            return value
        counts["blocked"] += 1
        return None

    def style(value: str) -> str | None:
        low = value.lower()
        if any(bad in low for bad in _DANGEROUS_STYLE) or "\\" in value:
            return None  # escapes and legacy script hooks: no legitimate mail needs them
        if _REMOTE_CSS_URL.search(value):
            counts["remote"] += 1
            if not allow_remote:
                counts["blocked"] += 1
                return _REMOTE_CSS_URL.sub("none", value)
        return value

    def attribute(tag: str, attr: str, value: str) -> str | None:
        if attr == "style":
            return style(value)
        if tag == "img" and attr == "src":
            return image(value)
        if attr == "srcset":
            return srcset(value)
        if attr == "background":
            if not _remote(value):
                return None
            new = image(value)
            return None if new == PLACEHOLDER else new
        if attr in ("href", "cite"):
            low = value.strip().lower()
            return None if low.startswith(("data:", "cid:")) else value
        return value

    clean = nh3.clean(
        html, tags=TAGS, clean_content_tags=DROP_WITH_CONTENT, attributes=ATTRIBUTES, attribute_filter=attribute,
        strip_comments=True, link_rel="noopener noreferrer nofollow", url_schemes=URL_SCHEMES,
        filter_style_properties=STYLE_PROPERTIES, url_relative=lambda url: url if url in ours else None,
        set_tag_attribute_values={"a": {"target": "_blank"}})
    return Sanitised(clean, counts["blocked"], counts["remote"])


# What the compose editor (static/compose.js) writes: text formatting, lists, quotes and
# links; and tables, which it does not make but which the HTML mail it quotes in a reply
# or a forward is often laid out with (without them, cells' words would run together).
# Nothing loads anything (no images, no styles), nothing runs.
COMPOSE_TAGS = {"a", "b", "strong", "i", "em", "u", "s", "strike", "p", "div", "br", "ul", "ol", "li",
                "blockquote", "pre", "code", "h1", "h2", "h3", "table", "thead", "tbody", "tfoot", "tr", "td",
                "th", "caption"}
COMPOSE_SCHEMES = {"http", "https", "mailto", "tel"}


def sanitise_composed(html: str) -> str:
    """HTML written in the compose editor, reduced to COMPOSE_TAGS, links with their address
    only; what the browser sends is never trusted (a pasted page, a forged POST)."""
    return nh3.clean(html, tags=COMPOSE_TAGS, clean_content_tags=DROP_WITH_CONTENT, attributes={"a": {"href"}},
                     strip_comments=True, link_rel="noopener noreferrer", url_schemes=COMPOSE_SCHEMES,
                     url_relative=lambda _url: None).strip()


_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


def linkify_text(text: str) -> Markup:
    """Plain text as HTML: escaped first, then http(s) and www. addresses made links (the
    link is built from the escaped text, so nothing in it can open a tag or an attribute)."""
    out: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        url = match.group(0)
        while url and url[-1] in _TRAILING:
            url = url[:-1]
        if not url:
            continue
        start, end = match.start(), match.start() + len(url)
        href = url if url.lower().startswith("http") else "https://" + url
        out.append(str(escape(text[last:start])))
        out.append(f'<a href="{escape(href)}" target="_blank" rel="noopener noreferrer nofollow">{escape(url)}</a>')
        last = end
    out.append(str(escape(text[last:])))
    return Markup("".join(out))
