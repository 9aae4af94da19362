"""QuestionnaireResponses checked against their Questionnaire, and Questionnaires' enableWhen."""

from __future__ import annotations

from typing import Any

import pytest

from hie.catalog import default_catalog_path, read_catalog
from hie.validators.conformance import Conformance, Context
from hie.validators.fhir import validate_resource
from hie.validators.report import Issue, Severity

CATALOG = read_catalog(default_catalog_path())
Q_URL = "http://hie.example.cn/fhir/Questionnaire/intake"
UCUM = "http://unitsofmeasure.org"
EXT = "http://hl7.org/fhir/StructureDefinition/"
SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"


def questionnaire(*items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Questionnaire",
        "url": Q_URL,
        "status": "active",
        "item": list(items),
        **extra,
    }


def response(*items: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": Q_URL,
        "status": status,
        "item": list(items),
    }


def issues(resource: dict[str, Any], *conformance: dict[str, Any]) -> list[Issue]:
    context = Context(Conformance(conformance))
    report = validate_resource(resource, catalog=CATALOG, context=context).report
    return [i for i in report.issues if i.rule.startswith("fhir.questionnaire.")]


def errors(resource: dict[str, Any], *conformance: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (i.rule, i.expression or "") for i in issues(resource, *conformance) if i.severity.rejects
    }


def answered(link: str, *values: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"linkId": link, "answer": list(values), **extra}


def check(q_item: dict[str, Any], *values: dict[str, Any]) -> set[str]:
    """The rules one question's answers break."""
    found = errors(response(answered(q_item["linkId"], *values)), questionnaire(q_item))
    return {rule for rule, _ in found}


# -- finding the Questionnaire ----------------------------------------------------------


def test_a_response_that_matches_its_questionnaire_has_no_issue() -> None:
    q = questionnaire(
        {"linkId": "name", "type": "string", "required": True},
        {"linkId": "vitals", "type": "group", "item": [{"linkId": "weight", "type": "decimal"}]},
    )
    qr = response(
        answered("name", {"valueString": "Li Wei"}),
        {"linkId": "vitals", "item": [answered("weight", {"valueDecimal": 61.5})]},
    )
    assert issues(qr, q) == []


def test_an_unknown_questionnaire_is_a_warning_not_a_rejection() -> None:
    found = issues(response(answered("anything", {"valueString": "x"})))
    assert [(i.severity, i.rule) for i in found] == [
        (Severity.WARNING, "fhir.questionnaire.reference")
    ]


def test_a_canonical_naming_a_value_set_is_an_error() -> None:
    qr = {**response(), "questionnaire": "http://hl7.org/fhir/ValueSet/example-extensional"}
    assert errors(qr) == {("fhir.questionnaire.reference", "QuestionnaireResponse.questionnaire")}


def test_a_contained_questionnaire_is_used() -> None:
    contained = {**questionnaire({"linkId": "q1", "type": "boolean"}), "id": "form"}
    qr = {**response(answered("q1", {"valueString": "yes"})), "questionnaire": "#form"}
    qr["contained"] = [contained]
    assert errors(qr) == {
        ("fhir.questionnaire.answer-type", "QuestionnaireResponse.item[0].answer[0].valueString")
    }


def test_a_questionnaire_in_the_same_bundle_is_used() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:8f0c5a4e-0d47-4b7e-9d0a-3c1b2a1d0e01",
                "resource": questionnaire({"linkId": "q1", "type": "integer"}),
            },
            {
                "fullUrl": "urn:uuid:8f0c5a4e-0d47-4b7e-9d0a-3c1b2a1d0e02",
                "resource": response(answered("q9", {"valueInteger": 1})),
            },
        ],
    }
    assert errors(bundle) == {("fhir.questionnaire.link-id", "Bundle.entry[1].resource.item[0]")}


# -- linkIds, nesting, order ----------------------------------------------------------------


def test_link_ids_must_exist_and_sit_where_the_questionnaire_nests_them() -> None:
    q = questionnaire(
        {"linkId": "grp", "type": "group", "item": [{"linkId": "q1", "type": "string"}]},
        {"linkId": "q2", "type": "string"},
    )
    assert errors(response(answered("nope", {"valueString": "a"})), q) == {
        ("fhir.questionnaire.link-id", "QuestionnaireResponse.item[0]")
    }
    assert errors(response(answered("q1", {"valueString": "a"})), q) == {
        ("fhir.questionnaire.link-id", "QuestionnaireResponse.item[0]")
    }
    out_of_order = response(
        answered("q2", {"valueString": "b"}),
        {"linkId": "grp", "item": [answered("q1", {"valueString": "a"})]},
    )
    assert errors(out_of_order, q) == {
        ("fhir.questionnaire.link-id", "QuestionnaireResponse.item[1]")
    }


