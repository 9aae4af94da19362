"""The walk over a resource's extensions: URL, definition, modifier use, placement and
content of each."""

from __future__ import annotations

import re
from typing import Any

from hie.validators.conformance import Context
from hie.validators.fhir_rules.elements import PRIMITIVE_JSON
from hie.validators.fhir_rules.extensions.contexts import allowed_here, evaluate_fhirpath
from hie.validators.fhir_rules.extensions.definitions import Definitions
from hie.validators.fhir_rules.extensions.hosts import Host, find_host
from hie.validators.fhir_rules.extensions.rules import CONTENT, CONTEXT, MODIFIER, UNKNOWN, URL
from hie.validators.fhir_rules.tree import Node, ResourceNode, Tree
from hie.validators.report import Report, Severity

_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")


def _index(tree: Tree) -> dict[str, Node]:
    return {node.path: node for nodes in tree.by_definition.values() for node in nodes}


def _unknown_allowed(url: str, context: Context) -> bool:
    """HL7's validator's list of URLs that need no definition, and the user's domains."""
    policy = context.policy
    if url.startswith(policy.extension_domains):
        return True
    if policy.examples and ("example.org" in url or "acme.com" in url):
        return True
    return (
        "nema.org" in url
        or url.startswith("http://hl7.org/fhir/tools/StructureDefinition/")
        or url == "http://hl7.org/fhir/StructureDefinition/structuredefinition-expression"
    )


def _value_type(extension: dict[str, Any]) -> tuple[str, str] | None:
    """(JSON name, type code) of an extension's value, e.g. ("valueString", "string")."""
    for key in extension:
        if key.startswith("value") and len(key) > 5:
            code = key[5:]
            lower = code[0].lower() + code[1:]
            return key, lower if lower in PRIMITIVE_JSON else code
    return None


