"""Planner statistics of the tables a bulk load grows, refreshed when they fall behind.

Autovacuum analyses a table some time after it changed; a Bundle of thousands of resources can
multiply a fresh table's size at once, and until the next analysis the planner estimates on
what was there before (on a never-analysed table, on nothing) and may scan where an index
lookup was due. After a large write the caller asks :func:`analyze_if_stale`; it compares
each table's changes since its last analysis with its size (one catalog query), and analyses
only the tables that changed by more than a tenth: as a table grows, ever more rarely.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

from hie.storage.database import Database

log = logging.getLogger(__name__)

STALE_FRACTION = 0.1
# Below this many changed rows a table is left to autovacuum.
MIN_CHANGED = 500
# Any fixed 64-bit number: one analysing process at a time, the others skip instead of waiting.
ANALYZE_LOCK = 0x6869655F616E6C7A  # "hie_anlz"


def stale_tables(database: Database, written: dict[str, int]) -> list[str]:
    """Of the tables in ``written`` (table → rows the caller just wrote), those never analysed
    or changed by more than STALE_FRACTION since. The caller's own count stands beside the
    statistics collector's, which other backends report only every few seconds."""
    with database.connection() as conn:
        rows = conn.execute(
            """
            select c.relname, c.reltuples, coalesce(s.n_mod_since_analyze, 0) as changed
            from pg_class c left join pg_stat_user_tables s on s.relid = c.oid
            where c.relname = any(%s) and c.relnamespace = current_schema()::regnamespace
            """,
            (list(written),),
        ).fetchall()
    stale = []
    for row in rows:
        changed = max(int(row["changed"]), written[str(row["relname"])])
        if changed >= MIN_CHANGED and (
            row["reltuples"] < 0 or changed > STALE_FRACTION * row["reltuples"]
        ):
            stale.append(str(row["relname"]))
    return sorted(stale)


def analyze_if_stale(database: Database, written: dict[str, int]) -> list[str]:
    """Analyse the stale tables of ``written`` (after a large write committed); the ones
    analysed. Another process analysing at the same moment makes this one skip, not wait."""
    try:
        stale = stale_tables(database, written)
        if not stale:
            return []
        with database.connection() as conn:
            row = conn.execute("select pg_try_advisory_lock(%s) as ok", (ANALYZE_LOCK,)).fetchone()
            if row is None or not row["ok"]:
                return []
            try:
                for table in stale:
                    conn.execute(sql.SQL("analyze {}").format(sql.Identifier(table)))
                    log.info("analysed %s after a bulk write", table)
            finally:
                conn.execute("select pg_advisory_unlock(%s)", (ANALYZE_LOCK,))
    except psycopg.Error as exc:
        # The write is committed; stale statistics only cost speed, autovacuum catches up.
        log.warning("statistics not refreshed: %s", exc)
        return []
    return stale
