"""``_revinclude``: the live resources whose reference parameters point at a page's resources.

``_include`` uses :func:`hie.storage.search.referenced` (the references of the page, then their
live rows). A reverse include is one statement: for each (type, parameter) asked (one, or all
of them for ``*``) an index scan of ``fhir_search_token_idx`` with the institution first, joined
to ``fhir_resource`` for the live row, so a page of 1,000 included resources costs one round trip.
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
        select distinct r.resource_type, r.resource_id, r.version, r.last_updated, r.record_id
        from unnest(%s::text[], %s::text[]) as s(t, p)
        join fhir_search_index i on i.institution_code = %s and i.resource_type = s.t
          and i.param = s.p and i.value = any(%s::text[])
        join fhir_resource r on r.institution_code = i.institution_code
          and r.resource_type = i.resource_type and r.resource_id = i.resource_id
        limit %s
        """,
        ([s[0] for s in sources], [s[1] for s in sources], institution_code, targets, limit),
        prepare=False,  # a plan for these values, not a generic one
    ).fetchall()
    return [LiveRow(**row) for row in rows]
