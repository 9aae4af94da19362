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

Modules: ``rules`` (the rule registrations), ``sources`` (finding the Questionnaire),
``responses`` (the walk over a response's items), ``conditions`` (enableWhen), ``answers`` (one
answer: type, options, references), ``limits``, ``quantities`` and ``attachments`` (what an item
allows its answers), ``value_sets`` (offline membership), ``comparisons`` (dates, numbers,
quantities, equality), ``questionnaires`` (the Questionnaire's own rules), ``json_values`` and
``issues`` (reading JSON of any shape; reporting and wording).
"""

from __future__ import annotations

from hie.validators.conformance import Context
from hie.validators.fhir_rules.questionnaire.questionnaires import check_questionnaire
from hie.validators.fhir_rules.questionnaire.responses import check_response
from hie.validators.fhir_rules.tree import Tree
from hie.validators.report import Report

__all__ = ["check_questionnaires"]


def check_questionnaires(tree: Tree, report: Report, context: Context) -> None:
    for resource in tree.resources:
        if resource.type == "Questionnaire":
            check_questionnaire(resource, report)
        elif resource.type == "QuestionnaireResponse":
            check_response(tree, resource, report, context)
