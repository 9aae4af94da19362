"""``GET /fhir/metadata``: the CapabilityStatement, built from the same tables the server runs on
(the catalog's resource types, hie/fhir/parameters.py), so it lists exactly what works."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hie import __version__
from hie.fhir.access import INSTITUTION_HEADER
from hie.fhir.audit_events import capability_entry
from hie.fhir.parameters import SearchParameter, parameters_of
from hie.fhir.results import parse_sort
from hie.fhir.search import MAX_CHAIN, MODIFIERS
from hie.subscriptions.model import capability_entry as subscription_entry

_INTERACTIONS = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]

_COMMON = [
    {
        "name": "_id",
        "definition": "http://hl7.org/fhir/SearchParameter/Resource-id",
        "type": "token",
    },
    {
        "name": "_lastUpdated",
        "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
        "type": "date",
    },
]


def _search_param(param: SearchParameter) -> dict[str, Any]:
    """A parameter with R4's definition and description, and the modifiers that work on it."""
    modifiers = [*MODIFIERS[param.kind], "missing"]
    if param.kind == "reference":
        modifiers.append("[type]")
        chain = f" Chains (up to {MAX_CHAIN} links) to: {', '.join(param.targets) or 'any type'}."
    else:
        chain = ""
    return {
        "name": param.name,
        "definition": param.url,
        "type": param.kind,
        "documentation": f"{param.description} Modifiers: "
        f"{', '.join(':' + m for m in modifiers)}.{chain}",
    }


def _operation(name: str, definition: str) -> dict[str, str]:
    return {"name": name, "definition": f"http://hl7.org/fhir/OperationDefinition/{definition}"}


# The operations every type has (operations.py); Patient also has $everything.
_OPERATIONS = [
    _operation("validate", "Resource-validate"),
    _operation("meta", "Resource-meta"),
    _operation("meta-add", "Resource-meta-add"),
    _operation("meta-delete", "Resource-meta-delete"),
]


def _resource(
    resource_type: str, *, multiple_delete: bool = False, integrity: bool = False
) -> dict[str, Any]:
    params = parameters_of(resource_type)
    references = [p for p in params.values() if p.kind == "reference"]
    sortable = [
        "_id",
        "_lastUpdated",
        *(p.name for p in params.values() if _sorts(resource_type, p.name)),
    ]
    entry: dict[str, Any] = {
        "type": resource_type,
        "interaction": [{"code": code} for code in _INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": True,
        "conditionalDelete": "multiple" if multiple_delete else "single",
        "referencePolicy": ["literal", "logical", "local", *(["enforced"] if integrity else [])],
        "searchInclude": ["*", *(f"{resource_type}:{p.name}" for p in references)],
        "searchParam": [*_COMMON, *(_search_param(p) for p in params.values())],
    }
    entry["operation"] = list(_OPERATIONS)
    if resource_type == "Patient":
        entry["operation"].append(_operation("everything", "Patient-everything"))
    entry["documentation"] = f"_sort by {', '.join(sortable)}"
    return entry


def _sorts(resource_type: str, name: str) -> bool:
    try:
        parse_sort(resource_type, name)
    except ValueError:
        return False
    return True


def capability_statement(
    resource_types: list[str],
    base: str,
    *,
    multiple_delete: bool = False,
    integrity: bool = False,
) -> dict[str, Any]:
    """``multiple_delete``: HIE_ALLOW_MULTIPLE_DELETE; ``integrity``: referential integrity
    enforced on write (HIE_ENFORCE_REFERENTIAL_INTEGRITY_ON_WRITE)."""
    resources = [
        _resource(t, multiple_delete=multiple_delete, integrity=integrity) for t in resource_types
    ]
    # _revinclude: any reference parameter of any type that can point at this type.
    for entry in resources:
        entry["searchRevInclude"] = ["*"] + [
            f"{other}:{p.name}"
            for other in resource_types
            for p in parameters_of(other).values()
            if p.kind == "reference" and (not p.targets or entry["type"] in p.targets)
        ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "publisher": "hie",
        "kind": "instance",
        "software": {"name": "hie", "version": __version__},
        "implementation": {"description": "hie regional health-information exchange", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json", "xml"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Bearer tokens (hie tokens create). A submitter reads and writes only its own "
                    f"institution's data; admin and regulator tokens name the institution in "
                    f"the {INSTITUTION_HEADER} header. Search paging: _count (at most 1000); "
                    "first, previous, next and last links carry a keyset cursor (_cursor) bound "
                    "to the caller and the search, which survives concurrent writes; _offset "
                    "pages by position. _sort on several keys (- descends), _include and "
                    "_revinclude (:iterate, *), _summary=true|text|data|count|false and "
                    "_elements (SUBSETTED tag), _total=accurate|none. Every R4 "
                    "search parameter of each type below, with chains (subject.name=) and "
                    "_has (_has:Observation:patient:code=). An unknown search parameter is "
                    "refused (400) unless 'Prefer: handling=lenient' asks to ignore it with a "
                    "warning."
                ),
                "security": {"description": "Authorization: Bearer <token made by hie tokens>"},
                "resource": [*resources, capability_entry(), subscription_entry()],
                "interaction": [
                    {"code": "transaction"},
                    {"code": "batch"},
                    {"code": "history-system"},
                ],
            }
        ],
    }
