"""Narrative controls a profile sets: sources of narrative parts, language sections."""

from __future__ import annotations

from typing import Any

import pytest

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.conformance import Conformance, Context
from hie.validators.fhir import validate_resource

CATALOG = read_catalog(default_catalog_path())
URL = "http://hie.example.cn/fhir/StructureDefinition/narrative-controlled"
XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'


def profile(control: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "StructureDefinition",
        "url": URL,
        "name": "NarrativeControlled",
        "status": "draft",
        "kind": "resource",
        "abstract": False,
        "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "derivation": "constraint",
        "differential": {
            "element": [
                {
                    "id": "Patient.text",
                    "path": "Patient.text",
                    "extension": [
                        {
                            "url": f"http://hl7.org/fhir/StructureDefinition/{control}",
                            "valueCode": code,
                        }
                    ],
                }
            ]
        },
    }


def narrative_errors(control: str, code: str, div: str, language: str = "zh-CN") -> int:
    patient = {
        "resourceType": "Patient",
        "language": language,
        "text": {"status": "generated", "div": f"<div {XHTML}>{div}</div>"},
    }
    context = Context(Conformance([profile(control, code)]), profiles=(URL,))
    report = validate_resource(patient, catalog=CATALOG, context=context).report
    return sum(1 for i in report.errors if i.rule == "fhir.profile.narrative")


SOURCED = '<p class="generated">王芳</p><p class="original">原文</p>'
SECTIONS = '<div lang="zh-CN">王芳</div><div lang="en">Wang Fang</div>'


@pytest.mark.parametrize(
    ("control", "code", "div", "errors"),
    [
        ("narrative-source-control", "error", SOURCED, 0),
        ("narrative-source-control", "error", "无来源<p>也无来源</p>" + SOURCED, 2),
        ("narrative-source-control", "error", '<div class="boilerplate"><p>x</p></div>', 0),
        ("narrative-language-control", "_yes", SECTIONS, 0),
        ("narrative-language-control", "_yes", "<p>王芳</p>", 1),
        ("narrative-language-control", "_no", "<p>王芳</p>", 0),
        ("narrative-language-control", "_no", SECTIONS, 1),
        ("narrative-language-control", "_resource", SECTIONS, 0),
        ("narrative-language-control", "_resource", '<div lang="en">Wang Fang</div>', 1),
    ],
)
def test_narrative_controls(control: str, code: str, div: str, errors: int) -> None:
    assert narrative_errors(control, code, div) == errors
