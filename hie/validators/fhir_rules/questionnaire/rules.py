"""The rules of the Questionnaire family, registered once: what each checks and how to fix it."""

from __future__ import annotations

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
