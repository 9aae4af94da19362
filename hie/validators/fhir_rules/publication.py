"""Rules HL7's validator adds for resources HL7 itself publishes (its ``-forPublication``
option, ``Policy.for_publication``): the owning work group is stated with the
``structuredefinition-wg`` extension on every canonical resource at an HL7 URL."""

from __future__ import annotations

from hie.validators.conformance import Context
from hie.validators.fhir_rules.tree import Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register

WORK_GROUP = register(
    "fhir.publication.work-group",
    summary="With --for-publication, a canonical resource published at an HL7 URL "
    "(http://hl7.org/fhir/..., http://terminology.hl7.org/...) names its owning work group with "
    "the http://hl7.org/fhir/StructureDefinition/structuredefinition-wg extension.",
    fix='Add {"url": "http://hl7.org/fhir/StructureDefinition/structuredefinition-wg", '
    '"valueCode": "vocab"} with the code of the work group that owns the resource.',
)
WG_EXTENSION = "http://hl7.org/fhir/StructureDefinition/structuredefinition-wg"
HL7_URLS = ("http://hl7.org/fhir/", "http://terminology.hl7.org/")
CANONICAL_TYPES = frozenset(
    {
        "ActivityDefinition", "CapabilityStatement", "ChargeItemDefinition", "CodeSystem",
        "CompartmentDefinition", "ConceptMap", "EffectEvidenceSynthesis", "EventDefinition",
        "Evidence", "EvidenceVariable", "ExampleScenario", "GraphDefinition",
        "ImplementationGuide", "Library", "Measure", "MessageDefinition", "OperationDefinition",
        "PlanDefinition", "Questionnaire", "ResearchDefinition", "ResearchElementDefinition",
        "RiskEvidenceSynthesis", "SearchParameter", "StructureDefinition", "StructureMap",
        "TerminologyCapabilities", "TestScript", "ValueSet",
    }
)  # fmt: skip


def check_publication(tree: Tree, report: Report, context: Context) -> None:
    if not context.policy.for_publication:
        return
    for resource in tree.resources:
        data = resource.data
        url = data.get("url")
        if resource.type not in CANONICAL_TYPES or not isinstance(url, str):
            continue
        if not url.startswith(HL7_URLS):
            continue
        extensions = data.get("extension")
        listed = extensions if isinstance(extensions, list) else []
        if any(isinstance(e, dict) and e.get("url") == WG_EXTENSION for e in listed):
            continue
        report.add(
            Severity.ERROR,
            WORK_GROUP.id,
            f"{resource.path}: when HL7 publishes a resource, its owning work group is stated "
            f"with the {WG_EXTENSION} extension",
            code="business-rule",
            expression=resource.path,
        )
