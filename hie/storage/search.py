"""FHIR search over the search-parameter index (migration 0003), one institution at a time.

Each criterion is a semi-join on ``fhir_search_index`` with the institution, type, parameter and
value as constants, so the planner can drive the search from the index (no scan of the type's
resources) and a submitter's query cannot reach another institution's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from psycopg import sql

from hie.storage.database import Connection

Prefix = Literal["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]


@dataclass(frozen=True)
class TokenMatch:
    """One token or reference value: ``system|code``, ``code``, ``system|``, ``|code``."""

    code: str | None
    system: str | None = None
    system_given: bool = False  # ``|code``: system given as "none"


@dataclass(frozen=True)
class ValueCriterion:
    """Token and reference parameters: the resource has a value matching any of ``matches``."""

    param: str
    matches: tuple[TokenMatch, ...]


@dataclass(frozen=True)
class DateComparison:
    prefix: Prefix
    low: datetime
    high: datetime


@dataclass(frozen=True)
class DateCriterion:
    """A date parameter: the resource has a value satisfying any of ``comparisons``."""

    param: str
    comparisons: tuple[DateComparison, ...]


@dataclass(frozen=True)
class MissingCriterion:
    param: str
    missing: bool


Criterion = ValueCriterion | DateCriterion | MissingCriterion


@dataclass
class SearchQuery:
    institution_code: str
    resource_type: str
    ids: tuple[str, ...] | None = None
    last_updated: list[DateComparison] = field(default_factory=list)
    criteria: list[Criterion] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (_id|_lastUpdated|date, desc)
    count: int = 20
    offset: int = 0


@dataclass(frozen=True)
class LiveRow:
    resource_type: str
    resource_id: str
    version: int
    last_updated: datetime
    record_id: int


_RANGE_TESTS = {
    "eq": "{lo} >= {ql} and {hi} <= {qh}",
    "ne": "not ({lo} >= {ql} and {hi} <= {qh})",
    "gt": "{hi} > {qh}",
    "lt": "{lo} < {ql}",
    "ge": "{hi} > {ql}",
    "le": "{lo} < {qh}",
    "sa": "{lo} >= {qh}",
    "eb": "{hi} <= {ql}",
    "ap": "{lo} < {qh} and {hi} > {ql}",
}


# _lastUpdated is an instant t, not a range: the same tests with [t, t], written on t alone so
# that the (institution, type, last_updated) index serves them.
_INSTANT_TESTS = {
    "eq": "{t} >= {ql} and {t} < {qh}",
    "ne": "not ({t} >= {ql} and {t} < {qh})",
    "gt": "{t} >= {qh}",
    "lt": "{t} < {ql}",
    "ge": "{t} >= {ql}",
    "le": "{t} < {qh}",
    "sa": "{t} >= {qh}",
    "eb": "{t} < {ql}",
    "ap": "{t} >= {ql} and {t} < {qh}",
}


class _Builder:
    """Accumulates a WHERE clause and its named parameters."""

    def __init__(self, query: SearchQuery) -> None:
        self.query = query
        self.params: dict[str, Any] = {
            "inst": query.institution_code,
            "type": query.resource_type,
        }
        self.clauses: list[sql.Composable] = [
            sql.SQL("r.institution_code = %(inst)s and r.resource_type = %(type)s")
        ]

    def name(self, value: Any) -> sql.Composable:
        key = f"p{len(self.params)}"
        self.params[key] = value
        return sql.Placeholder(key)

    def range_test(
        self, comparison: DateComparison, low: sql.Composable, high: sql.Composable
    ) -> sql.Composable:
        """The stored range [low, high) against the searched one (FHIR R4 search, "date")."""
        return sql.SQL(_RANGE_TESTS[comparison.prefix]).format(
            lo=low, hi=high, ql=self.name(comparison.low), qh=self.name(comparison.high)
        )

    def semi_join(self, param: str, condition: sql.Composable) -> sql.Composable:
        return sql.SQL(
            "r.resource_id in (select i.resource_id from fhir_search_index i"
            " where i.institution_code = %(inst)s and i.resource_type = %(type)s"
            " and i.param = {} and ({}))"
        ).format(self.name(param), condition)

    def add(self, criterion: Criterion) -> None:
        if isinstance(criterion, ValueCriterion):
            ors: list[sql.Composable] = []
            for match in criterion.matches:
                parts: list[sql.Composable] = []
                if match.code is not None:
                    parts.append(sql.SQL("i.value = {}").format(self.name(match.code)))
                else:
                    parts.append(sql.SQL("i.value is not null"))
                if match.system is not None:
                    parts.append(sql.SQL("i.system = {}").format(self.name(match.system)))
                elif match.system_given:
                    parts.append(sql.SQL("i.system is null"))
                ors.append(sql.SQL(" and ").join(parts))
            self.clauses.append(self.semi_join(criterion.param, sql.SQL(" or ").join(ors)))
        elif isinstance(criterion, DateCriterion):
            low, high = sql.SQL("i.low"), sql.SQL("i.high")
            tests = [self.range_test(c, low, high) for c in criterion.comparisons]
            condition = sql.SQL("i.low is not null and ({})").format(sql.SQL(" or ").join(tests))
            self.clauses.append(self.semi_join(criterion.param, condition))
        else:
            exists = self.semi_join(criterion.param, sql.SQL("true"))
            self.clauses.append(sql.SQL("not ({})").format(exists) if criterion.missing else exists)

    def build(self) -> sql.Composable:
        query = self.query
        if query.ids is not None:
            self.clauses.append(
                sql.SQL("r.resource_id = any({})").format(self.name(list(query.ids)))
            )
        for comparison in query.last_updated:
            self.clauses.append(
                sql.SQL(_INSTANT_TESTS[comparison.prefix]).format(
                    t=sql.SQL("r.last_updated"),
                    ql=self.name(comparison.low),
                    qh=self.name(comparison.high),
                )
            )
        for criterion in query.criteria:
            self.add(criterion)
        return sql.SQL(" and ").join(self.clauses)

    def order(self) -> sql.Composable:
        keys: list[sql.Composable] = []
        for key, desc in self.query.sort:
            direction = sql.SQL(" desc" if desc else "")
            if key == "_id":
                keys.append(sql.SQL("r.resource_id") + direction)
            elif key == "_lastUpdated":
                keys.append(sql.SQL("r.last_updated") + direction)
            else:  # a date parameter: ascending by the earliest start, descending by latest end
                bound = sql.SQL("max(d.high)" if desc else "min(d.low)")
                keys.append(
                    sql.SQL(
                        "(select {} from fhir_search_index d where d.institution_code ="
                        " %(inst)s and d.resource_type = %(type)s and d.resource_id ="
                        " r.resource_id and d.param = {} and d.low is not null){} nulls last"
                    ).format(bound, self.name(key), direction)
                )
        if all(key != "_id" for key, _ in self.query.sort):
            keys.append(sql.SQL("r.resource_id"))
        if not self.query.sort:
            keys.insert(0, sql.SQL("r.last_updated"))
        return sql.SQL(", ").join(keys)


def search(conn: Connection, query: SearchQuery) -> list[LiveRow]:
    """One page of matches (``query.count`` from ``query.offset``), in the requested order."""
    builder = _Builder(query)
    where = builder.build()
    statement = sql.SQL(
        "select r.resource_type, r.resource_id, r.version, r.last_updated, r.record_id"
        " from fhir_resource r where {} order by {} limit {} offset {}"
    ).format(where, builder.order(), builder.name(query.count), builder.name(query.offset))
    rows = conn.execute(statement, builder.params).fetchall()
    return [LiveRow(**row) for row in rows]


def count(conn: Connection, query: SearchQuery) -> int:
    builder = _Builder(query)
    statement = sql.SQL("select count(*) as n from fhir_resource r where {}").format(
        builder.build()
    )
    row = conn.execute(statement, builder.params).fetchone()
    return int(row["n"]) if row else 0


def referenced(
    conn: Connection,
    institution_code: str,
    resource_type: str,
    resource_ids: list[str],
    params: list[str],
) -> list[str]:
    """The ``"<Type>/<id>"`` targets that ``params`` of the given resources point to
    (``_include``)."""
    rows = conn.execute(
        """
        select distinct value from fhir_search_index
        where institution_code = %s and resource_type = %s and resource_id = any(%s)
          and param = any(%s) and value is not null
        """,
        (institution_code, resource_type, resource_ids, params),
    ).fetchall()
    return [str(r["value"]) for r in rows]


def referring(
    conn: Connection,
    institution_code: str,
    resource_type: str,
    param: str,
    targets: list[str],
    limit: int,
) -> list[str]:
    """Ids of ``resource_type`` resources whose ``param`` points to a target (``_revinclude``)."""
    rows = conn.execute(
        """
        select distinct resource_id from fhir_search_index
        where institution_code = %s and resource_type = %s and param = %s and value = any(%s)
        limit %s
        """,
        (institution_code, resource_type, param, targets, limit),
    ).fetchall()
    return [str(r["resource_id"]) for r in rows]


# The conditional lookup (ifNoneExist, conditional update, conditional reference) of many values
# of one parameter at once: the live resources of the type having any of the values. Constants
# for institution, type and parameter and ``value = any(...)`` let the planner read each value
# from fhir_search_token_idx (an index scan per array element); the system is compared by the
# caller, since a condition without a system matches every system.
VALUE_LOOKUP = """
select i.value, i.system, r.resource_type, r.resource_id, r.version, r.last_updated, r.record_id
from fhir_search_index i
join fhir_resource r on r.institution_code = i.institution_code
  and r.resource_type = i.resource_type and r.resource_id = i.resource_id
where i.institution_code = %(inst)s and i.resource_type = %(type)s and i.param = %(param)s
  and i.value = any(%(values)s::text[]) and i.value is not null
"""


def lookup_values(
    conn: Connection, institution_code: str, resource_type: str, param: str, values: list[str]
) -> list[tuple[str, str | None, LiveRow]]:
    """(value, system, live resource) of every ``param`` value among ``values``: one query for
    all the conditions of a request that test this parameter."""
    rows = conn.execute(
        VALUE_LOOKUP,
        {"inst": institution_code, "type": resource_type, "param": param, "values": values},
    ).fetchall()
    found = []
    for row in rows:
        value, system = row.pop("value"), row.pop("system")
        found.append((str(value), system, LiveRow(**row)))
    return found
