"""References: the resource types a Reference may name, literal references inside Bundles, and
narrative hyperlinks.

Bundle resolution follows FHIR R4 "Resolving references in Bundles" as HL7's validator applies
it: an absolute reference (``http://…``, ``urn:uuid:…``) matches an entry's fullUrl (or
``fullUrl/_history/<meta.versionId>``); a relative one (``Patient/1``) is resolved against the base
of the referring entry's fullUrl, and only when that fullUrl is a RESTful URL ending in the
entry's own type and id. An entry with the right type and id but another base does not match.

- In every Bundle except transactions and batches (those are checked entry by entry and their
  ``urn:uuid`` references are rewritten by the server), a reference matching two entries is an
  error, and so is a match whose resource type differs from the type the reference names.
- In a document, the Composition's references (subject, author, sections' entries, …) and in a
  message the MessageHeader's focus must resolve in the Bundle, and every entry of a document
  must be reachable from the Composition by following references forwards or backwards.
- A fullUrl that looks like a RESTful URL (``…/Patient/1``) ends with the resource's type and id.

Modules: ``rules`` (the rule registrations), ``bundles`` (a Bundle's entries and HL7's
resolution), ``documents`` (the Composition's and MessageHeader's references, stylesheets,
fullUrls), ``literals`` (ambiguous and mistyped references in any Bundle), ``reachability``
(links between a document's entries, narrativeLink anchors), ``targets`` (reference target
types), ``narratives`` (narrative hyperlinks) and ``existence`` (relative references that must
resolve, with ``Policy.check_references``).
"""

from __future__ import annotations

from collections.abc import Mapping

from hie.validators.conformance import Context
from hie.validators.fhir_rules.references.bundles import Bundle, Entry, restful_url
from hie.validators.fhir_rules.references.documents import (
    check_document,
    check_full_urls,
    check_message,
)
from hie.validators.fhir_rules.references.existence import check_existence
from hie.validators.fhir_rules.references.literals import check_bundled_references
from hie.validators.fhir_rules.references.narratives import check_hyperlinks
from hie.validators.fhir_rules.references.reachability import check_interlinks
from hie.validators.fhir_rules.references.targets import check_target_types
from hie.validators.fhir_rules.tree import Tree
from hie.validators.report import Report

__all__ = ["check_references", "restful_url"]

_BUNDLED_ENTRIES = ("transaction", "batch", "transaction-response", "batch-response")


def check_references(
    tree: Tree, report: Report, context: Context, entry_types: Mapping[str, str] | None = None
) -> None:
    bundles = [
        Bundle(r)
        for r in tree.resources
        if r.type == "Bundle" and r.data.get("type") not in _BUNDLED_ENTRIES
    ]
    by_resource: dict[int, tuple[Bundle, Entry]] = {}
    for bundle in bundles:
        for key, entry in bundle.by_resource.items():
            by_resource[key] = (bundle, entry)
    reported: set[str] = set()
    for bundle in bundles:
        check_full_urls(bundle, report)
        if bundle.type == "document":
            check_document(bundle, report, context, reported)
        elif bundle.type == "message":
            check_message(bundle, report, context, reported)
    check_bundled_references(tree, by_resource, report, reported)
    if any(b.type in ("document", "message") for b in bundles):
        check_interlinks(tree, bundles, by_resource, report, context, reported)
    check_target_types(tree, by_resource, report, context, entry_types)
    check_hyperlinks(tree, bundles, report)
    check_existence(tree, report, context)
