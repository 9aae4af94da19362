"""The audit trail as FHIR R4 ``AuditEvent``: read and search (``agent``, ``entity``, ``date``,
``outcome``, ``action``, paged by ``_count`` and ``_offset``), for admins and regulators only.
AuditEvent is served but never written by clients: the server writes the trail itself."""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import simplejson

from hie.fhir.content import instant
from hie.fhir.dates import date_range
from hie.fhir.responses import Answer, bundle, error
from hie.fhir.search import DEFAULT_COUNT, MAX_COUNT, PREFIXES
from hie.storage import Database
from hie.storage.audit import EventFilter, action_code, count_events, get_event, search_events

AUDIT_EVENT = "AuditEvent"
SEARCH_PARAMETERS = (
    ("agent", "reference", "who: a token id (12 or token:12) or a local user (cli:name)"),
    ("entity", "reference", "what: a resource (Patient/123), or a type (Patient)"),
    ("date", "date", "when the entry was recorded, with prefixes eq, ge, gt, le, lt"),
    ("outcome", "token", "0 success, 4 minor failure (refused, not found), 8 serious failure"),
    ("action", "token", "C, R, U, D or E"),
)
_IGNORED = ("_format", "_pretty")

_AUDIT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_DICOM = "http://dicom.nema.org/resources/ontology/DCM"
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_HIE_ACTION = "urn:hie:audit-action"
_ACTOR = "urn:hie:actor"
_INTERACTIONS = {
    "read": "read",
    "vread": "vread",
    "search": "search-type",
    "history": "history-type",
    "create": "create",
    "update": "update",
    "delete": "delete",
    "patch": "patch",
    "operation": "operation",
    "transaction": "transaction",
    "batch": "batch",
}


class AuditSearchError(ValueError):
    """A search parameter the AuditEvent search cannot use."""


def _type(action: str) -> dict[str, str]:
    verb = action.rsplit(".", 1)[-1]
    if verb in ("signin", "signout", "signin_failed", "signin_locked", "login", "logout"):
        return {"system": _DICOM, "code": "110114", "display": "User Authentication"}
    if verb == "export":
        return {"system": _DICOM, "code": "110106", "display": "Export"}
    if action.startswith(("fhir.", "cda.")):
        return {"system": _AUDIT_TYPE, "code": "rest", "display": "RESTful Operation"}
    if action.startswith(("dashboard.", "audit.", "report.")):
        return {"system": _DICOM, "code": "110112", "display": "Query"}
    return {"system": _DICOM, "code": "110100", "display": "Application Activity"}


def _network(address: str) -> dict[str, str]:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return {"address": address, "type": "1"}  # a machine name
    return {"address": address, "type": "2"}  # an IP address


def _detail_value(value: Any) -> str:
    return value if isinstance(value, str) else simplejson.dumps(value, ensure_ascii=False)


