"""``hie validate``: formats, exit codes, folders, stdin, declarations, explanations."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from hie.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cda"
VALID = str(FIXTURES / "C0002-valid.xml")
BROKEN = str(FIXTURES / "broken-realm.xml")
WARNING = str(FIXTURES / "warning-check-digit.xml")


def run(*args: str, stdin: bytes | None = None):
    return CliRunner().invoke(app, ["validate", *args], input=stdin)


def test_valid_file_exits_0_and_invalid_exits_1_with_located_lines() -> None:
    assert run(VALID).exit_code == 0
    result = run(VALID, BROKEN)
    assert result.exit_code == 1
    assert f"{BROKEN}:3 error cda.header.realm realmCode is 'US'" in result.stdout
    assert "2 file(s): 1 valid, 1 invalid" in result.stderr


def test_fail_on_warning_raises_the_bar() -> None:
    assert run(WARNING).exit_code == 0
    assert run(WARNING, "--fail-on", "warning").exit_code == 1


def test_folders_globs_and_stdin() -> None:
    folder = run(str(FIXTURES), "--format", "json")
    assert folder.exit_code == 1
    reports = json.loads(folder.stdout)
    assert len(reports) == len(list(FIXTURES.glob("*.xml")))
    by_name = {Path(r["path"]).name: r for r in reports}
    assert by_name["C0053-valid.xml"]["valid"] and by_name["C0053-valid.xml"]["table"] == "C0053"
    assert by_name["hostile-billion-laughs.xml"]["outcome"]["issue"][0]["severity"] == "fatal"

    globbed = run(str(FIXTURES / "C00*-valid.xml"), "--format", "json")
    assert globbed.exit_code == 0 and len(json.loads(globbed.stdout)) == 10

    piped = run("-", "--format", "json", stdin=(FIXTURES / "HSDA00.01-valid.xml").read_bytes())
    assert piped.exit_code == 0
    assert json.loads(piped.stdout)[0]["path"] == "<stdin>"


def test_declaration_checks_as_the_server_does() -> None:
    undeclared = run(VALID, "--kind", "hospital", "--declared", "C0001,C0053", "--format", "json")
    issues = json.loads(undeclared.stdout)[0]["outcome"]["issue"]
    assert undeclared.exit_code == 0
    assert any(
        i.get("details", {}).get("coding", [{}])[0].get("code") == "cda.catalog.undeclared"
        for i in issues
    )
    declared = run(VALID, "--kind", "hospital", "--declared", "C0002", "--format", "json")
    issues = json.loads(declared.stdout)[0]["outcome"]["issue"]
    assert not any(
        i.get("details", {}).get("coding", [{}])[0].get("code") == "cda.catalog.undeclared"
        for i in issues
    )
    assert run(VALID, "--declared", "C9999").exit_code == 2


def test_junit_for_ci_pipelines() -> None:
    result = run(VALID, BROKEN, "--format", "junit")
    from lxml import etree  # type: ignore[import-untyped]

    suite = etree.fromstring(result.stdout.encode())
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failed = [case.get("name") for case in suite if case.find("failure") is not None]
    assert failed == [BROKEN]


def test_explain_and_usage_errors() -> None:
    explained = run("--explain", "cda.header.realm")
    assert explained.exit_code == 0 and "realmCode" in explained.stdout
    assert run("--explain", "cda.nope").exit_code == 2
    assert run().exit_code == 2
    assert run("no-such-file.xml").exit_code == 2
    assert run(VALID, "--format", "yaml").exit_code == 2


def test_every_rule_a_validator_registers_can_be_explained() -> None:
    sources = Path(__file__).resolve().parents[2] / "hie" / "validators"
    registered = {
        rule_id
        for path in sources.rglob("*.py")
        for rule_id in re.findall(r'register\(\s*"([a-z0-9.\-]+)"', path.read_text("utf-8"))
    }
    assert len(registered) > 100
    unexplained = [r for r in sorted(registered) if run("--explain", r).exit_code != 0]
    assert unexplained == []


def test_many_files_in_parallel_give_the_same_verdicts(tmp_path: Path) -> None:
    for n in range(20):
        (tmp_path / f"{n}.xml").write_bytes(
            (FIXTURES / ("C0002-valid.xml" if n % 2 else "broken-realm.xml")).read_bytes()
        )
    serial = json.loads(run(str(tmp_path), "--jobs", "1", "--format", "json").stdout)
    parallel = json.loads(run(str(tmp_path), "--jobs", "2", "--format", "json").stdout)
    assert serial == parallel
    assert sum(1 for r in parallel if r["valid"]) == 10


def test_parallel_results_keep_the_order_given_and_read_standard_input(tmp_path: Path) -> None:
    """Workers take the largest files first; the report still follows the arguments, and a
    ``-`` among many files is the piped document, not an empty one."""
    names = []
    for n in range(18):
        source = FIXTURES / ("C0002-valid.xml" if n % 3 else "HSDA00.01-valid.xml")
        (tmp_path / f"{n:02d}.xml").write_bytes(source.read_bytes() + b" " * (n * 1000))
        names.append(str(tmp_path / f"{n:02d}.xml"))
    arguments = [*names[:9], "-", *names[9:]]
    piped = (FIXTURES / "broken-realm.xml").read_bytes()
    serial = run(*arguments, "--jobs", "1", "--format", "json", stdin=piped)
    parallel = run(*arguments, "--jobs", "2", "--format", "json", stdin=piped)
    reports = json.loads(parallel.stdout)
    assert [r["path"] for r in reports] == [*names[:9], "<stdin>", *names[9:]]
    assert reports == json.loads(serial.stdout)
    assert not reports[9]["valid"] and reports[9]["format"] == "cda"


FHIR = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"


def test_fhir_json_ndjson_and_xml_are_detected_and_validated(tmp_path: Path) -> None:
    patient = json.loads((FHIR / "patient-cn.json").read_text("utf-8"))
    encounter = json.loads((FHIR / "encounter-amb.json").read_text("utf-8"))
    ndjson = tmp_path / "export.ndjson"
    broken = {**encounter, "status": "walking"}
    ndjson.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in (patient, encounter, broken))
    )
    xml = tmp_path / "patient.xml"
    xml.write_text(
        '<Patient xmlns="http://hl7.org/fhir"><id value="p9"/><gender value="female"/>'
        '<birthDate value="1970-01-31"/></Patient>'
    )
    bad_xml = tmp_path / "bad.xml"
    bad_xml.write_text(
        '<Patient xmlns="http://hl7.org/fhir"><id value="p9"/><colour value="red"/></Patient>'
    )
    result = run(
        str(FHIR / "condition-htn.json"), str(ndjson), str(xml), str(bad_xml), "--format", "json"
    )
    reports = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    condition = reports["condition-htn.json"]
    assert condition["format"] == "fhir-json" and condition["valid"]
    assert condition["table"] == "FHIR.Condition"
    assert reports["patient.xml"]["format"] == "fhir-xml" and reports["patient.xml"]["valid"]
    assert not reports["bad.xml"]["valid"]
    assert (
        reports["export.ndjson"]["format"] == "fhir-ndjson"
        and not reports["export.ndjson"]["valid"]
    )
    text = run(str(ndjson)).stdout
    assert f"{ndjson}:3" in text  # the NDJSON line of the broken resource
    assert result.exit_code == 1


def test_ig_definitions_and_extension_policy_accept_a_local_extension(tmp_path: Path) -> None:
    url = "https://fhir.example-hospital.cn/StructureDefinition/triage"
    definition = {
        "resourceType": "StructureDefinition",
        "url": url,
        "name": "Triage",
        "status": "active",
        "kind": "complex-type",
        "abstract": False,
        "type": "Extension",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
        "derivation": "constraint",
        "context": [{"type": "element", "expression": "Patient"}],
        "differential": {
            "element": [
                {"id": "Extension", "path": "Extension"},
                {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
                {"id": "Extension.value[x]", "path": "Extension.value[x]",
                 "type": [{"code": "code"}]},
            ]
        },
    }  # fmt: skip
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "extension": [{"url": url, "valueCode": "red"}],
    }
    definition_file, patient_file = tmp_path / "triage.json", tmp_path / "patient.json"
    definition_file.write_text(json.dumps(definition))
    patient_file.write_text(json.dumps(patient))
    hl7 = ("--mode", "hl7")
    refused = run(str(patient_file), *hl7)
    assert refused.exit_code == 1
    assert "error fhir.extension.unknown" in refused.stdout
    assert run(str(patient_file), *hl7, "--ig", str(definition_file)).exit_code == 0
    assert run(str(patient_file), *hl7, "--allow-any-extensions").exit_code == 0
    domain = "https://fhir.example-hospital.cn/"
    assert run(str(patient_file), *hl7, "--extension-domain", domain).exit_code == 0
    # What the platform stores (the default): accepted, with a warning saying it is unchecked.
    for stored in (run(str(patient_file)), run(str(patient_file), "--as-server")):
        assert stored.exit_code == 0
        assert "warning fhir.extension.unknown" in stored.stdout


def test_platform_mode_warns_where_hl7_refuses(tmp_path: Path) -> None:
    # A wrong display of an HL7 code: HL7's validator refuses it, the server only warns (a
    # hospital's display may be in its own words).
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "maritalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                    "code": "M",
                    "display": "已婚 (not the code's display)",
                }
            ]
        },
    }
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(patient, ensure_ascii=False), "utf-8")
    strict = run(str(path), "--mode", "hl7")
    assert strict.exit_code == 1
    assert "fhir.code.display" in strict.stdout
    for lenient in (run(str(path)), run(str(path), "--as-server")):
        assert lenient.exit_code == 0
        assert "warning fhir.code.display" in lenient.stdout


def test_profile_option_validates_against_an_ig_profile(tmp_path: Path) -> None:
    url = "http://hie.example.cn/fhir/StructureDefinition/named-patient"
    profile = {
        "resourceType": "StructureDefinition",
        "url": url,
        "name": "NamedPatient",
        "status": "active",
        "kind": "resource",
        "abstract": False,
        "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "derivation": "constraint",
        "differential": {"element": [{"id": "Patient.name", "path": "Patient.name", "min": 1}]},
    }
    profile_file, patient_file = tmp_path / "profile.json", tmp_path / "patient.json"
    profile_file.write_text(json.dumps(profile))
    patient_file.write_text(json.dumps({"resourceType": "Patient", "id": "p1"}))
    assert run(str(patient_file)).exit_code == 0
    checked = run(str(patient_file), "--ig", str(profile_file), "--profile", url)
    assert checked.exit_code == 1
    assert "fhir.profile.cardinality" in checked.stdout
    unknown = run(str(patient_file), "--profile", url)
    assert unknown.exit_code == 2
    assert "--profile" in unknown.output


def test_json_that_opens_with_a_comment_is_fhir_json(tmp_path: Path) -> None:
    path = tmp_path / "patient.json"
    path.write_text('// exported by the EMR\n{"resourceType": "Patient", "id": "p1"}\n', "utf-8")
    refused = run(str(path))
    assert refused.exit_code == 1
    assert f"{path}:1:1 fatal fhir.json.comments" in refused.stdout
    assert run(str(path), "--allow-json-comments").exit_code == 0


def test_the_mode_is_named_in_every_output(tmp_path: Path) -> None:
    path = tmp_path / "patient.json"
    path.write_text(json.dumps({"resourceType": "Patient", "id": "p1"}))
    assert "mode platform (what the platform stores" in run(str(path)).output
    assert "mode hl7 (FHIR R4 validity only" in run(str(path), "--mode", "hl7").output
    # --profile hl7 names the mode (a profile is a canonical URL), as the issue tracker asked.
    assert "mode hl7" in run(str(path), "--profile", "hl7").output
    as_json = json.loads(run(str(path), "--mode", "hl7", "--format", "json").stdout)
    assert as_json[0]["mode"] == "hl7"
    junit = run(str(path), "--format", "junit").stdout
    assert '<property name="mode" value="platform"/>' in junit
    conflicting = run(str(path), "--as-server", "--mode", "hl7")
    assert conflicting.exit_code == 2
    assert "conflicting modes" in conflicting.output
    assert run(str(path), "--mode", "strict").exit_code == 2


def test_hl7_mode_judges_official_examples_without_the_catalog(shared_data: Path) -> None:
    # R4's own examples of resource types and Bundle types the platform does not store.
    examples = shared_data / "fhir-r4-examples"
    files = [
        str(examples / name)
        for name in (
            "Questionnaire-f201.json",
            "ValueSet-example-expansion.json",
            "Bundle-bundle-references.json",  # a collection
            "Bundle-bundle-response.json",  # a batch-response
        )
    ]
    stored = run(*files, "--format", "json")
    assert stored.exit_code == 1
    verdicts = json.loads(stored.stdout)
    assert not any(r["valid"] for r in verdicts)
    for result in verdicts:
        rules = {i["details"]["coding"][0]["code"] for i in result["outcome"]["issue"]}
        assert rules & {"fhir.catalog.resource-type", "fhir.catalog.bundle-type"}
    valid = run(*files, "--mode", "hl7")
    assert valid.exit_code == 0, valid.output
    assert "4 valid, 0 invalid" in valid.output


def test_platform_mode_stores_synthea_patients_that_hl7_mode_refuses(shared_data: Path) -> None:
    # A real EMR export (Synthea, US Core extensions, its own displays): HAPI stores it, so the
    # platform's verdict must too; HL7's validator refuses the unknown extensions.
    bundle = sorted((shared_data / "synthea-r4").glob("smart-*.json"))[0]
    stored = run(str(bundle), "--format", "json")
    assert stored.exit_code == 0, stored.stdout[-2000:]
    issues = json.loads(stored.stdout)[0]["outcome"]["issue"]
    assert any(
        i["details"]["coding"][0]["code"] == "fhir.extension.unknown" and i["severity"] == "warning"
        for i in issues
    )
    refused = run(str(bundle), "--mode", "hl7")
    assert refused.exit_code == 1
    assert "error fhir.extension.unknown" in refused.stdout


def test_a_json_array_for_a_single_valued_element_is_refused_with_its_path(
    tmp_path: Path,
) -> None:
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": [{"text": "heart rate"}],
        "subject": [{"reference": "Patient/p1"}],
        "valueQuantity": [{"value": 60}],
        "effectivePeriod": [{"start": "2020-01-01"}],
    }
    path = tmp_path / "observation.json"
    path.write_text(json.dumps(observation))
    for mode in ("platform", "hl7"):
        result = run(str(path), "--mode", mode)
        assert result.exit_code == 1
        for element in ("code", "subject", "valueQuantity", "effectivePeriod"):
            assert (
                f"error fhir.structure.json-type Observation.{element}: single-valued in R4 "
                "(max 1): write it as a JSON object, not an array" in result.stdout
            )


def test_for_publication_requires_the_work_group_of_hl7_canonical_resources(
    tmp_path: Path,
) -> None:
    code_system = {
        "resourceType": "CodeSystem",
        "url": "http://hl7.org/fhir/narrative-status",
        "status": "active",
        "content": "complete",
        "concept": [{"code": "generated"}],
    }
    path = tmp_path / "cs.json"
    path.write_text(json.dumps(code_system))
    assert run(str(path), "--mode", "hl7").exit_code == 0
    published = run(str(path), "--mode", "hl7", "--for-publication")
    assert published.exit_code == 1
    assert "fhir.publication.work-group" in published.output
    wg = "http://hl7.org/fhir/StructureDefinition/structuredefinition-wg"
    code_system["extension"] = [{"url": wg, "valueCode": "fhir"}]
    path.write_text(json.dumps(code_system))
    assert run(str(path), "--mode", "hl7", "--for-publication").exit_code == 0


def test_ignore_contained_leaves_contained_resources_unvalidated(tmp_path: Path) -> None:
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": "http://example.org/fhir/Patient/1"},
        "contained": [{"resourceType": "Practitioner", "id": "p" * 65, "gender": "nobody"}],
    }
    path = tmp_path / "condition.json"
    path.write_text(json.dumps(condition))
    checked = run(str(path), "--mode", "hl7")
    assert checked.exit_code == 1
    assert "fhir.invariant.dom-3" in checked.output
    assert run(str(path), "--mode", "hl7", "--ignore-contained").exit_code == 0


def test_bundle_profile_option_checks_the_entries_its_rule_picks(tmp_path: Path) -> None:
    url = "http://hie.example.cn/fhir/StructureDefinition/named-patient"
    profile = {
        "resourceType": "StructureDefinition",
        "url": url,
        "name": "NamedPatient",
        "status": "active",
        "kind": "resource",
        "abstract": False,
        "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "derivation": "constraint",
        "differential": {"element": [{"id": "Patient.name", "path": "Patient.name", "min": 1}]},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "http://hie.example.cn/fhir/Patient/p1", "resource": {
                "resourceType": "Patient", "id": "p1"}},
        ],
    }  # fmt: skip
    profile_file, bundle_file = tmp_path / "profile.json", tmp_path / "bundle.json"
    profile_file.write_text(json.dumps(profile))
    bundle_file.write_text(json.dumps(bundle))
    assert run(str(bundle_file), "--mode", "hl7").exit_code == 0
    checked = run(
        str(bundle_file), "--mode", "hl7", "--ig", str(profile_file),
        "--bundle-profile", f"Patient:0={url}",
    )  # fmt: skip
    assert checked.exit_code == 1
    assert "Bundle.entry[0].resource" in checked.stdout
    assert "fhir.profile.cardinality" in checked.stdout
    assert run(str(bundle_file), "--bundle-profile", "Patient:0").exit_code == 2


def test_check_references_requires_references_inside_parameters_to_resolve(
    tmp_path: Path,
) -> None:
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "resource": {"resourceType": "Patient", "id": "1"}},
            {"name": "coverage", "resource": {
                "resourceType": "Coverage", "id": "c1", "status": "active",
                "beneficiary": {"reference": "Patient/2"},
                "payor": [{"reference": "Patient/1"}],
            }},
        ],
    }  # fmt: skip
    path = tmp_path / "parameters.json"
    path.write_text(json.dumps(parameters))
    assert run(str(path), "--mode", "hl7").exit_code == 0
    checked = run(str(path), "--mode", "hl7", "--check-references")
    assert checked.exit_code == 1
    assert "fhir.reference.unresolved" in checked.stdout
    assert "Patient/2" in checked.stdout
    assert "Patient/1" not in checked.stdout
    parameters["parameter"][1]["resource"]["beneficiary"] = {"reference": "Patient/1"}
    path.write_text(json.dumps(parameters))
    assert run(str(path), "--mode", "hl7", "--check-references").exit_code == 0
    # A lone resource's references point at a server, which validation does not ask.
    alone = tmp_path / "coverage.json"
    alone.write_text(json.dumps(parameters["parameter"][1]["resource"]))
    assert run(str(alone), "--mode", "hl7", "--check-references").exit_code == 0
