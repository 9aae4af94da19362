"""Bulk ingestion: jobs accepted with 202 (their bytes stored first), split into items, each
stored by workers through the synchronous write path."""

from hie.jobs.routes import BULK_PATHS, router

__all__ = ["BULK_PATHS", "router"]