# -- required ----------------------------------------------------------------------------


def test_a_required_question_needs_an_answer_unless_in_progress() -> None:
    q = questionnaire({"linkId": "q1", "type": "string", "required": True})
    assert errors(response(), q) == {("fhir.questionnaire.required", "QuestionnaireResponse")}
    assert errors(response({"linkId": "q1"}), q) == {
        ("fhir.questionnaire.required", "QuestionnaireResponse.item[0]")
    }
    draft = issues(response(status="in-progress"), q)
    assert [(i.severity, i.rule) for i in draft] == [
        (Severity.WARNING, "fhir.questionnaire.required")
    ]


def test_required_questions_inside_a_group_and_a_required_group() -> None:
    q = questionnaire(
        {
            "linkId": "grp",
            "type": "group",
            "required": True,
            "item": [
                {"linkId": "a", "type": "string", "required": True},
                {"linkId": "b", "type": "string"},
            ],
        }
    )
    assert errors(
        response({"linkId": "grp", "item": [answered("b", {"valueString": "x"})]}), q
    ) == {("fhir.questionnaire.required", "QuestionnaireResponse.item[0]")}
    assert errors(response(), q) == {("fhir.questionnaire.required", "QuestionnaireResponse")}


# -- answer types ------------------------------------------------------------------------

ANSWER_TYPES = [
    ("boolean", {"valueBoolean": True}, {"valueString": "yes"}),
    ("decimal", {"valueDecimal": 1.5}, {"valueInteger": 1}),
    ("integer", {"valueInteger": 3}, {"valueDecimal": 3.5}),
    ("date", {"valueDate": "2024-05-01"}, {"valueDateTime": "2024-05-01T10:00:00+08:00"}),
    ("dateTime", {"valueDateTime": "2024-05-01T10:00:00+08:00"}, {"valueDate": "2024-05-01"}),
    ("time", {"valueTime": "10:00:00"}, {"valueString": "10am"}),
    ("string", {"valueString": "abc"}, {"valueCoding": {"code": "abc"}}),
    ("text", {"valueString": "line 1\nline 2"}, {"valueCoding": {"code": "abc"}}),
    ("url", {"valueUri": "https://example.org/a"}, {"valueString": "https://example.org/a"}),
    ("attachment", {"valueAttachment": {"contentType": "text/plain"}}, {"valueString": "file"}),
    ("reference", {"valueReference": {"reference": "Patient/1"}}, {"valueString": "Patient/1"}),
    ("quantity", {"valueQuantity": {"value": 1}}, {"valueDecimal": 1}),
    ("choice", {"valueCoding": {"code": "a"}}, {"valueBoolean": True}),
    ("open-choice", {"valueString": "free text"}, {"valueBoolean": True}),
]


@pytest.mark.parametrize(("item_type", "good", "bad"), ANSWER_TYPES)
def test_answers_have_the_value_type_of_their_item(
    item_type: str, good: dict[str, Any], bad: dict[str, Any]
) -> None:
    item = {"linkId": "q1", "type": item_type}
    assert check(item, good) == set()
    assert check(item, bad) == {"fhir.questionnaire.answer-type"}


@pytest.mark.parametrize("item_type", ["group", "display", "question"])
def test_groups_display_items_and_abstract_questions_take_no_answers(item_type: str) -> None:
    item = {"linkId": "q1", "type": item_type}
    assert check(item, {"valueString": "x"}) == {"fhir.questionnaire.answer-type"}


def test_a_question_nests_its_sub_items_under_its_answers() -> None:
    q = questionnaire(
        {"linkId": "q1", "type": "boolean", "item": [{"linkId": "q1.1", "type": "string"}]}
    )
    good = response(
        answered("q1", {"valueBoolean": True, "item": [answered("q1.1", {"valueString": "a"})]})
    )
    bad = response({"linkId": "q1", "item": [answered("q1.1", {"valueString": "a"})]})
    assert errors(good, q) == set()
    assert ("fhir.questionnaire.answer-type", "QuestionnaireResponse.item[0].item") in errors(
        bad, q
    )


