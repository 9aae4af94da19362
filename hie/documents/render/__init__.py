"""Documents as readable HTML pages, for ITI-68 (``Accept: text/html``) and the record browser:
one page frame (:mod:`.page`), one renderer per kind of document (:mod:`.cda`, :mod:`.fhir`)."""

from __future__ import annotations

from typing import Any

import simplejson

from hie.documents.model import CDA_MEDIA_TYPE, FHIR_MEDIA_TYPE
from hie.documents.render.cda import render_cda
from hie.documents.render.fhir import render_fhir_document
from hie.validators.xml import parse_xml

__all__ = ["render_cda", "render_document", "render_fhir_document"]

RENDERED_TYPES = (CDA_MEDIA_TYPE, FHIR_MEDIA_TYPE)


def render_document(
    content_type: str, data: bytes, *, institution: str | None = None
) -> str | None:
    """The page of a stored document's bytes; None for a type without a rendering or bytes that
    cannot be read (never: they passed validation)."""
    if content_type == CDA_MEDIA_TYPE:
        parsed = parse_xml(data)
        return None if parsed.tree is None else render_cda(parsed.tree)
    if content_type == FHIR_MEDIA_TYPE:
        try:
            bundle: Any = simplejson.loads(data)
        except ValueError:
            return None
        if not isinstance(bundle, dict):
            return None
        return render_fhir_document(bundle, institution=institution)
    return None
