"""The FHIR R4 REST API at ``/fhir``: CRUD, history, search, transaction and batch Bundles."""

from hie.fhir.routes import router

__all__ = ["router"]