def audit_event(row: dict[str, Any]) -> dict[str, Any]:
    """One audit entry as an R4 AuditEvent."""
    action: str = row["action"]
    detail: dict[str, Any] = dict(row["detail"] or {})
    subtype = [{"system": _HIE_ACTION, "code": action}]
    if action.startswith("fhir.") and action[5:] in _INTERACTIONS:
        subtype.insert(0, {"system": _INTERACTION, "code": _INTERACTIONS[action[5:]]})
    who = row["actor"] + (f" ({row['institution']})" if row["institution"] else "")
    agent: dict[str, Any] = {
        "who": {"identifier": {"system": _ACTOR, "value": row["actor"]}, "display": who},
        "requestor": True,
    }
    if row["role"]:
        agent["role"] = [{"text": row["role"]}]
    if row["address"]:
        agent["network"] = _network(row["address"])
    event: dict[str, Any] = {
        "resourceType": AUDIT_EVENT,
        "id": str(row["id"]),
        "meta": {"lastUpdated": instant(row["at"])},
        "type": _type(action),
        "subtype": subtype,
        "action": action_code(action),
        "recorded": instant(row["at"]),
        "outcome": str(row["outcome"]),
        "agent": [agent],
        "source": {
            "observer": {"display": "hie"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
    }
    if "status" in detail:
        event["outcomeDesc"] = f"HTTP {detail['status']}"
    query = detail.pop("query", None)
    entities: list[dict[str, Any]] = []
    target = row["target"]
    if target or query:
        entity: dict[str, Any] = {}
        if target and "/" in target:
            entity["what"] = {"reference": target}
        elif target:
            entity["what"] = {"display": target}
        if query:
            entity["query"] = base64.b64encode(str(query).encode()).decode()
        entities.append(entity)
    for ref in detail.pop("entities", []) or []:
        if ref != target:
            entities.append({"what": {"reference": str(ref)}})
    if detail and entities:
        entities[0]["detail"] = [
            {"type": str(k), "valueString": _detail_value(v)} for k, v in sorted(detail.items())
        ]
    elif detail:
        entities.append(
            {
                "detail": [
                    {"type": str(k), "valueString": _detail_value(v)}
                    for k, v in sorted(detail.items())
                ]
            }
        )
    if entities:
        event["entity"] = entities
    return event


def _agent(value: str) -> str:
    value = value.strip()
    if value.isascii() and value.isdigit():
        return f"token:{value}"
    return value.removeprefix(f"{_ACTOR}|")


def _date(value: str, zone: ZoneInfo, f: EventFilter) -> EventFilter:
    prefix = value[:2] if value[:2] in PREFIXES else "eq"
    text = value[2:] if value[:2] in PREFIXES else value
    found = date_range(text, zone)
    if found is None or prefix not in ("eq", "ge", "gt", "le", "lt"):
        raise AuditSearchError(
            f"date={value}: use a FHIR date with eq, ge, gt, le or lt (e.g. ge2026-12-01)"
        )
    low, high = found
    since: datetime | None = None
    until: datetime | None = None
    if prefix == "eq":
        since, until = low, high
    elif prefix == "ge":
        since = low
    elif prefix == "gt":
        since = high
    elif prefix == "le":
        until = high
    else:
        until = low
    if since is not None and (f.since is None or since > f.since):
        f = replace(f, since=since)
    if until is not None and (f.until is None or until < f.until):
        f = replace(f, until=until)
    return f


def _number(name: str, value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise AuditSearchError(f"{name} must be a whole number, not {value!r}")
    return int(value)


def parse_audit_search(
    pairs: list[tuple[str, str]], zone: ZoneInfo
) -> tuple[EventFilter, int, int]:
    """The filter, page size and offset of an AuditEvent search; raises AuditSearchError."""
    f, count, offset = EventFilter(), DEFAULT_COUNT, 0
    for name, value in pairs:
        if name == "agent":
            f = replace(f, actor=_agent(value))
        elif name == "entity":
            f = replace(f, target=value.strip())
        elif name == "date":
            f = _date(value, zone, f)
        elif name == "outcome":
            f = replace(f, outcome=_number(name, value))
        elif name == "action":
            f = replace(f, action=value.strip())
        elif name == "_count":
            count = min(_number(name, value), MAX_COUNT)
        elif name == "_offset":
            offset = _number(name, value)
        elif name not in _IGNORED:
            raise AuditSearchError(
                f"AuditEvent has no search parameter {name!r}; use "
                + ", ".join(p[0] for p in SEARCH_PARAMETERS)
            )
    return f, count, offset


def search_audit(
    database: Database, zone: ZoneInfo, base: str, pairs: list[tuple[str, str]], self_url: str
) -> Answer:
    """A searchset of AuditEvents, newest first."""
    try:
        f, count, offset = parse_audit_search(pairs, zone)
    except AuditSearchError as exc:
        return error(400, "invalid", str(exc))
    with database.connection() as conn:
        if count == 0:
            return Answer(200, bundle("searchset", [], total=count_events(conn, f)))
        rows = search_events(conn, f, limit=count + 1, offset=offset)
        more = len(rows) > count
        rows = rows[:count]
        total = len(rows) + offset if not more else count_events(conn, f)
    entries = [
        {
            "fullUrl": f"{base}/{AUDIT_EVENT}/{row['id']}",
            "resource": audit_event(row),
            "search": {"mode": "match"},
        }
        for row in rows
    ]
    links = [("self", self_url)]
    if more:
        kept = [(k, v) for k, v in pairs if k != "_offset"]
        links.append(
            ("next", f"{base}/{AUDIT_EVENT}?{urlencode([*kept, ('_offset', offset + count)])}")
        )
    return Answer(200, bundle("searchset", entries, links=links, total=total))


def read_audit(database: Database, event_id: str) -> Answer:
    if not (event_id.isascii() and event_id.isdigit()):
        return error(404, "not-found", f"{AUDIT_EVENT}/{event_id} is not known")
    with database.connection() as conn:
        row = get_event(conn, int(event_id))
    if row is None:
        return error(404, "not-found", f"{AUDIT_EVENT}/{event_id} is not known")
    return Answer(200, audit_event(row))


def capability_entry() -> dict[str, Any]:
    """AuditEvent in the CapabilityStatement: read and search only."""
    return {
        "type": AUDIT_EVENT,
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "documentation": "The platform's audit trail (admin and regulator tokens); written by "
        "the server only.",
        "searchParam": [
            {"name": name, "type": kind, "documentation": text}
            for name, kind, text in SEARCH_PARAMETERS
        ],
    }
