"""StructureDefinitions that define a type of their own (logical models)."""

from __future__ import annotations

from typing import Any

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.conformance import Conformance, Context
from hie.validators.fhir import validate_resource

CATALOG = read_catalog(default_catalog_path())
FOO = "http://hie.example.cn/fhir/StructureDefinition/Foo"
BOO = "http://hie.example.cn/fhir/StructureDefinition/Boo"


def model(url: str, type_: str, base: str, paths: list[str]) -> dict[str, Any]:
    return {
        "resourceType": "StructureDefinition",
        "url": url,
        "name": url.rsplit("/", 1)[-1],
        "status": "draft",
        "kind": "logical",
        "abstract": False,
        "type": type_,
        "baseDefinition": base,
        "derivation": "specialization",
        "differential": {"element": [{"id": p, "path": p} for p in paths]},
    }


FOO_MODEL = model(FOO, FOO, "http://hl7.org/fhir/StructureDefinition/Base", ["Foo", "Foo.a"])
CONTEXT = Context(Conformance([FOO_MODEL]))


def errors(resource: dict[str, Any]) -> set[tuple[str, str]]:
    report = validate_resource(resource, catalog=CATALOG, context=CONTEXT).report
    return {
        (i.rule, i.expression or "")
        for i in report.errors
        if not i.rule.startswith("fhir.catalog.")
    }


def test_a_logical_model_named_by_its_url_is_valid() -> None:
    assert not errors(FOO_MODEL)
    assert not errors(model(BOO, BOO, FOO, ["Boo", "Boo.b"]))


def test_a_bare_type_name_that_fhir_does_not_define_is_refused() -> None:
    assert errors(model(BOO, "Boo", FOO, ["Boo"])) == {
        ("fhir.specialization.type", "StructureDefinition.type")
    }


def test_a_specialization_defines_a_new_type_and_its_paths_start_with_it() -> None:
    found = errors(model(BOO, FOO, FOO, ["Boo", "Foo.a"]))
    assert found == {
        ("fhir.specialization.type", "StructureDefinition.type"),
        ("fhir.specialization.path", "StructureDefinition.differential.element[0]"),
        # R4's own sdf-8a: every path starts with the first one's
        ("fhir.invariant.sdf-8a", "StructureDefinition.differential"),
    }
