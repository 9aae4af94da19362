"""The Subscription interactions (create, read, update, delete, search) and the matcher.

A subscription belongs to the token that wrote it: only that token (or an admin's) reads,
changes or deletes it, and it is delivered only what that token may read. Criteria are checked
on write with the search parser of ``GET /fhir/<Type>``, and matched with the same search
restricted to the event's resource (``_id``): a subscriber is told exactly what its search would
find.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from hie.audit import Agent
from hie.auth import Principal
from hie.catalog import Catalog
from hie.fhir.content import etag, http_date, served_form
from hie.fhir.responses import Answer, bundle, error
from hie.fhir.search import DEFAULT_COUNT, MAX_COUNT, SearchError, parse_search, whole_number
from hie.fhir.server import supported_types
from hie.outcome import OutcomeIssue, operation_outcome
from hie.storage import Connection, Database
from hie.storage.search import SearchQuery, found_each
from hie.storage.subscriptions import (
    NewSubscription,
    SubscriptionRow,
    delete_subscription,
    get_subscription,
    insert_subscription,
    list_subscriptions,
    replace_subscription,
)
from hie.subscriptions.endpoints import EndpointPolicy
from hie.subscriptions.model import SUBSCRIPTION, Problem, Spec, read_spec, split_criteria
from hie.validators.conformance import SERVER
from hie.validators.fhir import parse_json, validate_resource

# FHIR validity only: a Subscription is no record of an upload table.
_CONTEXT = replace(SERVER, platform_rules=False)
# Without a broker no `hie worker` runs, so nothing would ever deliver.
NO_BROKER = (
    "Subscriptions are delivered by `hie worker`, which needs HIE_BROKER_URL; this platform "
    "runs without a broker, so Subscriptions are not supported here"
)


@dataclass(frozen=True)
class Context:
    """What every interaction needs: where, in which zone, with which served types."""

    database: Database
    zone: ZoneInfo
    base: str
    catalog: Catalog
    deliverable: bool  # a broker is configured (a deliverer can run)
    agent: Agent  # who asks, for the audit trail
    endpoints: EndpointPolicy  # HIE_SUBSCRIPTION_ENDPOINTS


def _problems(problems: list[Problem], status: int = 400) -> Answer:
    body = operation_outcome(
        [OutcomeIssue("error", p.code, p.message, expression=p.expression) for p in problems]
    )
    return Answer(status, body, outcome=body)


def criteria_problem(spec_type: str, query: list[tuple[str, str]], types: list[str]) -> str | None:
    """Why a subscription's criteria cannot be searched (None: they can), in the words of the
    search API: an unknown parameter lists the valid ones."""
    if spec_type not in types:
        return f"resource type {spec_type!r} is not served here (served: {', '.join(types)})"
    try:
        parsed = parse_search(spec_type, query, institution_code="", zone=ZoneInfo("UTC"))
    except SearchError as exc:
        return str(exc)
    if parsed.unknown:
        return parsed.unknown[0]
    return None


def _served(row: dict[str, Any]) -> dict[str, Any]:
    resource = dict(row["resource"])
    resource["id"] = row["id"]
    resource["status"] = row["status"]
    resource.pop("error", None)
    if row["error"]:
        resource["error"] = row["error"]
    return served_form(resource, row["version"], row["last_updated"])


def _answer(status: int, row: dict[str, Any], base: str, *, write: bool = False) -> Answer:
    served = _served(row)
    path = f"{SUBSCRIPTION}/{row['id']}/_history/{row['version']}"
    headers = {"ETag": etag(row["version"]), "Last-Modified": http_date(row["last_updated"])}
    if write:
        headers["Location"] = f"{base}/{path}"
    return Answer(status, served, headers, path, served)


def _visible(row: dict[str, Any] | None, principal: Principal) -> bool:
    return row is not None and (
        principal.role == "admin" or row["owner_token_id"] == principal.token_id
    )


def _checked(
    ctx: Context, body: bytes, resource_id: str | None
) -> tuple[Spec, dict[str, Any]] | Answer:
    """The body read, validated as FHIR R4 and as a rest-hook Subscription; or the refusal."""
    if not ctx.deliverable:
        return error(400, "not-supported", NO_BROKER)
    resource, report = parse_json(body)
    if resource is None:
        return Answer(400, report.to_operation_outcome())
    if resource.get("resourceType") != SUBSCRIPTION:
        return error(
            400, "invalid", f"the body is a {resource.get('resourceType')!r}, not a {SUBSCRIPTION}"
        )
    if resource_id is not None and resource.get("id") != resource_id:
        return error(400, "invalid", f"the body's id must be {resource_id!r}, as in the URL")
    result = validate_resource(resource, catalog=ctx.catalog, context=_CONTEXT)
    if result.report.rejected:
        return Answer(422, result.report.to_operation_outcome())
    spec, problems = read_spec(resource)
    if spec is None:
        return _problems(problems)
    # Checked again, after DNS, at each delivery (deliverer.py): this refuses what is wrong on
    # its face (http, not listed, an address written in the URL) while the client is there.
    refused = ctx.endpoints.problem(spec.endpoint)
    if refused is not None:
        return _problems([Problem(refused, "Subscription.channel.endpoint", "forbidden")])
    why = criteria_problem(spec.resource_type, spec.query, supported_types(ctx.catalog))
    if why is not None:
        return _problems([Problem(f"criteria: {why}", "Subscription.criteria")])
    kept = {k: v for k, v in resource.items() if k not in ("id", "meta", "status", "error")}
    return spec, kept


def _new(subscription_id: str, owner: int, spec: Spec, resource: dict[str, Any]) -> NewSubscription:
    return NewSubscription(
        id=subscription_id,
        owner_token_id=owner,
        resource=resource,
        status=spec.status,
        resource_type=spec.resource_type,
        criteria=spec.criteria,
        endpoint=spec.endpoint,
        payload=spec.payload,
        headers=spec.headers,
    )


def create(ctx: Context, principal: Principal, body: bytes) -> Answer:
    checked = _checked(ctx, body, None)
    if isinstance(checked, Answer):
        return checked
    spec, resource = checked
    with ctx.database.transaction() as tx:
        row = insert_subscription(
            tx.conn, _new(str(uuid.uuid4()), principal.token_id, spec, resource)
        )
        _audit(tx.conn, ctx.agent, "subscription.create", row["id"], 201)
    return _answer(201, row, ctx.base, write=True)


def update(ctx: Context, principal: Principal, subscription_id: str, body: bytes) -> Answer:
    checked = _checked(ctx, body, subscription_id)
    if isinstance(checked, Answer):
        return checked
    spec, resource = checked
    with ctx.database.transaction() as tx:
        old = get_subscription(tx.conn, subscription_id, lock=True)
        if old is None:
            row = insert_subscription(
                tx.conn, _new(subscription_id, principal.token_id, spec, resource)
            )
            status = 201
        elif not _visible(old, principal):
            # Someone else's: as if it were not there, but its id is taken.
            return error(409, "conflict", f"{SUBSCRIPTION}/{subscription_id} is not yours")
        else:
            # The owner stays: an admin's change does not widen what it sees.
            replaced = replace_subscription(
                tx.conn, _new(subscription_id, old["owner_token_id"], spec, resource)
            )
            if replaced is None:  # cannot be: the row is locked
                raise RuntimeError(f"{SUBSCRIPTION}/{subscription_id} vanished")
            row, status = replaced, 200
        _audit(tx.conn, ctx.agent, "subscription.update", subscription_id, status)
    return _answer(status, row, ctx.base, write=True)


def read(ctx: Context, principal: Principal, subscription_id: str) -> Answer:
    with ctx.database.connection() as conn:
        row = get_subscription(conn, subscription_id)
    if not _visible(row, principal):
        return error(404, "not-found", f"{SUBSCRIPTION}/{subscription_id} is not known")
    return _answer(200, row, ctx.base)


def delete(ctx: Context, principal: Principal, subscription_id: str) -> Answer:
    with ctx.database.transaction() as tx:
        row = get_subscription(tx.conn, subscription_id, lock=True)
        if not _visible(row, principal):
            return error(404, "not-found", f"{SUBSCRIPTION}/{subscription_id} is not known")
        delete_subscription(tx.conn, subscription_id)
        _audit(tx.conn, ctx.agent, "subscription.delete", subscription_id, 204)
    return Answer(204)


def search_subscriptions(
    ctx: Context, principal: Principal, pairs: list[tuple[str, str]], self_url: str
) -> Answer:
    """A searchset of the caller's subscriptions (an admin's: all), by ``_id`` and ``status``."""
    ids: list[str] | None = None
    statuses: list[str] | None = None
    count, offset = DEFAULT_COUNT, 0
    try:
        for name, value in pairs:
            if name in ("_format", "_pretty") or value == "":
                continue
            if name == "_id":
                ids = value.split(",")
            elif name == "status":
                statuses = value.split(",")
            elif name == "_count":
                count = min(whole_number(value, name), MAX_COUNT)
            elif name == "_offset":
                offset = whole_number(value, name)
            else:
                return error(
                    400,
                    "not-supported",
                    f'Unknown search parameter "{name}" for resource type "{SUBSCRIPTION}". '
                    "Valid search parameters for this search are: [_id, status]",
                )
    except SearchError as exc:
        return error(400, "invalid", str(exc))
    owner = None if principal.role == "admin" else principal.token_id
    with ctx.database.connection() as conn:
        rows = list_subscriptions(
            conn, owner_token_id=owner, ids=ids, statuses=statuses, limit=count + 1, offset=offset
        )
    more = len(rows) > count
    entries = [
        {
            "fullUrl": f"{ctx.base}/{SUBSCRIPTION}/{row['id']}",
            "resource": _served(row),
            "search": {"mode": "match"},
        }
        for row in rows[:count]
    ]
    links = [("self", self_url)]
    if more:
        kept = [(k, v) for k, v in pairs if k != "_offset"]
        links.append(
            ("next", f"{ctx.base}/{SUBSCRIPTION}?{urlencode([*kept, ('_offset', offset + count)])}")
        )
    total = None if more else offset + len(entries)
    return Answer(200, bundle("searchset", entries, links=links, total=total))


def _audit(conn: Connection, agent: Agent, action: str, subscription_id: str, status: int) -> None:
    # In the write's transaction, ids only: the endpoint and headers may carry the subscriber's
    # secrets. Reads and refusals are recorded by the routes once answered.
    agent.record(conn, action, f"{SUBSCRIPTION}/{subscription_id}", status=status)


# -- matching -------------------------------------------------------------------------------


def sees(subscription: SubscriptionRow, institution_code: str) -> bool:
    """Whether the owner token may read ``institution_code``'s records (the same rule as a
    read by that token)."""
    owner = Principal(0, subscription.owner_role, subscription.owner_institution)
    return owner.can_read(institution_code)


def matching(
    conn: Connection,
    zone: ZoneInfo,
    subscriptions: list[SubscriptionRow],
    resources: Sequence[tuple[str, str]],
) -> list[list[SubscriptionRow]]:
    """For each (institution, resource id) of ``resources`` (all of the subscriptions' type),
    the subscriptions whose search, run in the institution's data restricted to that resource,
    finds it (the resource as it now stands in the search index), among those whose owner may
    read the institution. Each criteria is searched once per institution, restricted to all of
    that institution's ids at once, and all those searches go in one round trip."""
    ids: dict[str, dict[str, None]] = {}  # institution: its resource ids, in order, once each
    for institution, resource_id in resources:
        ids.setdefault(institution, {})[resource_id] = None
    readers = {
        institution: [s for s in subscriptions if sees(s, institution)] for institution in ids
    }
    asked: list[tuple[tuple[str, str], SearchQuery]] = []
    for institution, wanted in ids.items():
        for criteria in dict.fromkeys(s.criteria for s in readers[institution]):
            query = _restricted(criteria, zone, institution, list(wanted))
            if query is not None:
                asked.append(((criteria, institution), query))
    found = dict(
        zip(
            [key for key, _ in asked],
            found_each(conn, [query for _, query in asked]),
            strict=True,
        )
    )
    return [
        [s for s in readers[institution] if resource_id in found.get((s.criteria, institution), ())]
        for institution, resource_id in resources
    ]


def _restricted(
    criteria: str, zone: ZoneInfo, institution_code: str, resource_ids: list[str]
) -> SearchQuery | None:
    """The criteria's search in one institution, narrowed to these resource ids (None: it
    cannot find any of them)."""
    resource_type, query = split_criteria(criteria)
    try:
        parsed = parse_search(resource_type, query, institution_code=institution_code, zone=zone)
    except SearchError:
        return None  # checked on write; a parameter since removed matches nothing
    if parsed.unknown:
        return None
    own = parsed.query.ids
    narrowed = tuple(i for i in resource_ids if own is None or i in own)
    if not narrowed:
        return None
    parsed.query.ids = narrowed
    return parsed.query
