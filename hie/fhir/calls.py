"""What the interactions get from an HTTP request: the :class:`Call`, and its body read as a
resource (:class:`Body`), FHIR JSON as sent or FHIR XML converted into the JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hie.audit import Agent
from hie.fhir.access import Scope
from hie.fhir.responses import Preferences
from hie.fhir.xml_format import XML_TYPES
from hie.validators import Report
from hie.validators.fhir import parse_json
from hie.validators.fhir_xml import Locations, read_fhir_xml


@dataclass(frozen=True)
class Call:
    """One HTTP request as the interactions see it."""

    scope: Scope
    prefs: Preferences
    base: str  # absolute URL of the FHIR base, e.g. http://host/fhir
    content_type: str | None = None
    # The audit trail: who is calling, and the interaction and target the entry names.
    agent: Agent | None = None
    action: str = "fhir.request"
    target: str | None = None
    query: str | None = None  # a conditional write's condition, masked
    # What a read adds to its audit entry (hie/fhir/consented.py): persons, resources, consent.
    audit: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Body:
    """A request body read as a resource: JSON as sent, FHIR XML converted into the JSON form
    (which is what is validated and stored)."""

    resource: dict[str, Any] | None  # None: unreadable, the reasons in ``report``
    report: Report  # what reading found; for XML also FHIR XML format errors, located
    locations: Locations = field(default_factory=Locations)  # XML only: lines and columns

    def checked(self, validation: Report) -> Report:
        """The reading's issues, then the validation's (in XML with their line and column)."""
        report = Report()
        report.extend(self.report)
        report.issues.extend(self.locations.place(issue) for issue in validation.issues)
        return report


def read_body(call: Call, body: bytes, *, max_bytes: int) -> Body:
    """The body as a resource. XML that breaks the FHIR XML format still gives the rest of the
    resource, so that it is validated too and every issue is answered at once (as JSON with
    unknown elements is); XML that is not well-formed, like JSON that is not JSON, gives none."""
    if call.content_type in XML_TYPES:
        read = read_fhir_xml(body, max_bytes=max_bytes)
        return Body(read.resource, read.report, read.locations)
    resource, report = parse_json(body)
    return Body(None if report.rejected else resource, report)
