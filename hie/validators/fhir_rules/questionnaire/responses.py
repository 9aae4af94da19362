"""The response walk: a QuestionnaireResponse's items against its Questionnaire's, level by
level: linkIds in place and in order, enableWhen, required items, groups and display items, and
how often items and answers occur. Each answer is then checked by :mod:`.answers`."""

from __future__ import annotations

import re
from typing import Any

from hie.validators.conformance import Context
from hie.validators.fhir_rules.questionnaire.answers import ANSWER_TYPES, check_answer
from hie.validators.fhir_rules.questionnaire.conditions import Conditions
from hie.validators.fhir_rules.questionnaire.issues import item_text, report_error
from hie.validators.fhir_rules.questionnaire.json_values import CORE, extension_values
from hie.validators.fhir_rules.questionnaire.rules import (
    ANSWER_TYPE,
    ENABLE_WHEN,
    LINK_ID,
    QUESTIONNAIRE_REF,
    REPEATS,
    REQUIRED,
)
from hie.validators.fhir_rules.questionnaire.sources import (
    Source,
    find_questionnaire,
    index_links,
    wrong_type,
)
from hie.validators.fhir_rules.questionnaire.value_sets import ValueSets
from hie.validators.fhir_rules.shapes import indexed_objects, objects
from hie.validators.fhir_rules.tree import ResourceNode, Tree
from hie.validators.report import Report, Severity


def check_response(tree: Tree, response: ResourceNode, report: Report, context: Context) -> None:
    canonical = response.data.get("questionnaire")
    if not isinstance(canonical, str) or not canonical:
        return
    where = f"{response.path}.questionnaire"
    source = find_questionnaire(tree, response, canonical, context)
    if source is None:
        wrong = wrong_type(canonical, context)
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
    index_links(source.questionnaire.get("item"), source.by_link)
    checker = _ResponseChecker(report, context, source, response)
    checker.items(objects(source.questionnaire.get("item")), response.data, response.path, [])


class _ResponseChecker:
    def __init__(
        self, report: Report, context: Context, source: Source, response: ResourceNode
    ) -> None:
        self.report = report
        self.source = source
        self.value_sets = ValueSets(context, source.contained)
        self.conditions = Conditions()
        self.in_progress = response.data.get("status") == "in-progress"

    def missing(self, path: str, message: str) -> None:
        """A required answer is missing: an error, a warning while the form is in progress."""
        severity = Severity.WARNING if self.in_progress else Severity.ERROR
        self.report.add(
            severity, REQUIRED.id, f"{path}: {message}", code="required", expression=path
        )

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
        for index, item in indexed_objects(container.get("item")):
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
                report_error(self.report, LINK_ID.id, item_path, message, "structure")
                continue
            if position < last:
                report_error(
                    self.report,
                    LINK_ID.id,
                    item_path,
                    f"item '{link}' comes after items the Questionnaire puts after it; keep the "
                    "Questionnaire's order",
                    "structure",
                )
            last = position
            if objects(item.get("answer")) or objects(item.get("item")):
                present.setdefault(link, []).append((index, item))
            else:
                empty.setdefault(link, index)
        for q_item in q_items:
            link = q_item.get("linkId")
            if not isinstance(link, str):
                continue
            enabled = self.conditions.enabled(q_item, scope)
            found = present.get(link)
            if found:
                self.present(q_item, found, path, scope, enabled)
            elif enabled is True:
                where = f"{path}.item[{empty[link]}]" if link in empty else path
                self.absent(q_item, where)

    def absent(self, q_item: dict[str, Any], path: str) -> None:
        link = q_item.get("linkId")
        minimum = extension_values(q_item, CORE + "questionnaire-minOccurs", "valueInteger")
        if q_item.get("required") is True:
            if q_item.get("type") == "group":
                self.missing(path, f"the required group '{link}' has no answered items")
            else:
                self.missing(path, f"the required {item_text(q_item)} has no answer")
        elif minimum and isinstance(minimum[0], int) and minimum[0] > 0:
            self.missing(path, f"{item_text(q_item)} needs at least {minimum[0]} answers, has 0")

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
                report_error(
                    self.report,
                    ENABLE_WHEN.id,
                    f"{path}.item[{index}]",
                    f"item '{link}' is answered although its enableWhen conditions are not met",
                )
        if len(found) > 1 and q_item.get("repeats") is not True:
            index = found[1][0]
            report_error(
                self.report,
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
        answers = indexed_objects(item.get("answer"))
        children = objects(item.get("item"))
        link = q_item.get("linkId")
        if item_type == "group":
            if answers:
                report_error(
                    self.report,
                    ANSWER_TYPE.id,
                    path,
                    f"'{link}' is a group: groups have no answers; put the group's questions in "
                    "its item array",
                    "structure",
                )
            if required and not children:
                self.missing(path, f"the required group '{link}' has no items")
            self.items(objects(q_item.get("item")), item, path, scope)
            return
        if item_type == "display":
            if answers or children:
                report_error(
                    self.report,
                    ANSWER_TYPE.id,
                    path,
                    f"'{link}' is a display item: it has no answers or items",
                    "structure",
                )
            return
        if not isinstance(item_type, str) or item_type not in ANSWER_TYPES:
            if answers:
                report_error(
                    self.report,
                    ANSWER_TYPE.id,
                    path,
                    f"item '{link}' has type {item_type!r}, which takes no answers",
                    "structure",
                )
            return
        if children:
            report_error(
                self.report,
                ANSWER_TYPE.id,
                f"{path}.item",
                f"'{link}' is a question, not a group: its nested items go under answer.item",
                "structure",
            )
        if not answers and required:
            self.missing(path, f"the required {item_text(q_item)} has no answer")
        self.occurrences(q_item, answers, path)
        for index, answer in answers:
            answer_path = f"{path}.answer[{index}]"
            check_answer(self.report, self.value_sets, q_item, answer, answer_path, len(answers))
            self.items(objects(q_item.get("item")), answer, answer_path, [*scope, item])

    def occurrences(
        self, q_item: dict[str, Any], answers: list[tuple[int, dict[str, Any]]], path: str
    ) -> None:
        link = q_item.get("linkId")
        if len(answers) > 1 and q_item.get("repeats") is not True:
            report_error(
                self.report,
                REPEATS.id,
                f"{path}.answer[{answers[1][0]}]",
                f"item '{link}' does not repeat, so it takes one answer, not {len(answers)}",
            )
        minimum = extension_values(q_item, CORE + "questionnaire-minOccurs", "valueInteger")
        maximum = extension_values(q_item, CORE + "questionnaire-maxOccurs", "valueInteger")
        if minimum and isinstance(minimum[0], int) and len(answers) < minimum[0]:
            self.missing(
                path, f"item '{link}' needs at least {minimum[0]} answers, has {len(answers)}"
            )
        if maximum and isinstance(maximum[0], int) and len(answers) > maximum[0]:
            report_error(
                self.report,
                REPEATS.id,
                path,
                f"item '{link}' takes at most {maximum[0]} answers, has {len(answers)}",
            )
