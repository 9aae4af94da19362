"""``_summary`` and ``_elements``: the parts of a resource a read, vread or search sends.

As HAPI FHIR JPA: ``_summary=true`` keeps the elements R4 marks ``isSummary`` (also inside kept
backbone elements; an element of a data type is kept whole), ``text`` keeps the narrative, ``id``,
``meta`` and the mandatory top-level elements, ``data`` drops the narrative, ``count`` answers
only the total (searches) and ``false`` the whole resource. ``_elements`` keeps the listed
top-level elements with ``id``, ``meta`` and the mandatory ones; in a search it applies to the
matches only, included resources are sent whole (FHIR R4 search.html#elements). A resource sent
in part carries the ``SUBSETTED`` tag in ``meta.tag``, so that no client takes it for the whole
and writes it back. The summary elements come from ``schemas/fhir/summary-elements.json``
(generated from R4's StructureDefinitions by ``scripts/build_summary_elements.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from hie.resources import schemas_dir

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "Resource encoded in summary mode",
}
SummaryMode = Literal["true", "text", "data", "count", "false"]
SUMMARY_MODES: tuple[SummaryMode, ...] = ("true", "text", "data", "count", "false")
# Always sent, whatever is asked: without them a resource cannot be read back or updated.
ALWAYS = ("id", "meta")


class SubsettingError(ValueError):
    """A ``_summary`` or ``_elements`` value this server cannot follow (HTTP 400)."""


@dataclass(frozen=True)
class Subsetting:
    """What the request asks to be left out; the default sends whole resources."""

    summary: SummaryMode | None = None
    elements: tuple[str, ...] | None = None
    # ``_elements:exclude=`` (HAPI) or ``_elements=-a,-b`` (fhirpy): the elements to leave out.
    excluded: tuple[str, ...] | None = None

    @property
    def active(self) -> bool:
        return (
            self.summary in ("true", "text", "data")
            or self.elements is not None
            or self.excluded is not None
        )

    @property
    def count_only(self) -> bool:
        return self.summary == "count"


RESULT_PARAMETERS = ("_summary", "_elements")


def parse_subsetting(pairs: list[tuple[str, str]]) -> Subsetting:
    """``_summary`` and ``_elements`` of a query; raises :class:`SubsettingError`."""
    summary: SummaryMode | None = None
    elements: list[str] | None = None
    excluded: list[str] | None = None
    for name, value in pairs:
        if name == "_summary":
            if value not in SUMMARY_MODES:
                raise SubsettingError(f"_summary={value}: use one of {', '.join(SUMMARY_MODES)}")
            if summary is not None and summary != value:
                raise SubsettingError("_summary is given twice with different values")
            summary = value
        elif name in ("_elements", "_elements:exclude"):
            found = [v.strip() for v in value.split(",") if v.strip()]
            minus = [v for v in found if v.startswith("-")]
            if name == "_elements:exclude" or (minus and len(minus) == len(found)):
                excluded = [*(excluded or []), *(v.removeprefix("-") for v in found)]
            elif minus:
                raise SubsettingError(f"_elements={value}: list elements to keep or to leave out")
            else:
                elements = [*(elements or []), *found]
    return Subsetting(
        summary,
        None if elements is None else tuple(dict.fromkeys(elements)),
        None if excluded is None else tuple(dict.fromkeys(excluded)),
    )


@dataclass(frozen=True)
class _Definition:
    summary: frozenset[str]  # relative paths, choice elements as "value[x]"
    mandatory: frozenset[str]  # top-level names
    backbones: frozenset[str]  # relative paths that have summary children listed


@cache
def _definitions() -> dict[str, _Definition]:
    data = json.loads((schemas_dir() / "fhir" / "summary-elements.json").read_text("utf-8"))
    found: dict[str, _Definition] = {}
    for name, entry in data["resources"].items():
        summary = frozenset(entry["summary"])
        backbones = frozenset(p.rsplit(".", 1)[0] for p in summary if "." in p)
        found[name] = _Definition(summary, frozenset(entry["mandatory"]), backbones)
    return found


def _element_of(key: str, names: frozenset[str], prefix: str) -> str | None:
    """The definition path (relative, ``value[x]`` for ``valueQuantity``) a JSON key is an
    instance of, when it is among ``names``; primitive extensions (``_birthDate``) follow their
    element."""
    bare = key[1:] if key.startswith("_") else key
    path = f"{prefix}{bare}"
    if path in names:
        return path
    for index in range(len(bare) - 1, 0, -1):
        if bare[index].isupper():
            choice = f"{prefix}{bare[:index]}[x]"
            if choice in names:
                return choice
    return None


def _summarized(value: Any, definition: _Definition, prefix: str) -> Any:
    """A backbone element (or a list of them) with only its summary children."""
    if isinstance(value, list):
        return [_summarized(item, definition, prefix) for item in value]
    if not isinstance(value, dict):
        return value
    kept: dict[str, Any] = {}
    for key, child in value.items():
        path = _element_of(key, definition.summary, prefix)
        if path is None:
            continue
        kept[key] = (
            _summarized(child, definition, f"{path}.") if path in definition.backbones else child
        )
    return kept


def _mandatory(resource: dict[str, Any], definition: _Definition | None) -> dict[str, Any]:
    if definition is None:
        return {}
    return {
        key: value
        for key, value in resource.items()
        if _element_of(key, definition.mandatory, "") is not None
    }


def _top_level(resource: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """The top-level elements named (``value`` also finds ``valueQuantity``)."""
    kept: dict[str, Any] = {}
    for key, value in resource.items():
        bare = key[1:] if key.startswith("_") else key
        if bare in names or any(
            bare.startswith(n) and bare[len(n) : len(n) + 1].isupper() for n in names
        ):
            kept[key] = value
    return kept


def subset(
    resource: dict[str, Any], subsetting: Subsetting, *, match: bool = True
) -> dict[str, Any]:
    """``resource`` (its served form) as the request asks; ``match`` is False for resources a
    search includes, which ``_elements`` leaves whole."""
    elements = subsetting.elements if match else None
    excluded = subsetting.excluded if match else None
    summary = subsetting.summary
    if summary not in ("true", "text", "data") and elements is None and excluded is None:
        return resource
    resource_type = str(resource.get("resourceType"))
    definition = _definitions().get(resource_type)
    result: dict[str, Any]
    if summary == "true":
        result = (
            _summarized(resource, definition, "")
            if definition is not None
            else {k: v for k, v in resource.items() if k in ALWAYS}
        )
    elif summary == "text":
        result = _top_level(resource, {"text"}) | _mandatory(resource, definition)
    elif summary == "data":
        result = {k: v for k, v in resource.items() if k not in ("text", "_text")}
    else:
        result = dict(resource)
    if elements is not None:
        names = {e.split(".", 1)[1] if e.startswith(f"{resource_type}.") else e for e in elements}
        result = _top_level(result, names) | _mandatory(result, definition)
    if excluded is not None:
        names = {e.split(".", 1)[1] if e.startswith(f"{resource_type}.") else e for e in excluded}
        left_out = _top_level(result, names)
        result = {k: v for k, v in result.items() if k not in left_out}
    for key in ALWAYS:
        if key in resource:
            result[key] = resource[key]
    # In the resource's own order (FHIR XML needs R4's element order).
    ordered: dict[str, Any] = {"resourceType": resource_type}
    ordered.update((k, result[k]) for k in resource if k in result and k != "resourceType")
    return _tagged(ordered)


def _tagged(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != SUBSETTED["code"]]
    meta["tag"] = [*tags, dict(SUBSETTED)]
    resource["meta"] = meta
    return resource
