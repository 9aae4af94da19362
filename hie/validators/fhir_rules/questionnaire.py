"""QuestionnaireResponses checked against the Questionnaire they answer, and Questionnaires' own
rules about enableWhen, as HL7's validator (QuestionnaireValidator) checks them.

A QuestionnaireResponse's Questionnaire is found by its ``questionnaire`` canonical: a contained
Questionnaire (``#id``), one of the conformance resources given to the validation (``--ig``), or
one elsewhere in the same upload (a Bundle entry). When none is found the response cannot be
checked: a warning, as HL7 gives. Then every item is checked against the Questionnaire item with
its linkId: that it exists at that place, the answers' types, answer options, enableWhen, required
items and the limits the SDC/core extensions set (min/max values, lengths, regex, units, MIME
types). Checks that need a terminology server (value sets that are neither enumerated in a loaded
ValueSet nor contained) are left out: they would reject valid answers offline.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from hie.validators.conformance import Context, split_canonical
from hie.validators.fhir_rules.elements import is_resource_type
from hie.validators.fhir_rules.tree import ResourceNode, Tree
from hie.validators.report import Report, Severity
from hie.validators.rules import register

QUESTIONNAIRE_REF = register(
    "fhir.questionnaire.reference",
    summary="QuestionnaireResponse.questionnaire names a Questionnaire (a warning when it cannot "
    "be found, an error when the canonical names another kind of resource).",
    fix="Put the canonical URL (url|version) of the Questionnaire the form was filled from in "
    "QuestionnaireResponse.questionnaire, and give the Questionnaire to the validator "
    "(hie validate --ig) or contain it.",
)
LINK_ID = register(
    "fhir.questionnaire.link-id",
    summary="Every item of a QuestionnaireResponse has the linkId of an item of its "
    "Questionnaire at the same place (same parent group or question), in the Questionnaire's "
    "order.",
    fix="Copy linkIds from the Questionnaire exactly, nest items as the Questionnaire nests them "
    "(a group's items under item, a question's sub-items under answer.item) and keep their order.",
)
REQUIRED = register(
    "fhir.questionnaire.required",
    summary="Every enabled item the Questionnaire marks required (or gives a minOccurs) is "
    "answered, and a required group has answered items, unless the response is in-progress.",
    fix="Answer the required question, or set QuestionnaireResponse.status to in-progress while "
    "the form is not finished.",
)
ENABLE_WHEN = register(
    "fhir.questionnaire.enable-when",
    summary="An item whose enableWhen conditions are not met (the question is disabled) has no "
    "answers.",
    fix="Remove the answers of disabled questions, or correct the answer that their enableWhen "
    "depends on.",
)
ANSWER_TYPE = register(
    "fhir.questionnaire.answer-type",
    summary="Each answer has the value type of its item (boolean → valueBoolean, url → valueUri, "
    "choice → valueCoding, ...); groups and display items have no answers.",
    fix="Send the answer in the value[x] the item's type calls for; put a group's content in its "
    "nested items and give display items no answer.",
)
REPEATS = register(
    "fhir.questionnaire.repeats",
    summary="An item that does not repeat has one answer and appears once; repeating items keep "
    "to the Questionnaire's minOccurs/maxOccurs.",
    fix="Send a single answer for a non-repeating question (or mark it repeats in the "
    "Questionnaire), and as many answers as minOccurs/maxOccurs allow.",
)
ANSWER_OPTION = register(
    "fhir.questionnaire.answer-option",
    summary="An answer to an item with answerOption is one of those options (and an exclusive "
    "option is the only answer); a coded answer is in the item's answerValueSet when that value "
    "set can be read offline.",
    fix="Choose the answer from the item's answerOption (same system and code), or use an "
    "open-choice item for free text.",
)
ANSWER_LIMITS = register(
    "fhir.questionnaire.answer-limits",
    summary="Answers keep to the item's limits: minValue/maxValue, maxDecimalPlaces, "
    "minLength/maxLength, regex, and urn:uuid URIs are lowercase UUIDs.",
    fix="Correct the answer so that it lies within the limits the Questionnaire item sets.",
)
QUANTITY = register(
    "fhir.questionnaire.quantity",
    summary="Quantity answers use the item's unit options or unit value set, and can be compared "
    "with the item's min/max quantity (UCUM units of the same kind).",
    fix="Give the quantity a UCUM system and code (http://unitsofmeasure.org) from the units the "
    "item allows, within its minimum and maximum.",
)
ATTACHMENT = register(
    "fhir.questionnaire.attachment",
    summary="Attachment answers have one of the item's MIME types and are no larger than its "
    "maxSize.",
    fix="Attach a file of an allowed type (contentType) that is no larger than the item allows.",
)
REFERENCE_ANSWER = register(
    "fhir.questionnaire.reference-answer",
    summary="Reference answers are valid references to a FHIR resource type the item allows "
    "(questionnaire-referenceResource).",
    fix="Refer to the resource as Type/id (or its absolute URL) with an R4 resource type the item "
    "allows.",
)
ENABLE_WHEN_TARGET = register(
    "fhir.questionnaire.enable-when-target",
    summary="A Questionnaire item's enableWhen names another item of the Questionnaire that is "
    "not nested inside it.",
    fix="Point enableWhen.question at the linkId of a question outside the item (an item cannot "
    "depend on its own sub-items or on itself).",
)

_CORE = "http://hl7.org/fhir/StructureDefinition/"
_SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
_UCUM = "http://unitsofmeasure.org"
_EXCLUSIVE = _CORE + "questionnaire-optionExclusive"
# Non-standard FHIRPath enableWhen extensions HL7's validator honours: hie cannot evaluate them,
# so the items they govern are neither required nor forbidden here.
_ENABLE_EXPRESSIONS = (
    _SDC + "sdc-questionnaire-enableWhenExpression",
    "http://phr.kanta.fi/StructureDefinition/fiphr-ext-questionnaire-enablewhen",
)

# The answer value[x] each item type allows (HL7: choice/open-choice also take date, time,
# integer and string; text answers are strings).
_ANSWER_TYPES: dict[str, tuple[str, ...]] = {
    "boolean": ("valueBoolean",),
    "decimal": ("valueDecimal",),
    "integer": ("valueInteger",),
    "date": ("valueDate",),
    "dateTime": ("valueDateTime",),
    "time": ("valueTime",),
    "string": ("valueString",),
    "text": ("valueString",),
    "url": ("valueUri",),
    "attachment": ("valueAttachment",),
    "reference": ("valueReference",),
    "quantity": ("valueQuantity",),
    "choice": ("valueCoding", "valueDate", "valueTime", "valueInteger", "valueString"),
    "open-choice": ("valueCoding", "valueDate", "valueTime", "valueInteger", "valueString"),
}
_ANSWER_KEYS = frozenset(
    {
        "valueBoolean", "valueDecimal", "valueInteger", "valueDate", "valueDateTime",
        "valueTime", "valueString", "valueUri", "valueAttachment", "valueCoding",
        "valueQuantity", "valueReference",
    }
)  # fmt: skip
_OPTION_KEYS = ("valueCoding", "valueString", "valueInteger", "valueDate", "valueTime")

# UCUM units hie can convert between, by kind and factor to the kind's base unit.
_UCUM_UNITS: dict[str, tuple[str, Decimal]] = {
    "m": ("length", Decimal(1)),
    "km": ("length", Decimal(1000)),
    "cm": ("length", Decimal("0.01")),
    "mm": ("length", Decimal("0.001")),
    "um": ("length", Decimal("0.000001")),
    "[in_i]": ("length", Decimal("0.0254")),
    "[ft_i]": ("length", Decimal("0.3048")),
    "[yd_i]": ("length", Decimal("0.9144")),
    "[mi_i]": ("length", Decimal("1609.344")),
    "g": ("mass", Decimal(1)),
    "kg": ("mass", Decimal(1000)),
    "mg": ("mass", Decimal("0.001")),
    "ug": ("mass", Decimal("0.000001")),
    "[lb_av]": ("mass", Decimal("453.59237")),
    "[oz_av]": ("mass", Decimal("28.349523125")),
    "L": ("volume", Decimal(1)),
    "dL": ("volume", Decimal("0.1")),
    "mL": ("volume", Decimal("0.001")),
    "uL": ("volume", Decimal("0.000001")),
    "s": ("time", Decimal(1)),
    "min": ("time", Decimal(60)),
    "h": ("time", Decimal(3600)),
    "d": ("time", Decimal(86400)),
    "wk": ("time", Decimal(604800)),
}

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_REST_TAIL = re.compile(r"(?:^|/)([A-Za-z][A-Za-z0-9]*)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")
_CORE_CANONICAL = re.compile(r"http://hl7\.org/fhir/([A-Z][A-Za-z]+)/[^/]+")
_DATE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:\d{2})?)?)?)?"
)
# A quantified group that itself holds a quantifier: the shape of regexes whose matching time
# explodes (ReDoS). Such a Questionnaire regex is not run on the server.
_NESTED_QUANTIFIER = re.compile(r"\([^)]*[+*}][^)]*\)[+*{]")
_MAX_REGEX_INPUT = 10_000


def check_questionnaires(tree: Tree, report: Report, context: Context) -> None:
    for resource in tree.resources:
        if resource.type == "Questionnaire":
            _check_questionnaire(resource, report)
        elif resource.type == "QuestionnaireResponse":
            _check_response(tree, resource, report, context)


# -- small helpers over JSON of any shape ---------------------------------------------------


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _indexed(value: Any) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)]


def _extension_values(element: dict[str, Any], url: str, key: str) -> list[Any]:
    return [e[key] for e in _dicts(element.get("extension")) if e.get("url") == url and key in e]


def _extension_value(element: dict[str, Any], url: str) -> tuple[str, Any] | None:
    """(value key, value) of the first ``url`` extension of ``element``."""
    for extension in _dicts(element.get("extension")):
        if extension.get("url") == url:
            for key, value in extension.items():
                if key.startswith("value"):
                    return key, value
    return None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        return None


def _answer_value(answer: dict[str, Any]) -> tuple[str, Any] | None:
    for key, value in answer.items():
        if key in _ANSWER_KEYS:
            return key, value
    return None


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        if "value" in value:
            return f"{value.get('value')} {value.get('code') or value.get('unit') or ''}".strip()
        if "code" in value or "system" in value:
            return f"{value.get('system', '')}#{value.get('code', '')}"
        if "reference" in value:
            return str(value.get("reference"))
        return "the value"
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _item_text(item: dict[str, Any]) -> str:
    return f"item '{item.get('linkId')}'"


# -- finding the Questionnaire ------------------------------------------------------------


@dataclass
class _Source:
    """The Questionnaire a response answers, and the resources its '#id' references reach."""

    questionnaire: dict[str, Any]
    contained: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_link: dict[str, dict[str, Any]] = field(default_factory=dict)


def _contained_by_id(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in _dicts(resource.get("contained")) if isinstance(c.get("id"), str)}


def _matches(resource: dict[str, Any], url: str, version: str | None) -> bool:
    return resource.get("url") == url and (version is None or resource.get("version") == version)


def _find_questionnaire(
    tree: Tree, response: ResourceNode, canonical: str, context: Context
) -> _Source | None:
    if canonical.startswith("#"):
        contained = _contained_by_id(response.data)
        found = contained.get(canonical[1:])
        if found is not None and found.get("resourceType") == "Questionnaire":
            return _Source(found, contained)
        return None
    resolved = context.conformance.resolve(canonical, "Questionnaire")
    if resolved is None:
        url, version = split_canonical(canonical)
        for other in tree.resources:
            if other.type == "Questionnaire" and _matches(other.data, url, version):
                resolved = other.data
                break
    if resolved is None:
        return None
    return _Source(resolved, _contained_by_id(resolved))


def _wrong_type(canonical: str, context: Context) -> str | None:
    """The resource type ``canonical`` names when it is known not to be a Questionnaire."""
    other = context.conformance.resolve(canonical)
    if other is not None:
        rtype = other.get("resourceType")
        return str(rtype) if rtype != "Questionnaire" else None
    core = _CORE_CANONICAL.fullmatch(split_canonical(canonical)[0])
    if core and core.group(1) != "Questionnaire" and is_resource_type(core.group(1)):
        return core.group(1)
    return None


def _index_links(items: Any, into: dict[str, dict[str, Any]]) -> None:
    pending = list(reversed(_dicts(items)))
    while pending:
        item = pending.pop()
        link = item.get("linkId")
        if isinstance(link, str):
            into.setdefault(link, item)
        pending.extend(reversed(_dicts(item.get("item"))))


def _check_response(tree: Tree, response: ResourceNode, report: Report, context: Context) -> None:
    canonical = response.data.get("questionnaire")
    if not isinstance(canonical, str) or not canonical:
        return
    where = f"{response.path}.questionnaire"
    source = _find_questionnaire(tree, response, canonical, context)
    if source is None:
        wrong = _wrong_type(canonical, context)
        if wrong is not None:
            report.add(
                Severity.ERROR,
                QUESTIONNAIRE_REF.id,
                f"{where}: {canonical!r} is a {wrong}, not a Questionnaire",
                code="invalid",
                expression=where,
            )
            return
        example = re.match(r"https?://example\.org", canonical) is not None
        report.add(
            Severity.INFORMATION if example else Severity.WARNING,
            QUESTIONNAIRE_REF.id,
            f"{where}: the Questionnaire {canonical!r} was not found, so the answers were not "
            "checked against it",
            code="not-found",
            expression=where,
        )
        return
    _index_links(source.questionnaire.get("item"), source.by_link)
    checker = _ResponseChecker(report, context, source, response)
    checker.items(_dicts(source.questionnaire.get("item")), response.data, response.path, [])


# -- value sets readable offline ----------------------------------------------------------


@dataclass
class _Membership:
    """Which codings a value set holds, as far as it can be told without a terminology server."""

    codes: set[tuple[str, str]] = field(default_factory=set)
    excluded: set[tuple[str, str]] = field(default_factory=set)
    open_systems: set[str] = field(default_factory=set)  # whole systems or filtered ones
    closed: bool = True  # False when it imports other value sets: membership unknown

    def holds(self, system: Any, code: Any) -> bool | None:
        if not isinstance(system, str) or not isinstance(code, str):
            return None
        if (system, code) in self.excluded:
            return False
        if (system, code) in self.codes:
            return True
        if system in self.open_systems or not self.closed:
            return None
        return False


def _expansion_codes(contains: Any, into: set[tuple[str, str]]) -> None:
    pending = _dicts(contains)
    while pending:
        entry = pending.pop()
        if isinstance(entry.get("system"), str) and isinstance(entry.get("code"), str):
            into.add((entry["system"], entry["code"]))
        pending.extend(_dicts(entry.get("contains")))


def _membership(value_set: dict[str, Any]) -> _Membership | None:
    membership = _Membership()
    expansion = value_set.get("expansion")
    if isinstance(expansion, dict) and isinstance(expansion.get("contains"), list):
        if "offset" in expansion:
            return None  # a page of the expansion, not all of it
        _expansion_codes(expansion["contains"], membership.codes)
        return membership
    compose = value_set.get("compose")
    if not isinstance(compose, dict) or not _dicts(compose.get("include")):
        return None
    for include in _dicts(compose.get("include")):
        system = include.get("system")
        if include.get("valueSet") or not isinstance(system, str):
            membership.closed = False
            continue
        concepts = _dicts(include.get("concept"))
        if include.get("filter") or not concepts:
            membership.open_systems.add(system)
        for concept in concepts:
            if isinstance(concept.get("code"), str):
                membership.codes.add((system, concept["code"]))
    for exclude in _dicts(compose.get("exclude")):
        system = exclude.get("system")
        for concept in _dicts(exclude.get("concept")):
            if isinstance(system, str) and isinstance(concept.get("code"), str):
                membership.excluded.add((system, concept["code"]))
    return membership


# -- comparisons ------------------------------------------------------------------------------


def _date_key(value: Any) -> tuple[tuple[int, int, int, str], str | None] | None:
    """A date or dateTime as its earliest moment (missing month/day count as the first), with
    its time zone; HL7 compares partial dates that way (2022-06-30 is after 2022-06)."""
    if not isinstance(value, str):
        return None
    match = _DATE.fullmatch(value)
    if match is None:
        return None
    year, month, day, time, zone = match.groups()
    return (int(year), int(month or 1), int(day or 1), time or ""), zone


def _compare_dates(left: Any, right: Any) -> int | None:
    a, b = _date_key(left), _date_key(right)
    if a is None or b is None:
        return None
    (a_key, a_zone), (b_key, b_zone) = a, b
    if a_key[3] and b_key[3] and a_zone != b_zone:
        a_key, b_key = (*a_key[:3], ""), (*b_key[:3], "")  # zones differ: compare the days
        if a_key == b_key:
            return None
    return (a_key > b_key) - (a_key < b_key)


def _compare(key: str, left: Any, right: Any) -> int | None:
    """-1, 0 or 1 for two answer values of the kind ``key`` names; None when not comparable."""
    if key in ("valueInteger", "valueDecimal"):
        a, b = _number(left), _number(right)
        return None if a is None or b is None else (a > b) - (a < b)
    if key in ("valueDate", "valueDateTime"):
        return _compare_dates(left, right)
    if key in ("valueTime", "valueString", "valueUri"):
        if not isinstance(left, str) or not isinstance(right, str):
            return None
        return (left > right) - (left < right)
    return None


def _same_coding(answer: Any, option: Any) -> bool | None:
    if not isinstance(answer, dict) or not isinstance(option, dict):
        return None
    if answer.get("code") != option.get("code"):
        return False
    systems = answer.get("system"), option.get("system")
    return None in systems or systems[0] == systems[1]


def _equal(key: str, left: Any, right: Any) -> bool | None:
    if key == "valueCoding":
        return _same_coding(left, right)
    if key == "valueBoolean":
        return left is right if isinstance(left, bool) and isinstance(right, bool) else None
    if key == "valueReference":
        if isinstance(left, dict) and isinstance(right, dict):
            return left.get("reference") == right.get("reference")
        return None
    if key == "valueQuantity":
        if not isinstance(left, dict) or not isinstance(right, dict):
            return None
        if (left.get("system"), left.get("code")) != (right.get("system"), right.get("code")):
            return None
        order = _compare("valueDecimal", left.get("value"), right.get("value"))
        return None if order is None else order == 0
    order = _compare(key, left, right)
    return None if order is None else order == 0


def _quantity_order(answer: dict[str, Any], limit: dict[str, Any]) -> int | str | None:
    """How the answer compares to a limit: -1/0/1, 'no-units' or 'incompatible', or None when
    hie cannot tell (units it does not know)."""
    a_value, l_value = _number(answer.get("value")), _number(limit.get("value"))
    if a_value is None or l_value is None:
        return None
    a_unit = (answer.get("system"), answer.get("code"))
    l_unit = (limit.get("system"), limit.get("code"))
    if not all(isinstance(part, str) for part in (*a_unit, *l_unit)):
        return "no-units"
    if a_unit != l_unit:
        if a_unit[0] != _UCUM or l_unit[0] != _UCUM:
            return None
        a_kind, l_kind = _UCUM_UNITS.get(str(a_unit[1])), _UCUM_UNITS.get(str(l_unit[1]))
        if a_kind is None or l_kind is None:
            return None
        if a_kind[0] != l_kind[0]:
            return "incompatible"
        a_value, l_value = a_value * a_kind[1], l_value * l_kind[1]
    return (a_value > l_value) - (a_value < l_value)


# -- the response walk ---------------------------------------------------------------------


class _ResponseChecker:
    def __init__(
        self, report: Report, context: Context, source: _Source, response: ResourceNode
    ) -> None:
        self.report = report
        self.context = context
        self.source = source
        self.response = response
        self.in_progress = response.data.get("status") == "in-progress"
        # linkId -> items beneath a response element, built once per element (by identity)
        self.beneath: dict[int, dict[str, list[dict[str, Any]]]] = {}

    def error(self, rule: str, path: str, message: str, code: str = "invalid") -> None:
        self.report.add(Severity.ERROR, rule, f"{path}: {message}", code=code, expression=path)

    def missing(self, path: str, message: str) -> None:
        """A required answer is missing: an error, a warning while the form is in progress."""
        severity = Severity.WARNING if self.in_progress else Severity.ERROR
        self.report.add(
            severity, REQUIRED.id, f"{path}: {message}", code="required", expression=path
        )

    # items -----------------------------------------------------------------------------

    def items(
        self,
        q_items: list[dict[str, Any]],
        container: dict[str, Any],
        path: str,
        ancestors: list[dict[str, Any]],
    ) -> None:
        """Check the response items in ``container.item`` against ``q_items``, the
        Questionnaire items that may appear there; ``ancestors`` are the response elements
        (root, items, answers) above ``container``, for enableWhen."""
        scope = [*ancestors, container]
        positions = {
            q.get("linkId"): i for i, q in enumerate(q_items) if isinstance(q.get("linkId"), str)
        }
        present: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        empty: dict[str, int] = {}
        last = -1
        for index, item in _indexed(container.get("item")):
            link = item.get("linkId")
            if not isinstance(link, str) or not link:
                continue  # linkId is 1..1: the structure layer reports its absence
            item_path = f"{path}.item[{index}]"
            position = positions.get(link)
            if position is None:
                if link in self.source.by_link:
                    message = (
                        f"linkId '{link}' is an item of the Questionnaire, but not here: nest it "
                        "where the Questionnaire does"
                    )
                else:
                    message = f"linkId '{link}' is not an item of the Questionnaire"
                self.error(LINK_ID.id, item_path, message, "structure")
                continue
            if position < last:
                self.error(
                    LINK_ID.id,
                    item_path,
                    f"item '{link}' comes after items the Questionnaire puts after it; keep the "
                    "Questionnaire's order",
                    "structure",
                )
            last = position
            if _dicts(item.get("answer")) or _dicts(item.get("item")):
                present.setdefault(link, []).append((index, item))
            else:
                empty.setdefault(link, index)
        for q_item in q_items:
            link = q_item.get("linkId")
            if not isinstance(link, str):
                continue
            enabled = self.enabled(q_item, scope)
            found = present.get(link)
            if found:
                self.present(q_item, found, path, scope, enabled)
            elif enabled is True:
                where = f"{path}.item[{empty[link]}]" if link in empty else path
                self.absent(q_item, where)

    def absent(self, q_item: dict[str, Any], path: str) -> None:
        link = q_item.get("linkId")
        minimum = _extension_values(q_item, _CORE + "questionnaire-minOccurs", "valueInteger")
        if q_item.get("required") is True:
            if q_item.get("type") == "group":
                self.missing(path, f"the required group '{link}' has no answered items")
            else:
                self.missing(path, f"the required {_item_text(q_item)} has no answer")
        elif minimum and isinstance(minimum[0], int) and minimum[0] > 0:
            self.missing(path, f"{_item_text(q_item)} needs at least {minimum[0]} answers, has 0")

    def present(
        self,
        q_item: dict[str, Any],
        found: list[tuple[int, dict[str, Any]]],
        path: str,
        scope: list[dict[str, Any]],
        enabled: bool | None,
    ) -> None:
        link = q_item.get("linkId")
        if enabled is False:
            for index, _ in found:
                self.error(
                    ENABLE_WHEN.id,
                    f"{path}.item[{index}]",
                    f"item '{link}' is answered although its enableWhen conditions are not met",
                )
        if len(found) > 1 and q_item.get("repeats") is not True:
            index = found[1][0]
            self.error(
                REPEATS.id,
                f"{path}.item[{index}]",
                f"item '{link}' appears {len(found)} times but does not repeat",
            )
        for index, item in found:
            self.item(q_item, item, f"{path}.item[{index}]", scope, enabled is True)

    def item(
        self,
        q_item: dict[str, Any],
        item: dict[str, Any],
        path: str,
        scope: list[dict[str, Any]],
        enabled: bool,
    ) -> None:
        item_type = q_item.get("type")
        required = enabled and q_item.get("required") is True
        answers = _indexed(item.get("answer"))
        children = _dicts(item.get("item"))
        link = q_item.get("linkId")
        if item_type == "group":
            if answers:
                self.error(
                    ANSWER_TYPE.id,
                    path,
                    f"'{link}' is a group: groups have no answers; put the group's questions in "
                    "its item array",
                    "structure",
                )
            if required and not children:
                self.missing(path, f"the required group '{link}' has no items")
            self.items(_dicts(q_item.get("item")), item, path, scope)
            return
        if item_type == "display":
            if answers or children:
                self.error(
                    ANSWER_TYPE.id,
                    path,
                    f"'{link}' is a display item: it has no answers or items",
                    "structure",
                )
            return
        if not isinstance(item_type, str) or item_type not in _ANSWER_TYPES:
            if answers:
                self.error(
                    ANSWER_TYPE.id,
                    path,
                    f"item '{link}' has type {item_type!r}, which takes no answers",
                    "structure",
                )
            return
        if children:
            self.error(
                ANSWER_TYPE.id,
                f"{path}.item",
                f"'{link}' is a question, not a group: its nested items go under answer.item",
                "structure",
            )
        if not answers and required:
            self.missing(path, f"the required {_item_text(q_item)} has no answer")
        self.occurrences(q_item, answers, path)
        for index, answer in answers:
            answer_path = f"{path}.answer[{index}]"
            self.answer(q_item, answer, answer_path, len(answers))
            self.items(_dicts(q_item.get("item")), answer, answer_path, [*scope, item])

    def occurrences(
        self, q_item: dict[str, Any], answers: list[tuple[int, dict[str, Any]]], path: str
    ) -> None:
        link = q_item.get("linkId")
        if len(answers) > 1 and q_item.get("repeats") is not True:
            self.error(
                REPEATS.id,
                f"{path}.answer[{answers[1][0]}]",
                f"item '{link}' does not repeat, so it takes one answer, not {len(answers)}",
            )
        minimum = _extension_values(q_item, _CORE + "questionnaire-minOccurs", "valueInteger")
        maximum = _extension_values(q_item, _CORE + "questionnaire-maxOccurs", "valueInteger")
        if minimum and isinstance(minimum[0], int) and len(answers) < minimum[0]:
            self.missing(
                path, f"item '{link}' needs at least {minimum[0]} answers, has {len(answers)}"
            )
        if maximum and isinstance(maximum[0], int) and len(answers) > maximum[0]:
            self.error(
                REPEATS.id,
                path,
                f"item '{link}' takes at most {maximum[0]} answers, has {len(answers)}",
            )

    # answers ---------------------------------------------------------------------------

    def answer(self, q_item: dict[str, Any], answer: dict[str, Any], path: str, count: int) -> None:
        found = _answer_value(answer)
        if found is None:
            return
        key, value = found
        value_path = f"{path}.{key}"
        item_type = str(q_item.get("type"))
        allowed = _ANSWER_TYPES[item_type]
        if key not in allowed:
            expected = " or ".join(allowed)
            self.error(
                ANSWER_TYPE.id,
                value_path,
                f"item '{q_item.get('linkId')}' has type {item_type}: its answers are {expected}, "
                f"not {key}",
                "structure",
            )
            return
        self.options(q_item, key, value, value_path, item_type, count)
        if key in ("valueInteger", "valueDecimal", "valueDate", "valueDateTime", "valueTime"):
            self.limits(q_item, key, value, value_path)
        if key == "valueDecimal":
            self.decimal_places(q_item, value, value_path)
        elif key == "valueString":
            self.text(q_item, value, value_path)
        elif key == "valueUri":
            self.uri(value, value_path)
        elif key == "valueAttachment":
            self.attachment(q_item, value, value_path)
        elif key == "valueReference":
            self.reference(q_item, value, value_path)
        elif key == "valueQuantity":
            self.quantity(q_item, value, value_path)

    def options(
        self, q_item: dict[str, Any], key: str, value: Any, path: str, item_type: str, count: int
    ) -> None:
        options = _dicts(q_item.get("answerOption"))
        open_choice = item_type == "open-choice"
        if options and key in _OPTION_KEYS:
            typed = [o for o in options if key in o]
            matching = [o for o in typed if _equal(key, value, o[key]) is not False]
            if not typed:
                if not open_choice:
                    kind = key.removeprefix("value")
                    self.error(
                        ANSWER_OPTION.id,
                        path,
                        f"the item's answer options have no {kind} values, so a {kind} answer "
                        "is not one of them",
                        "code-invalid",
                    )
            elif not matching:
                if not open_choice:
                    self.error(
                        ANSWER_OPTION.id,
                        path,
                        f"{_shown(value)} is not one of the answer options of {_item_text(q_item)}",
                        "code-invalid",
                    )
            elif count > 1 and any(
                _extension_values(o, _EXCLUSIVE, "valueBoolean") == [True] for o in matching
            ):
                self.error(
                    ANSWER_OPTION.id,
                    path,
                    f"{_shown(value)} is an exclusive option: it must be the only answer",
                    "business-rule",
                )
            return
        value_set = q_item.get("answerValueSet")
        if key == "valueCoding" and isinstance(value_set, str) and isinstance(value, dict):
            membership = self.value_set(value_set)
            if membership is None:
                return
            if open_choice and not value.get("code") and not value.get("system"):
                return  # free text carried as a display-only Coding
            if membership.holds(value.get("system"), value.get("code")) is False:
                self.error(
                    ANSWER_OPTION.id,
                    path,
                    f"{_shown(value)} is not in the answer value set {value_set}",
                    "code-invalid",
                )

    def value_set(self, reference: str) -> _Membership | None:
        """What the value set ``reference`` holds, when it is contained or loaded and
        enumerable; None otherwise (no terminology server here)."""
        if reference.startswith("#"):
            found = self.source.contained.get(reference[1:])
            if found is None or found.get("resourceType") != "ValueSet":
                return None
            return _membership(found)
        resolved = self.context.conformance.resolve(reference, "ValueSet")
        return _membership(resolved) if resolved is not None else None

    def limits(self, q_item: dict[str, Any], key: str, value: Any, path: str) -> None:
        for url, sign, word in ((_CORE + "minValue", -1, "less"), (_CORE + "maxValue", 1, "more")):
            limit = _extension_value(q_item, url)
            if limit is None:
                continue
            limit_key, limit_value = limit
            numeric = ("valueInteger", "valueDecimal")
            if limit_key != key and not (limit_key in numeric and key in numeric):
                continue
            if _compare(key, value, limit_value) == sign:
                bound = "minimum" if sign < 0 else "maximum"
                self.error(
                    ANSWER_LIMITS.id,
                    path,
                    f"{_shown(value)} is {word} than the allowed {bound} of {_shown(limit_value)}",
                    "value",
                )

    def decimal_places(self, q_item: dict[str, Any], value: Any, path: str) -> None:
        places = _extension_values(q_item, _CORE + "maxDecimalPlaces", "valueInteger")
        number = _number(value)
        if not places or not isinstance(places[0], int) or number is None:
            return
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places[0]:
            self.error(
                ANSWER_LIMITS.id,
                path,
                f"{value} has {-exponent} decimal places; the item allows {places[0]}",
                "value",
            )

    def text(self, q_item: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, str):
            return
        minimum = _extension_values(q_item, _CORE + "minLength", "valueInteger")
        maximum = q_item.get("maxLength")
        if minimum and isinstance(minimum[0], int) and len(value) < minimum[0]:
            self.error(
                ANSWER_LIMITS.id,
                path,
                f"the answer has {len(value)} characters; the item needs at least {minimum[0]}",
                "value",
            )
        if isinstance(maximum, int) and not isinstance(maximum, bool) and len(value) > maximum:
            self.error(
                ANSWER_LIMITS.id,
                path,
                f"the answer has {len(value)} characters; the item allows at most {maximum}",
                "value",
            )
        for pattern in _extension_values(q_item, _CORE + "regex", "valueString"):
            compiled = _regex(pattern)
            if compiled is None or len(value) > _MAX_REGEX_INPUT:
                continue
            if compiled.fullmatch(value) is None:
                formats = _extension_values(q_item, _CORE + "entryFormat", "valueString")
                hint = f" (expected like {formats[0]!r})" if formats else ""
                self.error(
                    ANSWER_LIMITS.id,
                    path,
                    f"{_shown(value)!r} does not match the item's pattern {pattern!r}{hint}",
                    "value",
                )

    def uri(self, value: Any, path: str) -> None:
        if not isinstance(value, str) or not value.startswith("urn:uuid:"):
            return
        if _UUID.fullmatch(value.removeprefix("urn:uuid:")) is None:
            self.error(
                ANSWER_LIMITS.id,
                path,
                f"{_shown(value)} is not a urn:uuid: a UUID is 36 lowercase hexadecimal digits "
                "and hyphens",
                "value",
            )

    def attachment(self, q_item: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, dict):
            return
        mime_types = _extension_values(q_item, _CORE + "mimeType", "valueCode")
        allowed = [t for t in mime_types if isinstance(t, str)]
        content_type = value.get("contentType")
        if allowed and isinstance(content_type, str):
            media = content_type.split(";", 1)[0].strip().lower()
            if not any(_media_matches(media, t.lower()) for t in allowed):
                self.error(
                    ATTACHMENT.id,
                    f"{path}.contentType",
                    f"the attachment is {content_type}; the item allows {', '.join(allowed)}",
                    "value",
                )
        limits = _extension_values(q_item, _CORE + "maxSize", "valueDecimal")
        limit = _number(limits[0]) if limits else None
        size = _attachment_size(value)
        if limit is not None and size is not None and size > limit:
            self.error(
                ATTACHMENT.id,
                path,
                f"the attachment is {size} bytes; the item allows at most {limit}",
                "value",
            )

    def reference(self, q_item: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, dict):
            return
        reference = value.get("reference")
        target = value.get("type") if isinstance(value.get("type"), str) else None
        if isinstance(reference, str):
            if re.search(r"\s", reference):
                self.error(
                    REFERENCE_ANSWER.id,
                    f"{path}.reference",
                    f"{reference!r} is not a valid reference (it contains white space)",
                    "value",
                )
            tail = _REST_TAIL.search(reference)
            if tail is not None and not reference.startswith(("#", "urn:")):
                named = tail.group(1)
                if named[0].isupper() and not is_resource_type(named):
                    self.error(
                        REFERENCE_ANSWER.id,
                        f"{path}.reference",
                        f"{reference!r} refers to a {named}, which is not an R4 resource type",
                        "value",
                    )
                    return
                target = target or named
        allowed = [
            t
            for t in _extension_values(
                q_item, _CORE + "questionnaire-referenceResource", "valueCode"
            )
            if isinstance(t, str)
        ]
        if target and allowed and "Resource" not in allowed and target not in allowed:
            self.error(
                REFERENCE_ANSWER.id,
                path,
                f"the answer refers to a {target}; the item allows {', '.join(allowed)}",
                "value",
            )

    def quantity(self, q_item: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, dict):
            return
        units = _dicts(_extension_values(q_item, _CORE + "questionnaire-unitOption", "valueCoding"))
        unit = (value.get("system"), value.get("code"))
        if units and not any((u.get("system"), u.get("code")) == unit for u in units):
            listed = ", ".join(str(u.get("code")) for u in units)
            self.error(
                QUANTITY.id,
                path,
                f"the unit {_shown(unit[1] or value.get('unit'))} is not one of the item's unit "
                f"options ({listed})",
                "code-invalid",
            )
        unit_sets = _extension_values(
            q_item, _CORE + "questionnaire-unitValueSet", "valueCanonical"
        )
        if unit_sets and isinstance(unit_sets[0], str):
            membership = self.value_set(unit_sets[0])
            if membership is not None and (unit[1] is None or membership.holds(*unit) is False):
                self.error(
                    QUANTITY.id,
                    path,
                    f"the unit {_shown(unit[1] or value.get('unit'))} is not in the item's "
                    f"unit value set {unit_sets[0]}",
                    "code-invalid",
                )
        bounds = (
            (_SDC + "sdc-questionnaire-minQuantity", -1),
            (_SDC + "sdc-questionnaire-maxQuantity", 1),
        )
        for url, sign in bounds:
            limits = _dicts(_extension_values(q_item, url, "valueQuantity"))
            if not limits:
                continue
            bound = "minimum" if sign < 0 else "maximum"
            order = _quantity_order(value, limits[0])
            if order == "no-units":
                message = (
                    f"{_shown(value)} cannot be compared with the {bound} {_shown(limits[0])}: "
                    "both need a UCUM system and code"
                )
            elif order == "incompatible":
                message = (
                    f"{_shown(value)} cannot be compared with the {bound} {_shown(limits[0])}: "
                    "the units measure different things"
                )
            elif order == sign:
                word = "less" if sign < 0 else "more"
                message = f"{_shown(value)} is {word} than the {bound} {_shown(limits[0])}"
            else:
                continue
            self.error(QUANTITY.id, path, message, "value")

    # enableWhen ------------------------------------------------------------------------

    def enabled(self, q_item: dict[str, Any], scope: list[dict[str, Any]]) -> bool | None:
        """Whether ``q_item`` is enabled where ``scope`` ends; None when hie cannot tell."""
        if any(_extension_value(q_item, url) is not None for url in _ENABLE_EXPRESSIONS):
            return None
        conditions = _dicts(q_item.get("enableWhen"))
        if not conditions:
            return True
        results = [self.condition(c, scope) for c in conditions]
        if q_item.get("enableBehavior") == "any":
            if True in results:
                return True
            return False if all(r is False for r in results) else None
        if False in results:
            return False
        return True if all(r is True for r in results) else None

    def answers_to(self, link: str, scope: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        """The answer values of the question ``link`` nearest to where ``scope`` ends: in the
        same repetition of a group first, then further out (HL7's rule for repeating groups)."""
        for container in reversed(scope):
            index = self.beneath.get(id(container))
            if index is None:
                index = self.beneath[id(container)] = _items_beneath(container)
            items = index.get(link)
            if items:
                values = []
                for item in items:
                    for answer in _dicts(item.get("answer")):
                        found = _answer_value(answer)
                        if found is not None:
                            values.append(found)
                return values
        return []

    def condition(self, condition: dict[str, Any], scope: list[dict[str, Any]]) -> bool | None:
        question = condition.get("question")
        operator = condition.get("operator")
        expected = next(
            ((k, v) for k, v in condition.items() if k.startswith("answer") and k != "answer"),
            None,
        )
        if not isinstance(question, str) or expected is None:
            return None
        answers = self.answers_to(question, scope)
        if operator == "exists":
            wanted = expected[1]
            return (bool(answers) == wanted) if isinstance(wanted, bool) else None
        if not answers:
            return None if operator == "!=" else False
        key = "value" + expected[0].removeprefix("answer")
        verdicts: list[bool | None] = []
        for answer_key, value in answers:
            if answer_key != key and not {answer_key, key} <= {"valueInteger", "valueDecimal"}:
                verdicts.append(None)
            elif operator in ("=", "!="):
                same = _equal(key, value, expected[1])
                verdicts.append(None if same is None else same == (operator == "="))
            else:
                verdicts.append(_ordered(operator, _compare(key, value, expected[1])))
        if True in verdicts:
            return True
        return False if all(v is False for v in verdicts) else None


def _ordered(operator: Any, order: int | None) -> bool | None:
    if order is None:
        return None
    if operator == ">":
        return order > 0
    if operator == "<":
        return order < 0
    if operator == ">=":
        return order >= 0
    if operator == "<=":
        return order <= 0
    return None


def _items_beneath(container: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    pending = _dicts(container.get("item"))
    while pending:
        item = pending.pop()
        link = item.get("linkId")
        if isinstance(link, str):
            found.setdefault(link, []).append(item)
        pending.extend(_dicts(item.get("item")))
        for answer in _dicts(item.get("answer")):
            pending.extend(_dicts(answer.get("item")))
    return found


def _media_matches(media: str, allowed: str) -> bool:
    if allowed.endswith("/*"):
        return media.startswith(allowed[:-1])
    return media == allowed


def _attachment_size(value: dict[str, Any]) -> int | None:
    size = value.get("size")
    if isinstance(size, int) and not isinstance(size, bool):
        return size
    data = value.get("data")
    if isinstance(data, str):
        try:
            return len(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError):
            return None
    return None


def _regex(pattern: Any) -> re.Pattern[str] | None:
    if not isinstance(pattern, str) or len(pattern) > 1000 or _NESTED_QUANTIFIER.search(pattern):
        return None
    return _compile(pattern)


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return None


# -- the Questionnaire's own rules --------------------------------------------------------


def _check_questionnaire(resource: ResourceNode, report: Report) -> None:
    links: dict[str, dict[str, Any]] = {}
    _index_links(resource.data.get("item"), links)
    pending = [
        (f"{resource.path}.item[{i}]", item) for i, item in _indexed(resource.data.get("item"))
    ]
    while pending:
        path, item = pending.pop()
        conditions = _dicts(item.get("enableWhen"))
        if conditions:
            inner: dict[str, dict[str, Any]] = {}
            _index_links(item.get("item"), inner)
            for condition in conditions:
                question = condition.get("question")
                if not isinstance(question, str):
                    continue
                if question in inner:
                    problem = f"refers to '{question}', one of the item's own sub-items"
                elif question not in links:
                    problem = f"refers to '{question}', which is no item of the Questionnaire"
                elif question == item.get("linkId"):
                    problem = "refers to the item itself"
                else:
                    continue
                report.add(
                    Severity.ERROR,
                    ENABLE_WHEN_TARGET.id,
                    f"{path}: enableWhen {problem}",
                    code="business-rule",
                    expression=path,
                )
        pending.extend((f"{path}.item[{i}]", child) for i, child in _indexed(item.get("item")))
