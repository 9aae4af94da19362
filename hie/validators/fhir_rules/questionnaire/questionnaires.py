"""A Questionnaire's own rules: each enableWhen names another item of the Questionnaire, not
the item itself or one of its sub-items."""

from __future__ import annotations

from typing import Any

from hie.validators.fhir_rules.questionnaire.rules import ENABLE_WHEN_TARGET
from hie.validators.fhir_rules.questionnaire.sources import index_links
from hie.validators.fhir_rules.shapes import indexed_objects, objects
from hie.validators.fhir_rules.tree import ResourceNode
from hie.validators.report import Report, Severity


def check_questionnaire(resource: ResourceNode, report: Report) -> None:
    links: dict[str, dict[str, Any]] = {}
    index_links(resource.data.get("item"), links)
    pending = [
        (f"{resource.path}.item[{i}]", item)
        for i, item in indexed_objects(resource.data.get("item"))
    ]
    while pending:
        path, item = pending.pop()
        conditions = objects(item.get("enableWhen"))
        if conditions:
            inner: dict[str, dict[str, Any]] = {}
            index_links(item.get("item"), inner)
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
        pending.extend(
            (f"{path}.item[{i}]", child) for i, child in indexed_objects(item.get("item"))
        )
