"""Agreement with the HL7 Java validator's own R4 test cases (../shared/data/fhir-test-cases).

The reference verdict of a case is "invalid" when its expected outcome (``java``) has an error
or fatal issue. Ours is ``report.rejected`` with the catalog out of the way (every R4 type has a
table, and the catalog's Bundle-type rule is the platform's policy, not R4's), so the figure is
about FHIR validity. XML and NDJSON inputs are read as ``hie validate`` reads them (NDJSON line
by line). Cases without a usable expectation are left out.

Each case runs as ``hie validate`` would with the options the case gives HL7's validator: its
``supporting`` and ``profiles`` files are loaded as with ``--ig``, and its policy switches
(``security-checks``, ``allowed-extension-domain``, ``allow-comments``, ``for-publication``,
``validateContains``, ``validateReference``, ...) set the :class:`Policy`, and its
``bundle-param`` (HL7's ``-bundle``) the context's entry profiles.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from hie.catalog import Catalog, Table
from hie.validators.conformance import Conformance, Context, Policy
from hie.validators.fhir_rules.elements import resource_types
from hie.validators.files import Options, validate_bytes

# Measured 2026-12 on the 508 cases with an expectation; a drop below it is a regression.
AGREEMENT_FLOOR = 0.972  # 97.2% (494 of 508) overall, JSON and XML cases alike
PROFILE_STEP_FLOOR = 0.92  # 93.0% of the 100 profile steps with an expectation
ALL_TYPES = Catalog(
    Table(f"FHIR.{t}", t, t, "FHIR R4", fhir_resource_type=t) for t in sorted(resource_types())
)


def case_context(root: Path, case: dict[str, Any], *, profile_step: bool = False) -> Context:
    """The conformance resources and policy HL7's validator runs ``case`` with; with
    ``profile_step``, those of the case's second step, which validates against a profile (as
    ``hie validate --ig PROFILE --profile URL`` does)."""
    base = root / "validator"
    # "supporting5" (two cases) is loaded too: the reference's outcomes for them know the
    # extension it defines, so HL7's runner loaded it for R4 as well.
    names = case.get("supporting", []) + case.get("supporting5", []) + case.get("profiles", [])
    step = case.get("profile") if profile_step else None
    if isinstance(step, dict):
        names = [*names, step["source"], *step.get("supporting", [])]
    files = [base / name for name in names]
    policy = Policy(
        extension_domains=tuple(filter(None, [case.get("allowed-extension-domain")])),
        security_checks=bool(case.get("security-checks")),
        examples=case.get("examples", True) is not False,
        html_in_markdown=not case.get("noHtmlInMarkdown"),
        json_comments=bool(case.get("allow-comments")),
        for_publication=str(case.get("for-publication")).lower() == "true",
        validate_contained=case.get("validateContains") != "IGNORE",
        # HL7's reference policies from CHECK_EXISTS up (CHECK_EXISTS_AND_TYPE, CHECK_VALID).
        check_references=case.get("validateReference", "IGNORE").startswith(("CHECK_E", "CHECK_V")),
        valid_rest_references=bool(
            case.get("assumeValidRestReferences")
            or (isinstance(step, dict) and step.get("assumeValidRestReferences"))
        ),
    )
    conformance = Conformance()
    read: dict[Path, dict[str, Any]] = {}
    for file in files:
        try:
            read[file] = conformance.add_file(file)
        except ValueError:
            continue  # a disagreement if the case needed it
    source = read.get(base / step["source"]) if isinstance(step, dict) else None
    profiles = (str(source["url"]),) if source is not None and "url" in source else ()
    # HL7's -bundle RULE PROFILE (hie validate --bundle-profile RULE=PROFILE).
    by_rule = case.get("bundle-param")
    entry_profiles = ((by_rule["rule"], by_rule["profile"]),) if isinstance(by_rule, dict) else ()
    return Context(conformance, policy, profiles, entry_profiles=entry_profiles)


def verdict(path: Path, context: Context | None = None) -> tuple[bool | None, str]:
    """(rejected, the rules that rejected) for one input, read and validated exactly as
    ``hie validate`` does; None when the file is none of JSON, NDJSON or XML."""
    if path.suffix not in (".json", ".ndjson", ".xml"):
        return None, f"{path.suffix[1:]} input"
    options = Options(catalog=ALL_TYPES, context=context or Context())
    report = validate_bytes(str(path), path.read_bytes(), options).report
    rules = sorted({i.rule for i in report.errors if not i.rule.startswith("fhir.catalog.")})
    return bool(rules), "+".join(rules)


def agreement(
    root: Path, *, profile_step: bool = False, by_module: Counter[tuple[str, bool]] | None = None
) -> tuple[float, int, Counter[str]]:
    """Agreement on the cases' first step (validation as such), or on their second step
    (validation against a given profile) with ``profile_step``. ``by_module`` counts the cases
    of each module by (module, agreed)."""
    summary: dict[str, Any] = json.loads((root / "expected-summary.json").read_text("utf-8"))
    manifest = json.loads((root / "manifest-r4-nopackages.json").read_text("utf-8"))
    options = {case["name"]: case for case in manifest["test-cases"]}
    agreed, counted = 0, 0
    reasons: Counter[str] = Counter()
    for case in summary["cases"]:
        expected = case.get("expected_java_with_profile" if profile_step else "expected_java")
        if not isinstance(expected, dict):
            continue
        counted += 1
        invalid = expected["error"] > 0
        context = case_context(root, options[case["name"]], profile_step=profile_step)
        rejected, rules = verdict(root / case["file"], context)
        if by_module is not None:
            by_module[(case["module"] or "none", rejected == invalid)] += 1
        if rejected is None:
            reasons[f"not evaluated: {rules}"] += 1
        elif rejected == invalid:
            agreed += 1
        elif invalid:
            reasons[f"accepted, reference rejects ({case['module']})"] += 1
        else:
            reasons[f"rejected by {rules}, reference accepts"] += 1
    return agreed / counted, counted, reasons


def test_reference_case_agreement(shared_data: Path) -> None:
    by_module: Counter[tuple[str, bool]] = Counter()
    share, counted, reasons = agreement(shared_data / "fhir-test-cases", by_module=by_module)
    skipped = sum(n for r, n in reasons.items() if r.startswith("not evaluated"))
    evaluated_share = share * counted / (counted - skipped)
    print(
        f"\nagreement with the HL7 validator on {counted} R4 cases: {share:.1%} "
        f"({evaluated_share:.1%} of the {counted - skipped} cases evaluated)"
    )
    for reason, count in reasons.most_common():
        print(f"  {count:4d}  {reason}")
    modules = sorted({m for m, _ in by_module}, key=lambda m: -by_module[(m, True)])
    print("  by module: " + ", ".join(f"{m} {by_module[(m, True)]}/"
          f"{by_module[(m, True)] + by_module[(m, False)]}" for m in modules))  # fmt: skip
    assert share >= AGREEMENT_FLOOR


def test_profile_step_agreement(shared_data: Path) -> None:
    """The cases' second step: the resource validated against a profile (HL7's -profile)."""
    share, counted, reasons = agreement(shared_data / "fhir-test-cases", profile_step=True)
    print(f"\nagreement with the HL7 validator on {counted} R4 profile steps: {share:.1%}")
    for reason, count in reasons.most_common():
        print(f"  {count:4d}  {reason}")
    assert share >= PROFILE_STEP_FLOOR
