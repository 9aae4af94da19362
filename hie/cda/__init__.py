"""The CDA endpoint: ``POST /cda`` with one ClinicalDocument."""

from hie.cda.routes import router
from hie.cda.submission import CdaReceipt, submit_cda

__all__ = ["CdaReceipt", "router", "submit_cda"]
