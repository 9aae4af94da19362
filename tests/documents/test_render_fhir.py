"""The HTML rendering of a FHIR document Bundle trusts nothing in it: each section's narrative
goes through the hardened XML parser, only the XHTML elements FHIR R4 allows in a narrative stay
elements (without their attributes), links and images reach nothing, and every text is escaped."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from lxml import etree

from hie.documents.render import render_document, render_fhir_document

FIXTURE = Path(__file__).parent.parent / "fixtures" / "fhir" / "document-c0002.json"
XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "dl", "dt", "dd"}


def fixture() -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return bundle


def with_sections(*sections: dict[str, Any]) -> dict[str, Any]:
    bundle = copy.deepcopy(fixture())
    bundle["entry"][0]["resource"]["section"] = list(sections)
    return bundle


def body_tags(page: str) -> set[str]:
    tree = etree.fromstring(page.encode(), etree.HTMLParser())
    return {e.tag for e in tree.iter() if isinstance(e.tag, str)}


def body_attributes(page: str) -> set[str]:
    tree = etree.fromstring(page.encode(), etree.HTMLParser())
    return {name for e in tree.iter() if isinstance(e.tag, str) for name in e.attrib}


def test_the_fixture_document_shows_its_header_and_section() -> None:
    page = render_fhir_document(fixture(), institution="省人民医院")
    assert "<title>门（急）诊病历</title>" in page and "<h1>门（急）诊病历</h1>" in page
    for shown in ("男 male", "1949-12-31", "省人民医院", "李医生", "2019-07-01 09:30", "final"):
        assert shown in page
    assert "C0002 门（急）诊病历" in page
    assert "<section><h2>主诉</h2><div>头痛三天</div></section>" in page
    # The resident ID number in the Patient is not a header field.
    assert "11010519491231002X" not in page


def test_the_same_page_comes_from_the_bytes_iti68_serves() -> None:
    data = json.dumps(fixture(), ensure_ascii=False).encode()
    assert render_document("application/fhir+json", data) == render_fhir_document(fixture())
    assert render_document("application/fhir+json", b"[1]") is None
    assert render_document("application/pdf", data) is None


def test_hostile_narrative_is_neutralized() -> None:
    div = (
        f'<div {XHTML}><p onclick="alert(1)" style="background:url(https://evil.example/x)">'
        "病情&lt;script&gt;alert(2)&lt;/script&gt;&#60;b&#62;</p>"
        "<script>alert(3)</script>"
        '<img src="https://evil.example/t.png" onerror="alert(4)" alt="图"/>'
        '<a href="javascript:alert(5)">点我</a>'
        '<a href="&#106;avascript:alert(6)">再点</a>'
        '<a href="https://example.org/guide">指南</a>'
        '<iframe src="https://evil.example/">框</iframe>'
        '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(7)"><text>矢量</text></svg>'
        '<table><tr><td colspan="2" onmouseover="x">甲</td><td rowspan="1 x=y">乙</td></tr></table>'
        '<ul><li><span style="color:red">一</span></li></ul>'
        "<tt>固定</tt>"
        "</div>"
    )
    doctype = (
        '<!DOCTYPE div [<!ENTITY x "&#60;script&#62;alert(8)&#60;/script&#62;">]>'
        f"<div {XHTML}>&x;</div>"
    )
    bundle = with_sections(
        {"title": "恶意<img src=x onerror=alert(9)>", "text": {"status": "generated", "div": div}},
        {"title": "实体", "text": {"status": "generated", "div": doctype}},
        {"title": "坏的", "text": {"status": "generated", "div": "<div>&nbsp;</div>"}},
    )
    bundle["entry"][0]["resource"]["title"] = "</title><script>alert(10)</script>"
    page = render_fhir_document(bundle)
    body = page.split("</head>", 1)[1]
    assert "<script" not in page and "<iframe" not in page and "<img" not in page
    assert "<svg" not in page and "<a " not in page
    assert "javascript:" not in page and "url(" not in body
    assert "evil.example" not in page
    assert body_attributes(page) <= {"lang", "charset", "colspan"}
    assert "&lt;/title&gt;&lt;script&gt;alert(10)&lt;/script&gt;" in page
    assert "<p>病情&lt;script&gt;alert(2)&lt;/script&gt;&lt;b&gt;</p>" in page
    assert "alert(3)" in page  # a forbidden element's text stays, as text
    assert "[图]" in page  # an image is its alt text
    assert "<span>点我</span><span>再点</span>" in page
    assert "<span>指南 (https://example.org/guide)</span>" in page  # the address as words
    assert '<td colspan="2">甲</td><td>乙</td>' in page
    assert "<ul><li><span>一</span></li></ul>" in page and "<code>固定</code>" in page
    assert "alert(8)" not in page  # the DOCTYPE is refused, its entity never expanded
    assert page.count("the narrative is not well-formed XHTML") == 2
    assert "恶意&lt;img src=x onerror=alert(9)&gt;" in page
    assert body_tags(page) <= PAGE_TAGS | {
        "section", "div", "p", "span", "table", "tr", "td", "ul", "li", "code",
    }  # fmt: skip


def test_nested_sections_and_sections_without_narrative() -> None:
    bundle = with_sections(
        {
            "title": "诊断",
            "section": [
                {
                    "code": {"coding": [{"code": "29548-5", "display": "Diagnosis"}]},
                    "entry": [
                        {"reference": "urn:uuid:8f0c7e39-3c1f-4b5e-9d2f-000000000003"},
                        {"reference": "Condition/c1", "display": "高血压 <b>"},
                    ],
                },
                {"title": "空", "emptyReason": {"text": "未检查"}},
            ],
        }
    )
    page = render_fhir_document(bundle)
    assert "<section><h2>诊断</h2><section><h3>29548-5 Diagnosis</h3><ul>" in page
    assert "<li>Encounter — urn:uuid:8f0c7e39-3c1f-4b5e-9d2f-000000000003</li>" in page
    assert "<li>Condition — 高血压 &lt;b&gt; — Condition/c1</li>" in page
    assert "<h3>空</h3><p>未检查</p>" in page


def test_an_official_r4_document_example_renders(shared_data: Path) -> None:
    bundle = json.loads(
        (shared_data / "fhir-r4-examples" / "Bundle-father.json").read_text(encoding="utf-8")
    )
    assert bundle["type"] == "document"
    page = render_fhir_document(bundle)
    assert "<h1>Discharge Summary</h1>" in page
    for shown in ("Eve Everywoman", "女 female", "1955-01-06", "2013-02-01 12:30", "final"):
        assert shown in page
    assert "28655-9 Discharge Summary from Responsible Clinician" in page
    for title in ("Reason for admission", "Medications on Discharge", "Known allergies"):
        assert f"<h2>{title}</h2>" in page
    assert "<td>Theophylline 200mg BD after meals</td>" in page
    assert body_tags(page) <= PAGE_TAGS | {"section", "div", "table", "thead", "tbody", "tr", "td"}
