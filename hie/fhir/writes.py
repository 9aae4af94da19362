"""The FHIR interactions that change one resource: create (conditional too), update (client ids
and conditional update), delete (conditional too). CPU work (parsing, validation) happens before
the write transaction. ``$validate`` is in operations.py, PATCH in patching.py."""

from __future__ import annotations

from typing import Any

from hie.fhir.calls import Call
from hie.fhir.responses import Answer, information, outcome, resource_answer
from hie.fhir.rules import PRECONDITION, REQUEST
from hie.fhir.session import WriteSession, Written, new_id, refuse
from hie.fhir.transactions import Transactions, Upload, request_error
from hie.storage.search import LiveRow
from hie.validators.fhir import validate_resource
from hie.validators.report import Report


def create(
    server: Transactions, call: Call, resource_type: str, body: bytes, condition: str | None
) -> Answer:
    read, refused = server.parse(call, body, resource_type)
    if refused is not None or read.resource is None:
        return refused or Answer(400)
    resource = {**read.resource, "id": new_id()}  # a create ignores any id the client sent
    catalog, declared = server.context(call.scope)
    result = validate_resource(resource, catalog=catalog, declared=declared)
    report = read.checked(result.report)
    if report.rejected or result.table is None:
        return server.refused(call, 422, report, body)
    table = result.table

    def work(session: WriteSession, upload: Upload) -> Answer:
        if condition:
            match = _single_match(session, resource_type, condition)
            if match is not None:
                return server.existing(session.conn, match, call, 200)
        written = session.store(session.prepare(resource, table))
        return _written(201, written, resource, call, report)

    return server.write(call, body, catalog, work)


def update(
    server: Transactions,
    call: Call,
    resource_type: str,
    resource_id: str | None,
    body: bytes,
    *,
    if_match: int | None,
    condition: str | None = None,
) -> Answer:
    """``PUT <Type>/<id>`` (creates it when new: client-assigned ids), or ``PUT <Type>?…``
    (conditional update: the one match is updated, none creates, several are 412)."""
    read, refused = server.parse(call, body, resource_type)
    if refused is not None or read.resource is None:
        return refused or Answer(400)
    resource = read.resource
    body_id = resource.get("id")
    if resource_id is not None and body_id != resource_id:
        message = f"the body's id {body_id!r} is not the URL's id {resource_id!r}"
        return server.refused(call, 400, request_error(REQUEST.id, message), body)
    catalog, declared = server.context(call.scope)
    result = validate_resource(
        {**resource, "id": body_id or "placeholder"}, catalog=catalog, declared=declared
    )
    report = read.checked(result.report)
    if report.rejected or result.table is None:
        return server.refused(call, 422, report, body)
    table = result.table

    def work(session: WriteSession, upload: Upload) -> Answer:
        target_id = resource_id
        if condition is not None:
            match = _single_match(session, resource_type, condition)
            if match is not None and body_id not in (None, match.resource_id):
                raise refuse(
                    400,
                    REQUEST.id,
                    f"the body's id {body_id!r} is not the id of "
                    f"the resource matching {condition!r}",
                    code="invalid",
                )
            target_id = match.resource_id if match is not None else body_id or new_id()
        written = session.store(
            session.prepare({**resource, "id": target_id}, table), if_match=if_match
        )
        return _written(
            201 if written.status == "created" else 200, written, resource, call, report
        )

    return server.write(call, body, catalog, work)


def delete(
    server: Transactions, call: Call, resource_type: str, resource_id: str, *, if_match: int | None
) -> Answer:
    catalog = server.context(call.scope)[0]

    def work(session: WriteSession, upload: Upload) -> Answer:
        written = session.delete(resource_type, resource_id, if_match=if_match)
        if written is None:
            return Answer(204)
        answer = information(200, f"{resource_type}/{resource_id} deleted")
        answer.headers["ETag"] = f'W/"{written.version}"'
        if call.prefs.return_mode == "minimal":
            answer.status, answer.body = 204, None
        return answer

    return server.write(call, b"", catalog, work)


def conditional_delete(
    server: Transactions, call: Call, resource_type: str, condition: str
) -> Answer:
    """``DELETE <Type>?criteria`` as HAPI answers it: no match is 200 with a warning, one match
    is deleted, several are 412 unless ``HIE_ALLOW_MULTIPLE_DELETE`` (then up to
    ``HIE_MAX_MULTIPLE_DELETE`` are deleted; more are 412)."""
    catalog = server.context(call.scope)[0]
    settings = server.settings

    def work(session: WriteSession, upload: Upload) -> Answer:
        deleted = delete_matching(
            session,
            resource_type,
            condition,
            allow_multiple=settings.allow_multiple_delete,
            limit=settings.max_multiple_delete,
        )
        if not deleted:
            body = outcome(
                "warning",
                "not-found",
                f'Unable to find resource matching URL "{resource_type}?{condition}". '
                "Nothing has been deleted.",
            )
            return Answer(200, body, outcome=body)
        return information(200, f"Successfully deleted {len(deleted)} resource(s).")

    return server.write(call, b"", catalog, work)


def delete_matching(
    session: WriteSession, resource_type: str, condition: str, *, allow_multiple: bool, limit: int
) -> list[str]:
    """Delete the resources a condition matches (locked); the logical ids deleted."""
    matches = session.find(resource_type, condition, lock=True, limit=limit + 1)
    if len(matches) > 1 and (not allow_multiple or len(matches) > limit):
        counted = f"more than {limit}" if len(matches) > limit else str(len(matches))
        raise refuse(
            412,
            PRECONDITION.id,
            f'Failed to DELETE resource with match URL "{resource_type}?{condition}" because '
            f"this search matched {counted} resources",
            code="multiple-matches",
        )
    deleted = []
    for match in matches:
        if session.delete(resource_type, match.resource_id) is not None:
            deleted.append(f"{resource_type}/{match.resource_id}")
    return deleted


def _single_match(session: WriteSession, resource_type: str, condition: str) -> LiveRow | None:
    """The one resource a conditional write's condition matches (locked), or None; several
    matches are a 412."""
    matches = session.find(resource_type, condition, lock=True)
    if len(matches) > 1:
        raise refuse(
            412,
            PRECONDITION.id,
            f"the condition {resource_type}?{condition} matches more than one resource",
            code="multiple-matches",
        )
    return matches[0] if matches else None


def _written(
    status: int, written: Written, resource: dict[str, Any], call: Call, report: Report
) -> Answer:
    return resource_answer(
        status,
        written.resource or resource,
        written.version,
        written.last_updated,
        prefs=call.prefs,
        base=call.base,
        report=report,
        write=True,
    )
