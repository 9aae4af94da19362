"""The HTML rendering of a CDA document trusts nothing in it: every text is escaped, and only the
CDA narrative block's own elements become HTML elements, without their attributes."""

from __future__ import annotations

from lxml import etree

from hie.documents.render import render_cda
from hie.validators.xml import parse_xml
from tests.conftest import CdaFixtures


def rendered(cda: CdaFixtures, *edits: tuple[str, str]) -> str:
    parsed = parse_xml(cda.edited("C0053-valid.xml", *edits))
    assert parsed.tree is not None
    return render_cda(parsed.tree)


def test_the_header_and_every_section_are_shown(cda: CdaFixtures) -> None:
    page = rendered(cda)
    for shown in ("出院小结", "陈静", "女", "1989-06-30", "南京鼓楼医院", "普通外科", "刘医生"):
        assert shown in page
    assert "2019-07-10 17:30 – 2019-07-20 10:00" in page
    for title in ("入院诊断", "出院诊断", "住院过程"):
        assert f"<h2>{title}</h2>" in page


def test_hostile_narrative_markup_is_text_not_html(cda: CdaFixtures) -> None:
    hostile = (
        "<text>"
        '<paragraph styleCode="x" onclick="alert(1)">病情&lt;script&gt;alert(2)&lt;/script&gt;'
        "</paragraph>"
        '<script xmlns="http://www.w3.org/1999/xhtml">alert(3)</script>'
        '<linkHtml href="javascript:alert(4)">链接</linkHtml>'
        '<table><tr><td colspan="2" style="x">甲</td><td rowspan="1 onmouseover=y">乙</td></tr>'
        "</table>"
        '<list listType="ordered"><item>一</item></list>'
        '<renderMultiMedia referencedObject="i1"/>'
        "</text>"
    )
    page = rendered(
        cda,
        ("<title>出院小结</title>", "<title>出院&lt;img src=x onerror=alert(5)&gt;</title>"),
        ("<text>行腹腔镜阑尾切除术，术后第3天出院。</text>", hostile),
    )
    body = page.split("</head>", 1)[1]
    assert "<script" not in page
    assert "<img" not in page
    assert "javascript:" not in page
    assert "onclick" not in page and "onmouseover" not in page and "style=" not in body
    assert "病情&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "alert(3)" in page  # the foreign element's text, as text
    assert "<p>病情" in page
    assert '<td colspan="2">甲</td><td>乙</td>' in page
    assert "<ol><li>一</li></ol>" in page
    assert "出院&lt;img src=x onerror=alert(5)&gt;" in page
    # The page is well-formed enough for an HTML parser to find no element outside the whitelist.
    tree = etree.fromstring(page.encode(), etree.HTMLParser())
    tags = {element.tag for element in tree.iter() if isinstance(element.tag, str)}
    assert tags <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "dl", "dt", "dd",
        "section", "div", "p", "span", "strong", "table", "tr", "td", "th", "thead", "tbody",
        "ol", "ul", "li", "br", "sub", "sup", "small",
    }  # fmt: skip
