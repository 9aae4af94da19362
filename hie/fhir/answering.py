"""What every ``/fhir`` route shares, whichever domain serves it (records, Subscriptions): the
server the app made at start-up, the base URL, the query's pairs, the id check, and the
:class:`Answer` written out as FHIR JSON, or FHIR XML when the request asks for it."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from hie.fhir.openapi import RESOURCE_ID
from hie.fhir.responses import FHIR_JSON, Answer, error
from hie.fhir.server import FhirServer
from hie.fhir.xml_format import FHIR_XML, to_fhir_xml, wants_xml

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

ResourceId = Annotated[str, Path(**RESOURCE_ID)]


def fhir_server(request: Request) -> FhirServer:
    server: FhirServer = request.app.state.fhir_server  # made at start-up, in hie/app.py
    return server


def fhir_base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/fhir"


def query_pairs(request: Request, form: FormData | None = None) -> list[tuple[str, str]]:
    """The query string's parameters, then a form body's (``_search`` by POST)."""
    pairs = list(request.query_params.multi_items())
    if form is not None:
        pairs += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    return pairs


def respond(answer: Answer, request: Request) -> Response:
    """The answer in the format the request asks for: FHIR XML, or FHIR JSON by default."""
    if answer.status == 204 or answer.body is None:
        return Response(status_code=answer.status, headers=answer.headers)
    if wants_xml(request.query_params.get("_format"), request.headers.get("accept")):
        content, media_type = to_fhir_xml(answer.plain_body() or {}), FHIR_XML
    else:
        content, media_type = answer.to_bytes(), FHIR_JSON
    return Response(
        content,
        status_code=answer.status,
        headers=answer.headers,
        media_type=f"{media_type}; charset=utf-8",
    )


def refuse_bad_id(request: Request, resource_id: str) -> Response | None:
    """400 for an id FHIR does not allow; None for a good one."""
    if FHIR_ID.fullmatch(resource_id):
        return None
    return respond(error(400, "invalid", f"{resource_id!r} is not a FHIR id"), request)
