"""The FHIR R4 REST API at ``/fhir``: CRUD, history, search, transaction and batch Bundles.

The router is in ``hie.fhir.routes``; the package imports nothing on its own, so the domains
above it (``hie.documents``) can use its modules while its routes use theirs."""