# -- repeats ---------------------------------------------------------------------------


def test_a_question_that_does_not_repeat_has_one_answer() -> None:
    item = {"linkId": "q1", "type": "string"}
    assert check(item, {"valueString": "a"}, {"valueString": "b"}) == {"fhir.questionnaire.repeats"}
    assert check({**item, "repeats": True}, {"valueString": "a"}, {"valueString": "b"}) == set()
    twice = response(answered("q1", {"valueString": "a"}), answered("q1", {"valueString": "b"}))
    assert errors(twice, questionnaire(item)) == {
        ("fhir.questionnaire.repeats", "QuestionnaireResponse.item[1]")
    }


def test_min_and_max_occurs_count_the_answers() -> None:
    def item(url: str, count: int) -> dict[str, Any]:
        extension = [{"url": EXT + url, "valueInteger": count}]
        return {"linkId": "q1", "type": "string", "repeats": True, "extension": extension}

    three = [{"valueString": v} for v in "abc"]
    assert check(item("questionnaire-maxOccurs", 2), *three) == {"fhir.questionnaire.repeats"}
    assert check(item("questionnaire-maxOccurs", 3), *three) == set()
    assert check(item("questionnaire-minOccurs", 4), *three) == {"fhir.questionnaire.required"}
    assert errors(response({"linkId": "q1"}), questionnaire(item("questionnaire-minOccurs", 1)))


# -- answer options and value sets -------------------------------------------------------


def test_answers_come_from_the_answer_options() -> None:
    options = [{"valueCoding": {"system": "http://example.org/cs", "code": c}} for c in ("a", "b")]
    choice = {"linkId": "q1", "type": "choice", "repeats": True, "answerOption": options}
    assert (
        check(
            choice,
            {"valueCoding": {"system": "http://example.org/cs", "code": "a", "display": "A"}},
        )
        == set()
    )
    assert check(choice, {"valueCoding": {"system": "http://example.org/cs", "code": "z"}}) == {
        "fhir.questionnaire.answer-option"
    }
    assert check(choice, {"valueString": "free text"}) == {"fhir.questionnaire.answer-option"}
    assert check({**choice, "type": "open-choice"}, {"valueString": "free text"}) == set()
    integers = {"linkId": "q1", "type": "integer", "answerOption": [{"valueInteger": 1}]}
    assert check(integers, {"valueInteger": 2}) == {"fhir.questionnaire.answer-option"}
    times = {"linkId": "q1", "type": "time", "answerOption": [{"valueTime": "10:00:00"}]}
    assert check(times, {"valueTime": "10:00:00"}) == set()


def test_an_exclusive_option_is_the_only_answer() -> None:
    exclusive = [{"url": EXT + "questionnaire-optionExclusive", "valueBoolean": True}]
    options = [
        {"valueCoding": {"code": "pain"}},
        {"valueCoding": {"code": "none"}, "extension": exclusive},
    ]
    item = {"linkId": "q1", "type": "choice", "repeats": True, "answerOption": options}
    assert check(item, {"valueCoding": {"code": "none"}}) == set()
    both = ({"valueCoding": {"code": "pain"}}, {"valueCoding": {"code": "none"}})
    assert check(item, *both) == {"fhir.questionnaire.answer-option"}


def test_coded_answers_are_checked_against_a_value_set_that_can_be_read_offline() -> None:
    value_set = {
        "resourceType": "ValueSet",
        "url": "http://hie.example.cn/fhir/ValueSet/yes-no",
        "status": "active",
        "compose": {
            "include": [
                {"system": "http://loinc.org", "concept": [{"code": "LA33-6"}, {"code": "LA32-8"}]}
            ]
        },
    }
    item = {"linkId": "q1", "type": "choice", "answerValueSet": value_set["url"]}
    qr = response(answered("q1", {"valueCoding": {"system": "http://loinc.org", "code": "LA33-6"}}))
    wrong = response(
        answered("q1", {"valueCoding": {"system": "http://loinc.org", "code": "LA1-1"}})
    )
    assert errors(qr, questionnaire(item), value_set) == set()
    assert {r for r, _ in errors(wrong, questionnaire(item), value_set)} == {
        "fhir.questionnaire.answer-option"
    }
    # A value set hie cannot read (it would need a terminology server) rejects nothing.
    assert errors(wrong, questionnaire(item)) == set()


