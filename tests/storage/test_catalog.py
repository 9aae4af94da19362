"""Replacing the stored catalog: all or nothing, and never out from under a declaration."""

from __future__ import annotations

import pytest

from hie.catalog import parse_catalog
from hie.errors import Conflict
from hie.registry import Institution
from hie.storage import Database
from hie.storage.catalog import catalog_source, current_catalog, replace_catalog
from hie.storage.declarations import set_declaration
from hie.storage.institutions import add_institution

HEADER = (
    "code,name_zh,name_en,standard,cda_template_id,template_id_confirmed,cda_code,"
    "fhir_resource_type,required_for,feeds\n"
)


def test_database_starts_with_the_default_catalog(db: Database) -> None:
    with db.connection() as conn:
        catalog = current_catalog(conn)
        assert len(catalog.required_for("hospital")) == 53
        assert len(catalog.required_for("district")) == 20
        assert catalog_source(conn)["source"] == "default"  # type: ignore[index]


def test_replacing_keeps_order_and_records_the_source(db: Database) -> None:
    regional = parse_catalog(
        (
            HEADER
            + "R2,乙,B,local,,,R2,,hospital,\nR1,甲,A,local,,,,Patient,,health_records.basic\n"
        ).encode()
    )
    with db.transaction() as tx:
        summary = replace_catalog(tx.conn, regional, source="region.csv", sha256="ab", actor="t")
        assert summary["added"] == ["R1", "R2"]
        assert len(summary["removed"]) == 109
        stored = current_catalog(tx.conn)
        assert [t.code for t in stored] == ["R2", "R1"]
        assert stored.get("R1").feeds == {"health_records.basic"}  # type: ignore[union-attr]
        assert catalog_source(tx.conn)["source"] == "region.csv"  # type: ignore[index]


def test_a_catalog_that_drops_a_declared_table_is_refused(db: Database) -> None:
    with db.transaction() as tx:
        add_institution(tx.conn, Institution("H1", "医院", "hospital"), actor="t")
        set_declaration(tx.conn, "H1", ["C0001", "C0002"], actor="t")
    smaller = parse_catalog(
        (HEADER + "C0001,病历概要,Summary,WS/T 500-2016,,,C0001,,hospital,\n").encode()
    )
    with pytest.raises(Conflict, match=r"C0002 \(declared by H1\)"), db.transaction() as tx:
        replace_catalog(tx.conn, smaller, source="small.csv", sha256="cd", actor="t")
    with db.connection() as conn:
        assert len(current_catalog(conn)) == 109


def test_the_cache_rereads_the_catalog_only_after_a_replacement(db: Database) -> None:
    from hie.storage.catalog import CatalogCache

    cache = CatalogCache()
    with db.transaction() as tx:
        first = cache.get(tx.conn)
        assert cache.get(tx.conn) is first
        regional = parse_catalog((HEADER + "R1,甲,A,local,,,R1,,hospital,\n").encode())
        replace_catalog(tx.conn, regional, source="region.csv", sha256="ef", actor="t")
        assert [t.code for t in cache.get(tx.conn)] == ["R1"]
