"""What every document rendering shares: the page frame (one style, one header list) and the
escaping of everything a document says. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

STYLE = (
    "body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;margin:2rem;max-width:60rem}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:.25rem 1rem}dt{font-weight:600}"
    "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2rem .4rem}"
    "section{margin-top:1rem}"
)
# The header's labels, said alike for every kind of document.
PATIENT = "患者 Patient"
GENDER = "性别 Gender"
BORN = "出生日期 Born"
AGE = "年龄 Age"
INSTITUTION = "机构 Institution"
DEPARTMENT = "科室 Department"
AUTHOR = "作者 Author"
DOCUMENT_TIME = "文档时间 Document time"
ENCOUNTER = "就诊时间 Encounter"
TYPE = "文档类型 Type"
STATUS = "状态 Status"

Rows = Sequence[tuple[str, str | None]]


def text(value: str | None) -> str:
    """A document's words as HTML text (quotes too: some land in attributes' neighbourhood)."""
    return escape(value or "")


def heading(depth: int, title: str) -> str:
    level = min(depth, 6)
    return f"<h{level}>{text(title)}</h{level}>"


def page(title: str, rows: Rows, sections: Sequence[str]) -> str:
    """The whole page: the title, the header's non-empty rows, then the sections' HTML (already
    made safe by the caller's renderer)."""
    header = "".join(
        f"<dt>{text(label)}</dt><dd>{text(value)}</dd>" for label, value in rows if value
    )
    return (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{text(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{text(title)}</h1><dl>{header}</dl>{''.join(sections)}</body></html>"
    )