# -- enableWhen ----------------------------------------------------------------------------


def conditional(*conditions: dict[str, Any], behavior: str | None = None) -> dict[str, Any]:
    gate = {"linkId": "gate", "type": "integer"}
    target: dict[str, Any] = {
        "linkId": "follow-up",
        "type": "string",
        "required": True,
        "enableWhen": list(conditions),
    }
    if behavior:
        target["enableBehavior"] = behavior
    return questionnaire(gate, target)


def test_answering_a_disabled_question_is_an_error_and_required_applies_only_when_enabled() -> None:
    q = conditional({"question": "gate", "operator": "=", "answerInteger": 1})
    enabled = answered("gate", {"valueInteger": 1})
    disabled = answered("gate", {"valueInteger": 0})
    follow_up = answered("follow-up", {"valueString": "details"})
    assert errors(response(enabled, follow_up), q) == set()
    assert errors(response(disabled), q) == set()
    assert errors(response(disabled, follow_up), q) == {
        ("fhir.questionnaire.enable-when", "QuestionnaireResponse.item[1]")
    }
    assert errors(response(enabled), q) == {
        ("fhir.questionnaire.required", "QuestionnaireResponse")
    }


def test_a_fhirpath_enable_when_expression_decides_whether_an_item_may_be_answered() -> None:
    """Kanta's enableWhen extension (a FHIRPath string over the response), which HL7's
    validator evaluates: true enables the item, false or empty does not."""
    expression = "QuestionnaireResponse.descendants().where(linkId='gate').answer.value = 1"
    kanta = "http://phr.kanta.fi/StructureDefinition/fiphr-ext-questionnaire-enablewhen"
    q = questionnaire(
        {"linkId": "gate", "type": "integer"},
        {
            "linkId": "follow-up",
            "type": "string",
            "extension": [{"url": kanta, "valueString": expression}],
        },
    )
    follow_up = answered("follow-up", {"valueString": "details"})
    assert errors(response(answered("gate", {"valueInteger": 1}), follow_up), q) == set()
    assert errors(response(answered("gate", {"valueInteger": 0}), follow_up), q) == {
        ("fhir.questionnaire.enable-when", "QuestionnaireResponse.item[1]")
    }
    assert errors(response(follow_up), q) == {
        ("fhir.questionnaire.enable-when", "QuestionnaireResponse.item[0]")
    }


@pytest.mark.parametrize(
    ("operator", "expected", "enabled"),
    [
        ("=", 5, True), ("=", 4, False), ("!=", 4, True), ("!=", 5, False),
        (">", 4, True), (">", 5, False), ("<", 6, True), ("<", 5, False),
        (">=", 5, True), (">=", 6, False), ("<=", 5, True), ("<=", 4, False),
    ],
)  # fmt: skip
def test_enable_when_operators(operator: str, expected: int, enabled: bool) -> None:
    q = conditional({"question": "gate", "operator": operator, "answerInteger": expected})
    qr = response(answered("gate", {"valueInteger": 5}))
    assert bool(errors(qr, q)) is enabled  # enabled: the required follow-up is missing


def test_enable_when_exists_and_enable_behavior() -> None:
    exists = conditional({"question": "gate", "operator": "exists", "answerBoolean": False})
    assert errors(response(), exists)  # no gate answer: enabled, so the follow-up is required
    assert not errors(response(answered("gate", {"valueInteger": 1})), exists)
    both = (
        {"question": "gate", "operator": "=", "answerInteger": 1},
        {"question": "gate", "operator": "=", "answerInteger": 2},
    )
    gate = answered("gate", {"valueInteger": 1})
    assert errors(response(gate), conditional(*both, behavior="any"))
    assert not errors(response(gate), conditional(*both, behavior="all"))


def test_enable_when_looks_in_the_same_repetition_of_a_group_first() -> None:
    q = questionnaire(
        {
            "linkId": "grp",
            "type": "group",
            "repeats": True,
            "item": [
                {"linkId": "smoker", "type": "boolean"},
                {"linkId": "packs", "type": "integer", "required": True,
                 "enableWhen": [{"question": "smoker", "operator": "=", "answerBoolean": True}]},
            ],
        }
    )  # fmt: skip
    qr = response(
        {
            "linkId": "grp",
            "item": [
                answered("smoker", {"valueBoolean": True}),
                answered("packs", {"valueInteger": 1}),
            ],
        },
        {"linkId": "grp", "item": [answered("smoker", {"valueBoolean": False})]},
        {
            "linkId": "grp",
            "item": [
                answered("smoker", {"valueBoolean": False}),
                answered("packs", {"valueInteger": 2}),
            ],
        },
    )
    assert errors(qr, q) == {
        ("fhir.questionnaire.enable-when", "QuestionnaireResponse.item[2].item[1]")
    }


