"""The resource types a Reference may name: R4's targetProfile types, from
``schemas/fhir/reference-targets.json``."""

from __future__ import annotations

import json
from functools import cache

from hie.resources import schemas_dir
from hie.validators.fhir_rules.references.bundles import ABSOLUTE, Bundle, Entry, entry_of
from hie.validators.fhir_rules.references.literals import bundle_target
from hie.validators.fhir_rules.references.rules import TARGET_TYPE
from hie.validators.fhir_rules.tree import Node, Tree
from hie.validators.report import Report, Severity


@cache
def _targets() -> dict[str, frozenset[str]]:
    data = json.loads((schemas_dir() / "fhir" / "reference-targets.json").read_text("utf-8"))
    return {path: frozenset(types) for path, types in data["targets"].items()}


def check_target_types(
    tree: Tree, by_resource: dict[int, tuple[Bundle, Entry]], report: Report
) -> None:
    targets = _targets()
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
        if found is not None and found not in allowed:
            report.add(
                Severity.ERROR,
                TARGET_TYPE.id,
                f"{node.path}.reference: '{reference}' is a {found}, which {node.definition} may "
                f"not reference (one of {shown})",
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
