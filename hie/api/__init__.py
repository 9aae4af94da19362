"""The platform's JSON API for registry, declarations and catalog (``/api``)."""

from hie.api.catalog import router as catalog_router
from hie.api.forwarding import router as forwarding_router
from hie.api.institutions import router as institutions_router
from hie.api.reports import router as reports_router

__all__ = ["catalog_router", "forwarding_router", "institutions_router", "reports_router"]
