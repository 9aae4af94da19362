"""Rules about who may submit what: an institution submits only its own documents."""

from __future__ import annotations

from hie.validators.rules import register

CUSTODIAN = register(
    "submission.custodian",
    summary="The document's custodian organization must be the institution that submits it.",
    fix="Put your own institution code in custodian/assignedCustodian/"
    "representedCustodianOrganization/id/@extension (root 2.16.156.10011.1.5), or submit with "
    "the token of the institution named there.",
)
UNKNOWN_INSTITUTION = register(
    "submission.institution",
    summary="The institution a document is submitted for must be registered on the platform.",
    fix="Ask the platform administrator to register the institution (hie institutions add).",
)
DOCUMENT_CONFLICT = register(
    "cda.document.conflict",
    summary="A document id is unique: the same id with different content is refused.",
    fix="Documents are immutable. Send a corrected document with a new ClinicalDocument/id and "
    'relatedDocument typeCode="RPLC" whose parentDocument/id is the id of the one it replaces.',
)