# -- limits --------------------------------------------------------------------------------


def limited(item_type: str, **extensions: Any) -> dict[str, Any]:
    extension = [{"url": EXT + name, **value} for name, value in extensions.items()]
    return {"linkId": "q1", "type": item_type, "extension": extension}


def test_min_and_max_values() -> None:
    item = limited("integer", minValue={"valueInteger": 1}, maxValue={"valueInteger": 10})
    assert check(item, {"valueInteger": 10}) == set()
    assert check(item, {"valueInteger": 11}) == {"fhir.questionnaire.answer-limits"}
    assert check(item, {"valueInteger": 0}) == {"fhir.questionnaire.answer-limits"}
    dates = limited("date", minValue={"valueDate": "2020"}, maxValue={"valueDate": "2022-06"})
    assert check(dates, {"valueDate": "2021-12-31"}) == set()
    assert check(dates, {"valueDate": "2022-06"}) == set()
    assert check(dates, {"valueDate": "2022-06-30"}) == {"fhir.questionnaire.answer-limits"}
    assert check(dates, {"valueDate": "2019"}) == {"fhir.questionnaire.answer-limits"}


def test_decimal_places_lengths_and_patterns() -> None:
    decimals = limited("decimal", maxDecimalPlaces={"valueInteger": 1})
    assert check(decimals, {"valueDecimal": 36.6}) == set()
    assert check(decimals, {"valueDecimal": 36.65}) == {"fhir.questionnaire.answer-limits"}
    text = {**limited("string", minLength={"valueInteger": 2}), "maxLength": 4}
    assert check(text, {"valueString": "abc"}) == set()
    assert check(text, {"valueString": "a"}) == {"fhir.questionnaire.answer-limits"}
    assert check(text, {"valueString": "abcde"}) == {"fhir.questionnaire.answer-limits"}
    phone = limited("string", regex={"valueString": "1[0-9]{10}"})
    assert check(phone, {"valueString": "13800138000"}) == set()
    assert check(phone, {"valueString": "138-0013-8000"}) == {"fhir.questionnaire.answer-limits"}


