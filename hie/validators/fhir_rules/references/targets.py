"""The resource types a Reference may name: R4's targetProfile types, from
``schemas/fhir/reference-targets.json``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache

from hie.resources import schemas_dir
from hie.validators.conformance import Context
from hie.validators.fhir_rules.elements import is_resource_type
from hie.validators.fhir_rules.references.bundles import (
    ABSOLUTE,
    Bundle,
    Entry,
    entry_of,
    restful_url,
)
from hie.validators.fhir_rules.references.literals import bundle_target
from hie.validators.fhir_rules.references.rules import TARGET_TYPE
from hie.validators.fhir_rules.tree import Node, Tree
from hie.validators.report import Report, Severity


@cache
def _targets() -> dict[str, frozenset[str]]:
    data = json.loads((schemas_dir() / "fhir" / "reference-targets.json").read_text("utf-8"))
    return {path: frozenset(types) for path, types in data["targets"].items()}


# A conditional reference (Organization?identifier=x|1): the server resolves it to a stored
# resource of the type before the "?".
_CONDITIONAL = re.compile(r"([A-Z][A-Za-z]+)\?.+")


def check_target_types(
    tree: Tree,
    by_resource: dict[int, tuple[Bundle, Entry]],
    report: Report,
    context: Context,
    entry_types: Mapping[str, str] | None = None,
) -> None:
    """``entry_types``: the resource type of each entry of the transaction or batch the
    resource is an entry of, by fullUrl (its urn:uuid references name those entries)."""
    targets = _targets()
    rest = context.policy.valid_rest_references
    already = {i.expression for i in report.issues if i.severity.rejects}
    for node in tree.of_type("Reference"):
        allowed = targets.get(node.definition)
        if allowed is None or not isinstance(node.value, dict):
            continue
        shown = ", ".join(sorted(allowed))
        declared = node.value.get("type")
        if isinstance(declared, str) and not ABSOLUTE.match(declared) and declared not in allowed:
            report.add(
                Severity.ERROR,
                TARGET_TYPE.id,
                f"{node.path}.type: '{declared}' is not a resource type {node.definition} may "
                f"reference (one of {shown})",
                code="structure",
                expression=f"{node.path}.type",
            )
        reference = node.value.get("reference")
        found = _literal_type(reference, node, by_resource) if isinstance(reference, str) else None
        if found is None and isinstance(reference, str):
            found = (entry_types or {}).get(reference)
            if found is None and rest:
                found = _implied_type(reference)
        if found is not None and found not in allowed and node.path in already:
            continue  # a profile's targetProfile check said it already, at the Reference
        if found is not None and found not in allowed:
            report.add(
                Severity.ERROR,
                TARGET_TYPE.id,
                f"{node.path}.reference: '{reference}' names a resource of type {found}, which "
                f"{node.definition} may not reference (one of {shown})",
                code="structure",
                expression=f"{node.path}.reference",
            )


def _literal_type(
    reference: str, node: Node, by_resource: dict[int, tuple[Bundle, Entry]]
) -> str | None:
    """The type of the resource ``reference`` resolves to locally (a contained resource or a
    Bundle entry); None when it is not resolved here (HL7 checks the type of those only with a
    reference-resolving policy)."""
    if reference.startswith("#"):
        container = node.owner.parent if node.owner.role == "contained" else node.owner
        contained = container.data.get("contained") if container is not None else None
        for item in contained if isinstance(contained, list) else []:
            if isinstance(item, dict) and item.get("id") == reference[1:]:
                found = item.get("resourceType")
                return found if isinstance(found, str) else None
        return None
    located = entry_of(node.owner, by_resource)
    if located is None:
        return None
    bundle, source = located
    target, _, version = bundle_target(reference, source)
    matches = [
        e
        for e in bundle.entries
        if target is not None and e.full_url == target and (version is None or e.version == version)
    ]
    return matches[0].type if len(matches) == 1 else None


def _implied_type(reference: str) -> str | None:
    """The type a RESTful (``Organization/1``) or conditional (``Organization?name=x``)
    reference names, taken as the target's type (HL7's -assumeValidRestReferences)."""
    match = restful_url().fullmatch(reference) or _CONDITIONAL.fullmatch(reference)
    found = match[1] if match else None
    return found if is_resource_type(found) else None
