"""How the ``/fhir`` routes appear in the OpenAPI document. The routes read their bodies, search
parameters and most headers from the raw request (FHIR's own rules, not FastAPI's), so what
they accept is described here: clients and API fuzzers then see every input they take."""

from __future__ import annotations

from typing import Any

from hie.catalog import default_catalog_path, read_catalog
from hie.fhir.parameters import parameters_of
from hie.fhir.server import supported_types

# The types of the default catalog; a custom catalog may serve others (see /fhir/metadata).
DEFAULT_TYPES = supported_types(read_catalog(default_catalog_path()))

RESOURCE_TYPE: dict[str, Any] = {
    "description": "A resource type the catalog has a table for (see /fhir/metadata).",
    "json_schema_extra": {"enum": DEFAULT_TYPES},
}
RESOURCE_ID: dict[str, Any] = {
    "description": "A FHIR id",
    "json_schema_extra": {"pattern": r"^[A-Za-z0-9\-.]{1,64}$"},
}


def _string(name: str, where: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


_HEADERS = [
    _string(
        "X-HIE-Institution",
        "header",
        "Admin or regulator: the institution acted for. A clinician: another institution whose"
        " records of a resident it reads (under the resident's consent).",
    ),
    _string(
        "X-Break-Glass",
        "header",
        "A clinician's emergency access without consent: the reason (flagged for review).",
    ),
    _string("X-HIE-Received-At", "header", "Admin backfill: the original receipt time (ISO 8601)."),
]
_FORMAT = [_string("_format", "query", "json or xml (FHIR JSON is the default)")]

_SEARCH_NAMES = sorted(
    {
        "_id",
        "_lastUpdated",
        "_count",
        "_offset",
        "_sort",
        "_total",
        "_summary",
        "_elements",
        "_include",
        "_revinclude",
        "_cursor",
    }
    | {name for t in DEFAULT_TYPES for name in parameters_of(t)}
)
_SEARCH = [_string(name, "query", "a FHIR search parameter") for name in _SEARCH_NAMES]
_HISTORY = [
    _string(n, "query", "history paging and period") for n in ("_count", "_offset", "_since", "_at")
]
_READ = [
    _string("_summary", "query", "true, text, data or false: a part of the resource"),
    _string("_elements", "query", "the elements to send (id, meta and mandatory ones too)"),
]

_RESOURCE_SCHEMA = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {
        "resourceType": {"type": "string", "enum": DEFAULT_TYPES},
        "id": {"type": "string"},
    },
    "additionalProperties": True,
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/fhir+json": {"schema": _RESOURCE_SCHEMA},
            "application/fhir+xml": {"schema": {"type": "string"}},
        },
    }
}
_BUNDLE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/fhir+json": {
                "schema": {
                    "type": "object",
                    "required": ["resourceType", "type"],
                    "properties": {
                        "resourceType": {"type": "string", "enum": ["Bundle"]},
                        "type": {"type": "string", "enum": ["transaction", "batch"]},
                        "entry": {"type": "array", "items": {"type": "object"}},
                    },
                }
            },
            "application/fhir+xml": {"schema": {"type": "string"}},
        },
    }
}
_FORM_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {name: {"type": "string"} for name in _SEARCH_NAMES},
                }
            }
        },
    }
}


def extra(*, body: str | None = None, query: str | None = None) -> dict[str, Any]:
    """The ``openapi_extra`` of a FHIR route: its headers, query parameters and body."""
    parameters = [*_HEADERS, *_FORMAT]
    if query == "search":
        parameters += _SEARCH
    elif query == "history":
        parameters += _HISTORY
    elif query == "read":
        parameters += _READ
    described: dict[str, Any] = {"parameters": parameters}
    if body == "resource":
        described.update(_BODY)
    elif body == "bundle":
        described.update(_BUNDLE_BODY)
    elif body == "form":
        described.update(_FORM_BODY)
    return described