def test_urn_uuid_answers_are_lowercase_uuids() -> None:
    item = {"linkId": "q1", "type": "url"}
    assert check(item, {"valueUri": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520"}) == set()
    assert check(item, {"valueUri": "c:\\temp\\example.txt"}) == set()
    assert check(item, {"valueUri": "urn:uuid:C757873D-EC9A-4326-A141-556F43239520"}) == {
        "fhir.questionnaire.answer-limits"
    }


# -- quantities, attachments, references ----------------------------------------------------


def quantity(value: float, code: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"value": value, "unit": code or "kilo"}
    if code:
        found |= {"system": UCUM, "code": code}
    return {"valueQuantity": found}


def test_quantity_limits_compare_ucum_units() -> None:
    def bounded(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
        extension = [
            {"url": SDC + "sdc-questionnaire-minQuantity", **low},
            {"url": SDC + "sdc-questionnaire-maxQuantity", **high},
        ]
        return {"linkId": "q1", "type": "quantity", "extension": extension}

    in_km = bounded(quantity(1, "km"), quantity(5, "km"))
    assert check(in_km, quantity(2000, "m")) == set()
    assert check(in_km, quantity(6000, "m")) == {"fhir.questionnaire.quantity"}
    assert check(in_km, quantity(3, "kg")) == {"fhir.questionnaire.quantity"}  # not a length
    assert check(in_km, quantity(3)) == {"fhir.questionnaire.quantity"}  # no UCUM code


def test_quantity_units_come_from_the_unit_options() -> None:
    options = [
        {"url": EXT + "questionnaire-unitOption", "valueCoding": {"system": UCUM, "code": c}}
        for c in ("kg", "g")
    ]
    item = {"linkId": "q1", "type": "quantity", "extension": options}
    assert check(item, quantity(60, "kg")) == set()
    assert check(item, quantity(60, "[lb_av]")) == {"fhir.questionnaire.quantity"}


def test_a_core_unit_value_set_of_other_code_systems_holds_no_ucum_unit() -> None:
    def unit_value_set(url: str) -> dict[str, Any]:
        extension = [{"url": EXT + "questionnaire-unitValueSet", "valueCanonical": url}]
        return {"linkId": "q1", "type": "quantity", "extension": extension}

    # R4's jurisdiction value set draws on ISO 3166 and UN M49 only.
    jurisdiction = unit_value_set("http://hl7.org/fhir/ValueSet/jurisdiction")
    assert check(jurisdiction, quantity(10, "km")) == {"fhir.questionnaire.quantity"}
    assert check(jurisdiction, quantity(10)) == {"fhir.questionnaire.quantity"}
    # Which UCUM codes ucum-units holds needs a terminology server: not judged offline.
    ucum = unit_value_set("http://hl7.org/fhir/ValueSet/ucum-units")
    assert check(ucum, quantity(10, "km")) == set()


def test_attachments_keep_to_mime_type_and_size() -> None:
    item = limited("attachment", mimeType={"valueCode": "image/*"}, maxSize={"valueDecimal": 4})
    assert check(item, {"valueAttachment": {"contentType": "image/png", "data": "AAEC"}}) == set()
    assert check(item, {"valueAttachment": {"contentType": "application/pdf", "data": "AAEC"}}) == {
        "fhir.questionnaire.attachment"
    }
    assert check(item, {"valueAttachment": {"contentType": "image/png", "data": "AAECAwQF"}}) == {
        "fhir.questionnaire.attachment"
    }


def test_reference_answers_name_an_allowed_resource_type() -> None:
    item = limited("reference", **{"questionnaire-referenceResource": {"valueCode": "Patient"}})
    assert check(item, {"valueReference": {"reference": "Patient/1"}}) == set()
    assert (
        check(item, {"valueReference": {"reference": "https://example.org/fhir/Patient/1"}})
        == set()
    )
    assert check(item, {"valueReference": {"reference": "Organization/1"}}) == {
        "fhir.questionnaire.reference-answer"
    }
    free = {"linkId": "q1", "type": "reference"}
    assert check(free, {"valueReference": {"reference": "https://example.org/Chicken/1"}}) == {
        "fhir.questionnaire.reference-answer"
    }
    assert check(free, {"valueReference": {"reference": "Patient /1"}}) == {
        "fhir.questionnaire.reference-answer"
    }


# -- the Questionnaire's own rules ---------------------------------------------------------


def test_enable_when_cannot_depend_on_the_items_own_sub_items_or_an_unknown_item() -> None:
    inner = questionnaire(
        {
            "linkId": "grp",
            "type": "group",
            "enableWhen": [{"question": "q1", "operator": "exists", "answerBoolean": True}],
            "item": [{"linkId": "q1", "type": "boolean"}],
        }
    )
    assert errors(inner) == {("fhir.questionnaire.enable-when-target", "Questionnaire.item[0]")}
    unknown = conditional({"question": "missing", "operator": "exists", "answerBoolean": True})
    assert errors(unknown) == {("fhir.questionnaire.enable-when-target", "Questionnaire.item[1]")}
    assert (
        errors(conditional({"question": "gate", "operator": "exists", "answerBoolean": True}))
        == set()
    )


@pytest.mark.parametrize(
    "items",
    [
        ["q1"],
        [{"linkId": 5, "answer": "yes"}],
        [{"linkId": "q1", "answer": [None, 3, {"valueCoding": "a"}], "item": {"x": 1}}],
        [{"linkId": "q1", "answer": [{"valueInteger": True, "item": [{"linkId": "q1"}]}]}],
    ],
)
def test_odd_shapes_never_raise(items: list[Any]) -> None:
    odd_condition = {"question": "q1", "operator": ">", "answerInteger": "x"}
    q = questionnaire(
        {
            "linkId": "q1",
            "type": "integer",
            "required": True,
            "answerOption": [{"valueInteger": 1}],
            "enableWhen": [odd_condition],
        },
        {"linkId": "q2", "type": "choice", "answerValueSet": 7, "extension": [{"url": EXT}]},
    )
    qr = response()
    qr["item"] = items
    errors(qr, q)  # structural problems are other rules' business; this one must not crash
