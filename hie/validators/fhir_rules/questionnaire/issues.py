"""How the family's errors are reported, and the values they quote worded for a reader."""

from __future__ import annotations

from typing import Any

from hie.validators.report import Report, Severity


def report_error(report: Report, rule: str, path: str, message: str, code: str = "invalid") -> None:
    report.add(Severity.ERROR, rule, f"{path}: {message}", code=code, expression=path)


def shown(value: Any) -> str:
    if isinstance(value, dict):
        if "value" in value:
            return f"{value.get('value')} {value.get('code') or value.get('unit') or ''}".strip()
        if "code" in value or "system" in value:
            return f"{value.get('system', '')}#{value.get('code', '')}"
        if "reference" in value:
            return str(value.get("reference"))
        return "the value"
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def item_text(item: dict[str, Any]) -> str:
    return f"item '{item.get('linkId')}'"
