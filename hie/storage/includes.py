"""``_revinclude=*``: the resources whose reference parameters point at a page's resources.

``_include`` and one named ``_revinclude`` use :func:`hie.storage.search.referenced` and
:func:`~hie.storage.search.referring`; this asks for many (type, parameter) pairs at once, each
an index scan of ``fhir_search_token_idx`` with the institution first.
"""

from __future__ import annotations

from hie.storage.database import Connection


def referring_any(
    conn: Connection,
    institution_code: str,
    sources: list[tuple[str, str]],
    targets: list[str],
    limit: int,
) -> list[tuple[str, str]]:
    """(type, id) of the resources whose (type, parameter) in ``sources`` points to one of
    ``targets`` (``"<Type>/<id>"``)."""
    if not sources or not targets:
        return []
    rows = conn.execute(
        """
        select distinct i.resource_type, i.resource_id
        from unnest(%s::text[], %s::text[]) as s(t, p)
        join fhir_search_index i on i.institution_code = %s and i.resource_type = s.t
          and i.param = s.p and i.value = any(%s::text[])
        limit %s
        """,
        ([s[0] for s in sources], [s[1] for s in sources], institution_code, targets, limit),
    ).fetchall()
    return [(str(r["resource_type"]), str(r["resource_id"])) for r in rows]
