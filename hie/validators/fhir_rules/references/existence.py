"""Whether relative references resolve, with ``Policy.check_references`` (HL7's reference
policy CHECK_EXISTS and stronger).

Validation does no I/O, so only what is inside the validated resource can be found: a
reference made by a resource inside a Bundle or a Parameters must name, by type and id, a
resource of that same Bundle or Parameters. HL7's validator also asks its fetcher (a server)
for what is not there; a lone resource's references and absolute URLs point outside it and
are left alone, and so are conditional references and ``#`` fragments (ref-1's business).
"""

from __future__ import annotations

from hie.validators.conformance import Context
from hie.validators.fhir_rules.references.bundles import restful_url
from hie.validators.fhir_rules.references.rules import UNRESOLVED
from hie.validators.fhir_rules.tree import Tree
from hie.validators.report import Report, Severity


def check_existence(tree: Tree, report: Report, context: Context) -> None:
    if not context.policy.check_references:
        return
    present = {
        (r.type, r.data["id"])
        for r in tree.resources
        if r.role != "contained" and isinstance(r.data.get("id"), str)
    }
    for node in tree.of_type("Reference"):
        if node.owner.role == "root":
            continue  # a lone resource's references point outside it: only a server knows
        reference = node.value.get("reference") if isinstance(node.value, dict) else None
        if not isinstance(reference, str):
            continue
        match = restful_url().fullmatch(reference)
        if match is None or "://" in reference or reference.startswith("urn:"):
            continue
        rtype, rid = reference.split("/")[:2]
        if (rtype, rid) not in present:
            report.add(
                Severity.ERROR,
                UNRESOLVED.id,
                f"{node.path}.reference: '{reference}' resolves to no resource in what is "
                "validated",
                code="not-found",
                expression=f"{node.path}.reference",
            )
