"""Literal references inside any Bundle but transactions and batches: none matches two
entries, and the entry matched has the type the reference names."""

from __future__ import annotations

from hie.validators.fhir_rules.references.bundles import ABSOLUTE, Bundle, Entry, entry_of
from hie.validators.fhir_rules.references.rules import BUNDLE_RESOLVE, BUNDLE_TYPE
from hie.validators.fhir_rules.tree import Tree
from hie.validators.report import Report, Severity


def check_bundled_references(
    tree: Tree,
    by_resource: dict[int, tuple[Bundle, Entry]],
    report: Report,
    reported: set[str],
) -> None:
    """Any Bundle (but transactions and batches): a reference must not match two entries, and
    the entry it matches must have the type it names (HL7 resolves ``Type/id`` from an entry
    with a ``urn:uuid:`` fullUrl to ``urn:uuid:<id>``)."""
    if not by_resource:
        return
    for node in tree.of_type("Reference"):
        reference = node.value.get("reference") if isinstance(node.value, dict) else None
        if not isinstance(reference, str) or not reference or reference.startswith("#"):
            continue
        located = entry_of(node.owner, by_resource)
        if located is None:
            continue
        bundle, source = located
        target, named_type, version = bundle_target(reference, source)
        if target is None:
            continue
        matches = [
            e
            for e in bundle.entries
            if e.full_url == target and (version is None or e.version == version)
        ]
        path = f"{node.path}.reference"
        if len(matches) > 1 and version is None and path not in reported:
            reported.add(path)
            report.add(
                Severity.ERROR,
                BUNDLE_RESOLVE.id,
                f"{path}: '{reference}' matches {len(matches)} entries with the fullUrl "
                f"'{target}'; give them distinct fullUrls or version the reference",
                expression=path,
            )
        elif matches and named_type and matches[-1].type != named_type:
            report.add(
                Severity.ERROR,
                BUNDLE_TYPE.id,
                f"{path}: '{reference}' names a {named_type}, but the entry it resolves to "
                f"({matches[-1].full_url}) is a {matches[-1].type}",
                expression=path,
            )


def bundle_target(reference: str, source: Entry) -> tuple[str | None, str | None, str | None]:
    """(the fullUrl ``reference`` points at, the type it names, the version it asks for)."""
    url, _, version = reference.partition("/_history/")
    if ABSOLUTE.match(reference):
        return url, None, version or None  # matched by fullUrl: its type is the entry's concern
    base_url = source.full_url
    if base_url is None or reference.count("/") not in (1, 3) or "?" in reference:
        return None, None, None
    parts = url.split("/")
    if len(parts) != 2:
        return None, None, None
    if base_url.startswith("urn:"):
        base = base_url.rsplit(":", 1)[0] + ":"
        if version:
            return base + url, parts[0], version
        return base + parts[1], parts[0], None
    base = "".join(part + "/" for part in base_url.split("/")[:-2])
    return base + url, parts[0] if version else None, version or None
