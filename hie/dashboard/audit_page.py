"""The audit trail page for regulators and administrators: filters (who, action, target, days,
failures only), pages of entries newest first, and a CSV download that is itself audited.

``record_view`` is how every dashboard page records what was looked at (and by whom, from where).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request

from hie.audit import Agent, address_of, record_read
from hie.auth import Principal
from hie.dashboard.exports import Grid
from hie.dashboard.i18n import Translator
from hie.storage import Connection, Database
from hie.storage.audit import EventFilter, search_events

PAGE_SIZE = 50
EXPORT_LIMIT = 10_000
FILTERS = ("actor", "action", "target", "from", "to", "failed")


def record_view(
    database: Database,
    request: Request,
    principal: Principal,
    action: str,
    target: str | None,
    *,
    status: int = 200,
    **detail: Any,
) -> None:
    """One dashboard look-up in the audit trail (after the permission check, refused or not)."""
    agent = Agent.of(principal, address_of(request))
    record_read(database, agent, action, target, status=status, **detail)


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


@dataclass
class AuditPage:
    filters: dict[str, str]  # as given, for the form and the links
    entries: list[dict[str, Any]]
    page: int
    more: bool
    grid: Grid


def event_filter(params: dict[str, str], zone: ZoneInfo) -> EventFilter:
    """The filter the page's query asks for; days are the platform's calendar days."""
    first, last = _day(params.get("from")), _day(params.get("to"))
    return EventFilter(
        actor=params.get("actor") or None,
        action=params.get("action") or None,
        target=params.get("target") or None,
        since=datetime.combine(first, time(), zone) if first else None,
        until=datetime.combine(last + timedelta(days=1), time(), zone) if last else None,
        failed=params.get("failed") == "1",
    )


def _grid(rows: list[dict[str, Any]], zone: ZoneInfo, t: Translator) -> Grid:
    headings = [
        "id",
        t("audit.time"),
        t("audit.actor"),
        t("audit.role"),
        t("audit.institution"),
        t("audit.address"),
        t("audit.action"),
        t("audit.target"),
        t("audit.outcome"),
        t("audit.detail"),
    ]
    return Grid(
        "entries",
        t("audit.title"),
        headings,
        [
            [
                r["id"],
                r["at"].astimezone(zone).isoformat(timespec="seconds"),
                r["actor"],
                r["role"] or "",
                r["institution"] or "",
                r["address"] or "",
                r["action"],
                r["target"] or "",
                r["outcome"],
                json.dumps(r["detail"], ensure_ascii=False, sort_keys=True),
            ]
            for r in rows
        ],
    )


def audit_page(
    conn: Connection,
    params: dict[str, str],
    zone: ZoneInfo,
    t: Translator,
    *,
    export: bool = False,
) -> AuditPage:
    f = event_filter(params, zone)
    asked = params.get("page", "")
    page = max(int(asked), 1) if asked.isascii() and asked.isdigit() else 1
    if export:
        rows = search_events(conn, f, limit=EXPORT_LIMIT)
        more = False
    else:
        rows = search_events(conn, f, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
    entries = [
        {**r, "local_time": r["at"].astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")} for r in rows
    ]
    filters = {k: params[k] for k in FILTERS if params.get(k)}
    return AuditPage(filters, entries, page, more, _grid(rows, zone, t))
