"""The stored catalog: what the platform currently recognises and requires."""

from __future__ import annotations

import hashlib
import threading

from hie.catalog import Catalog, Table, default_catalog_path, read_catalog
from hie.errors import Conflict
from hie.storage.audit import record_event
from hie.storage.database import Connection


def current_catalog(conn: Connection) -> Catalog:
    rows = conn.execute("select * from catalog_table order by position").fetchall()
    return Catalog(
        Table(
            code=str(r["code"]),
            name_zh=str(r["name_zh"]),
            name_en=str(r["name_en"]),
            standard=str(r["standard"]),
            cda_template_id=r["cda_template_id"],
            template_id_confirmed=bool(r["template_id_confirmed"]),
            cda_code=r["cda_code"],
            fhir_resource_type=r["fhir_resource_type"],
            required_for=frozenset(r["required_for"]),
            feeds=frozenset(r["feeds"]),
        )
        for r in rows
    )


def catalog_source(conn: Connection) -> dict[str, object] | None:
    return conn.execute("select source, sha256, loaded_at from catalog_source").fetchone()


class CatalogCache:
    """The loaded catalog for a long-lived process: one small query per use tells whether
    ``hie catalog load`` replaced it, and only then are its rows read again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry: tuple[str, Catalog] | None = None

    def get(self, conn: Connection) -> Catalog:
        source = catalog_source(conn)
        version = str(source["sha256"]) if source else ""
        with self._lock:
            if self._entry is not None and self._entry[0] == version:
                return self._entry[1]
        catalog = current_catalog(conn)
        with self._lock:
            self._entry = (version, catalog)
        return catalog


def _codes_in_use(conn: Connection, codes: list[str]) -> dict[str, list[str]]:
    """For each code, what still refers to it: current declarations or stored data."""
    rows = conn.execute(
        """
        with current_declaration as (
            select distinct on (institution_code) institution_code, tables
            from declaration order by institution_code, declared_at desc, id desc
        )
        select code, 'declared by ' || string_agg(institution_code, ', ' order by institution_code)
               as reason
        from current_declaration, unnest(tables) as code
        where code = any(%(codes)s) group by code
        union all
        select table_code, 'has stored records'
        from (select distinct table_code from daily_table_count where table_code = any(%(codes)s)) t
        """,
        {"codes": codes},
    ).fetchall()
    in_use: dict[str, list[str]] = {}
    for row in rows:
        in_use.setdefault(str(row["code"]), []).append(str(row["reason"]))
    return in_use


def replace_catalog(
    conn: Connection, catalog: Catalog, *, source: str, sha256: str, actor: str
) -> dict[str, list[str]]:
    """Replace the stored catalog with ``catalog`` (inside the caller's transaction).

    Refuses to drop a table that a current declaration names or that has stored records, so that
    no declaration or figure is left pointing at nothing. Returns the added/removed/kept codes.
    """
    old = {str(r["code"]) for r in conn.execute("select code from catalog_table").fetchall()}
    new = [t.code for t in catalog]
    removed = sorted(old - set(new))
    in_use = _codes_in_use(conn, removed) if removed else {}
    if in_use:
        details = "; ".join(f"{code} ({', '.join(why)})" for code, why in sorted(in_use.items()))
        raise Conflict(
            f"the new catalog drops tables that are still in use: {details}. "
            "Keep them in the file, or change those declarations first."
        )
    conn.execute("delete from catalog_table")
    with conn.cursor() as cur:
        cur.executemany(
            """
            insert into catalog_table (code, position, name_zh, name_en, standard,
                cda_template_id, template_id_confirmed, cda_code, fhir_resource_type,
                required_for, feeds)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            [
                (
                    t.code,
                    position,
                    t.name_zh,
                    t.name_en,
                    t.standard,
                    t.cda_template_id,
                    t.template_id_confirmed,
                    t.cda_code,
                    t.fhir_resource_type,
                    sorted(t.required_for),
                    sorted(t.feeds),
                )
                for position, t in enumerate(catalog, start=1)
            ],
        )
    conn.execute(
        """
        insert into catalog_source (source, sha256) values (%s, %s)
        on conflict (singleton) do update
            set source = excluded.source, sha256 = excluded.sha256, loaded_at = now()
        """,
        (source, sha256),
    )
    summary = {
        "added": sorted(set(new) - old),
        "removed": removed,
        "kept": sorted(set(new) & old),
    }
    record_event(
        conn,
        actor,
        "catalog.load",
        None,
        source=source,
        sha256=sha256,
        tables=len(new),
        added=summary["added"],
        removed=removed,
    )
    return summary


def seed_default_catalog(conn: Connection) -> bool:
    """Load the shipped catalog into a database that has none yet. True if it did."""
    if conn.execute("select 1 from catalog_table limit 1").fetchone():
        return False
    path = default_catalog_path()
    data = path.read_bytes()
    replace_catalog(
        conn,
        read_catalog(path),
        source="default",
        sha256=hashlib.sha256(data).hexdigest(),
        actor="system",
    )
    return True