class Checker:
    def __init__(self, tree: Tree, report: Report, context: Context) -> None:
        self.tree = tree
        self.report = report
        self.context = context
        self.definitions = Definitions(context)
        self.nodes = _index(tree)
        self.resources = {r.path: r for r in tree.resources}
        self.warned: set[tuple[str, str]] = set()

    def error(self, rule: str, path: str, message: str, code: str = "structure") -> None:
        self.report.add(Severity.ERROR, rule, f"{path}: {message}", code=code, expression=path)

    def run(self) -> None:
        for node in self.tree.of_type("Extension"):
            if not node.definition.endswith(("extension", "modifierExtension")):
                continue  # an element of type Extension elsewhere (none in R4 resources)
            if isinstance(node.value, dict):
                self.extension(node)

    def extension(self, node: Node) -> None:
        url = node.value.get("url")
        host_path, _, own = node.path.rpartition(".")
        host = find_host(host_path, self.resources, self.nodes)
        path = f"{host.path}.{own}" if host is not None else node.path
        nested = node.definition == "Extension.extension"
        if not isinstance(url, str):
            return  # Extension.url is required: the structure layer says so
        if nested:
            parent = self.nodes.get(host_path)
            parent_url = (
                parent.value.get("url") if parent and isinstance(parent.value, dict) else None
            )
            if not _ABSOLUTE.fullmatch(url):
                return  # a sub-extension: its parent's definition says whether it is one
            parent_record = (
                self.definitions.find(parent_url.partition("|")[0])
                if isinstance(parent_url, str)
                else None
            )
            if parent_record is not None and url in parent_record.get("subs", {}):
                return
        elif not _ABSOLUTE.fullmatch(url):
            self.error(URL.id, path, f"Extension.url must be an absolute URL, not {url!r}")
            return
        base_url, bar, version = url.partition("|")
        if bar:
            self.error(
                URL.id,
                path,
                f"the extension URL must not contain a version (|{version}): use {base_url}",
            )
        record = self.definitions.find(base_url)
        if record is None:
            if _unknown_allowed(base_url, self.context):
                return
            if self.context.policy.any_extension:
                # Accepted unchecked (a hospital's or an IG's own extension, or one HL7 defined
                # after R4, as R4's own examples use); said once per URL and resource, not at
                # each of its thousands of uses.
                if (node.owner.path, base_url) not in self.warned:
                    self.warned.add((node.owner.path, base_url))
                    self.report.add(
                        Severity.WARNING,
                        UNKNOWN.id,
                        f"{path}: the extension {base_url} is not defined in R4 or a loaded "
                        "implementation guide: accepted unchecked (HL7's validator rejects it "
                        "unless its domain is allowed)",
                        code="structure",
                        expression=path,
                    )
                return
            self.error(
                UNKNOWN.id,
                path,
                f"The extension {base_url} could not be found so is not allowed here: load "
                "its StructureDefinition (--ig) or allow its domain",
            )
            return
        self.modifier(node, record, base_url, path)
        if host is not None and not record.get("xver"):
            self.placement(record, base_url, host, node.owner, path)
        self.content(node.value, record, base_url, path)

    def modifier(self, node: Node, record: dict[str, Any], url: str, path: str) -> None:
        in_modifier = node.definition.endswith("modifierExtension")
        if in_modifier and not record.get("modifier"):
            self.error(
                MODIFIER.id,
                path,
                f"The Extension {url} must not be used as a modifierExtension (it's a regular "
                "extension)",
            )
        elif not in_modifier and record.get("modifier"):
            self.error(
                MODIFIER.id,
                path,
                f"The Extension {url} must not be used as an extension (it's a modifierExtension)",
            )

    def placement(
        self, record: dict[str, Any], url: str, host: Host, owner: ResourceNode, path: str
    ) -> None:
        if not allowed_here(record, host, owner):
            allowed = ", ".join(record.get("context", []))
            self.error(
                CONTEXT.id,
                path,
                f"The extension {url} is not allowed to be used at {host.path} "
                f"(this element is {', '.join(sorted(host.names))}; allowed: {allowed})",
            )
            return
        for invariant in record.get("invariants", []):
            result = evaluate_fhirpath(invariant, host.value, host.type, owner)
            if result == [False]:  # an empty result (fhirpathpy's gaps) rejects nothing
                self.error(
                    CONTEXT.id,
                    path,
                    f"The extension {url} is not allowed to be used at {host.path} (based on "
                    f"context invariant {invariant!r})",
                )

    def content(
        self, extension: dict[str, Any], record: dict[str, Any], url: str, path: str
    ) -> None:
        allowed = record.get("value")
        value = _value_type(extension)
        if value is not None and allowed is not None:
            key, code = value
            if not allowed:
                self.error(
                    CONTENT.id,
                    f"{path}.{key}",
                    f"the extension {url} is complex: it has sub-extensions, not a value",
                )
            elif code not in allowed:
                self.error(
                    CONTENT.id,
                    f"{path}.{key}",
                    f"the extension {url} allows the value types {', '.join(allowed)}, not {code}",
                )
        subs = extension.get("extension")
        subs = [s for s in subs if isinstance(s, dict)] if isinstance(subs, list) else []
        if subs and record.get("noSubs"):
            self.error(
                CONTENT.id,
                f"{path}.extension",
                f"the extension {url} is simple: it has a value, not sub-extensions",
            )
            return
        defined: dict[str, Any] = record.get("subs") or {}
        if not defined and allowed != []:
            return
        counts: dict[str, int] = {}
        for index, sub in enumerate(subs):
            sub_url = sub.get("url")
            if not isinstance(sub_url, str):
                continue
            counts[sub_url] = counts.get(sub_url, 0) + 1
            sub_path = f"{path}.extension[{index}]"
            if sub_url in defined:
                self.content(sub, defined[sub_url], f"{url}#{sub_url}", sub_path)
            elif not _ABSOLUTE.fullmatch(sub_url):
                self.error(
                    CONTENT.id,
                    sub_path,
                    f"Sub-extension url {sub_url!r} is not defined by the extension {url} "
                    f"(it defines {', '.join(sorted(defined)) or 'none'})",
                )
        for sub_url, sub_record in defined.items():
            found = counts.get(sub_url, 0)
            minimum = sub_record.get("min", 0)
            maximum = sub_record.get("max", "*")
            if isinstance(minimum, int) and found < minimum:
                self.error(
                    CONTENT.id,
                    path,
                    f"the extension {url} requires the sub-extension {sub_url!r} "
                    f"({minimum} or more), found {found}",
                )
            if maximum.isascii() and maximum.isdigit() and found > int(maximum):
                self.error(
                    CONTENT.id,
                    path,
                    f"the extension {url} allows the sub-extension {sub_url!r} at most "
                    f"{maximum} times, found {found}",
                )
