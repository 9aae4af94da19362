"""The catalog of upload tables: what institutions must, may and did declare they will upload."""

from hie.catalog.model import FIGURES, KINDS, Catalog, Table
from hie.catalog.reader import default_catalog_path, parse_catalog, read_catalog

__all__ = [
    "FIGURES",
    "KINDS",
    "Catalog",
    "Table",
    "default_catalog_path",
    "parse_catalog",
    "read_catalog",
]
