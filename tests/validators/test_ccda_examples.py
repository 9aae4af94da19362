"""The real-world check: 100 US C-CDA documents (../shared/data/ccda-examples).

With HL7's schema, the schema layer's verdict on each file equals lxml's own run of that schema
(VALIDATION-lxml.json); none raises; all are rejected as not Chinese shared documents. The
project's own schema is compared too, and its agreement counted.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from hie.validators.cda import CdaSchema, validate_cda

SCHEMAS = {
    "normative_CDA.xsd": "normative/infrastructure/cda/CDA.xsd",
    "CDA_SDTC.xsd": "extensions/SDTC/infrastructure/cda/CDA_SDTC.xsd",
}


@pytest.fixture(scope="module")
def examples(shared_data: Path) -> tuple[Path, dict[str, dict[str, object]]]:
    folder = shared_data / "ccda-examples"
    expected = json.loads((folder / "VALIDATION-lxml.json").read_text(encoding="utf-8"))
    assert len(expected) == 100
    return folder, expected


@pytest.mark.parametrize("column", SCHEMAS)
def test_schema_verdicts_equal_lxmls_own(examples, catalog, cda_schema_dir, column: str) -> None:
    folder, expected = examples
    schema = CdaSchema(cda_schema_dir / SCHEMAS[column])
    disagreements = []
    for name, verdicts in sorted(expected.items()):
        result = validate_cda((folder / name).read_bytes(), catalog=catalog, schema=schema)
        if result.schema_valid is not verdicts[column]:
            disagreements.append(name)
        schema_errors = [i for i in result.report.issues if i.rule == "cda.schema"]
        assert bool(schema_errors) is not verdicts[column], name
        assert all(i.line for i in schema_errors), name
    assert disagreements == []


def test_every_example_is_rejected_as_not_a_chinese_shared_document(examples, catalog) -> None:
    folder, expected = examples
    for name in sorted(expected):
        result = validate_cda((folder / name).read_bytes(), catalog=catalog)
        assert result.report.rejected, name
        assert result.table is None, name
        reasons = [i for i in result.report.errors if i.rule == "cda.catalog.unknown-type"]
        assert len(reasons) == 1, name
        message = reasons[0].message
        assert message.startswith("not a Chinese shared document: templateId "), name
        assert "match no table of the catalog" in message
        assert reasons[0].line is not None


def test_the_builtin_schema_agrees_with_hl7_sdtc_on_most_examples(examples, catalog) -> None:
    """Counts, printed with -s: the project's schema is lenient where HL7's SDTC schema checks
    vocabulary (e.g. classCode values); it must accept every document SDTC accepts."""
    folder, expected = examples
    counts: Counter[tuple[bool, bool]] = Counter()
    for name, verdicts in sorted(expected.items()):
        result = validate_cda((folder / name).read_bytes(), catalog=catalog)
        assert result.schema_valid is not None
        counts[(bool(verdicts["CDA_SDTC.xsd"]), result.schema_valid)] += 1
    print(f"built-in vs CDA_SDTC.xsd (sdtc, built-in): {dict(counts)}")
    assert counts[(True, False)] == 0
    assert counts[(True, True)] + counts[(False, False)] >= 95
