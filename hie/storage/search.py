"""FHIR search over the search-parameter index (migration 0003), one institution at a time.

Each criterion is a semi-join on ``fhir_search_index`` with the institution, type, parameter and
value as constants, so the planner can drive the search from the index (no scan of the type's
resources) and a submitter's query cannot reach another institution's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from functools import partial
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


StringMode = Literal["prefix", "contains", "exact"]


@dataclass(frozen=True)
class StringCriterion:
    """String parameters, and a token's ``:text``: a value (normalized for ``prefix`` and
    ``contains``, as written for ``exact``) starting with, containing or equal to any of
    ``values``."""

    param: str
    values: tuple[str, ...]
    mode: StringMode = "prefix"


UriMode = Literal["eq", "below", "above"]


@dataclass(frozen=True)
class UriCriterion:
    """Uri parameters: equal to, below (the value starts with it) or above (a prefix of it)."""

    param: str
    values: tuple[str, ...]
    mode: UriMode = "eq"


@dataclass(frozen=True)
class NumberComparison:
    """``[prefix]number[|system|code]``: the number with the range its precision implies
    ([low, high), used by eq and ne), and for quantities the unit asked for."""

    prefix: Prefix
    number: Decimal
    low: Decimal
    high: Decimal
    system: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class NumberCriterion:
    """Number and quantity parameters: a value satisfying any of ``comparisons``."""

    param: str
    comparisons: tuple[NumberComparison, ...]


@dataclass(frozen=True)
class NotCriterion:
    """``:not``: resources without any value matching ``criterion`` (those with no value
    included, as FHIR R4 defines it)."""

    criterion: Criterion


@dataclass(frozen=True)
class ChainCriterion:
    """``subject.name=...``: the reference ``param`` points to a resource of one of the link
    types matching that type's criterion."""

    param: str
    links: tuple[tuple[str, Criterion], ...]


@dataclass(frozen=True)
class ValuesCriterion:
    """A token or reference ``param`` whose value is one of ``values`` (in ``system`` when
    given): a chain resolved before the search (:func:`resolve_chains`, "<Type>/<id>"), or the
    codes a hierarchy puts below or above a code (token ``:below``/``:above``). One array
    parameter, however many values."""

    param: str
    values: tuple[str, ...]
    system: str | None = None


@dataclass(frozen=True)
class HasCriterion:
    """``_has:Observation:patient:code=...``: a ``source`` resource whose reference ``param``
    points to this one matches ``criterion``."""

    source: str
    param: str
    criterion: Criterion


@dataclass(frozen=True)
class CompositeCriterion:
    """``code-value-quantity=http://loinc.org|8480-6$gt100``: any of ``alternatives``, each one
    criterion per component, met by the rows of one element (one group) when ``grouped``, else
    by the resource's rows."""

    param: str
    alternatives: tuple[tuple[Criterion, ...], ...]
    grouped: bool = True


Criterion = (
    ValueCriterion
    | DateCriterion
    | MissingCriterion
    | StringCriterion
    | UriCriterion
    | NumberCriterion
    | NotCriterion
    | ChainCriterion
    | ValuesCriterion
    | HasCriterion
    | CompositeCriterion
)


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


def _column(alias: sql.Identifier, name: str) -> sql.Composable:
    return sql.SQL("{}.{}").format(alias, sql.Identifier(name))


def _like_escape(text: str) -> str:
    """A value as a LIKE pattern's literal part (PostgreSQL's default escape is backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _param_of(criterion: Criterion) -> str:
    param: str = getattr(criterion, "param")  # noqa: B009 - every value criterion has one
    return param


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
        self.aliases = 0

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

    def alias(self) -> sql.Identifier:
        self.aliases += 1
        return sql.Identifier(f"i{self.aliases}")

    def condition(self, a: sql.Identifier, criterion: Criterion) -> sql.Composable:
        """A test of one index row (alias ``a``) for a criterion on values."""
        col = partial(_column, a)
        if isinstance(criterion, ValueCriterion):
            ors: list[sql.Composable] = []
            for match in criterion.matches:
                parts: list[sql.Composable] = []
                if match.code is not None:
                    parts.append(sql.SQL("{} = {}").format(col("value"), self.name(match.code)))
                else:
                    parts.append(sql.SQL("{} is not null").format(col("value")))
                if match.system is not None:
                    parts.append(sql.SQL("{} = {}").format(col("system"), self.name(match.system)))
                elif match.system_given:
                    parts.append(sql.SQL("{} is null").format(col("system")))
                ors.append(sql.SQL("({})").format(sql.SQL(" and ").join(parts)))
            return sql.SQL(" or ").join(ors)
        if isinstance(criterion, ValuesCriterion):
            test = sql.SQL("{} = any({})").format(col("value"), self.name(list(criterion.values)))
            if criterion.system is None:
                return test
            return sql.SQL("{} and {} = {}").format(
                test, col("system"), self.name(criterion.system)
            )
        if isinstance(criterion, DateCriterion):
            tests = [self.range_test(c, col("low"), col("high")) for c in criterion.comparisons]
            return sql.SQL("{} is not null and ({})").format(
                col("low"), sql.SQL(" or ").join(tests)
            )
        if isinstance(criterion, StringCriterion):
            if criterion.mode == "exact":
                return sql.SQL("{} = any({})").format(
                    col("value"), self.name(list(criterion.values))
                )
            # One LIKE per value: with a constant prefix the planner reads the text index's
            # range (LIKE ANY of an array it cannot).
            return sql.SQL(" or ").join(
                sql.SQL("{} like {}").format(
                    col("text"),
                    self.name(
                        ("%" if criterion.mode == "contains" else "") + _like_escape(v) + "%"
                    ),
                )
                for v in criterion.values
            )
        if isinstance(criterion, UriCriterion):
            values = self.name(list(criterion.values))
            if criterion.mode == "eq":
                return sql.SQL("{} = any({})").format(col("value"), values)
            if criterion.mode == "below":
                return sql.SQL(" or ").join(
                    sql.SQL("{} like {}").format(col("value"), self.name(_like_escape(v) + "%"))
                    for v in criterion.values
                )
            # above: the stored uri is a prefix of a searched one
            return sql.SQL(
                "exists (select 1 from unnest({}::text[]) q(u) where starts_with(q.u, {}))"
            ).format(values, col("value"))
        if isinstance(criterion, NumberCriterion):
            return sql.SQL(" or ").join(self.number_test(col, c) for c in criterion.comparisons)
        raise TypeError(f"not a value criterion: {criterion!r}")

    def number_test(
        self, col: Callable[[str], sql.Composable], c: NumberComparison
    ) -> sql.Composable:
        n = col("number")
        if c.prefix == "eq":
            test = sql.SQL("{n} >= {lo} and {n} < {hi}")
        elif c.prefix == "ne":
            test = sql.SQL("not ({n} >= {lo} and {n} < {hi})")
        elif c.prefix == "ap":
            # HAPI: within 10 % of the value
            test = sql.SQL("{n} between {v} - abs({v}) * 0.1 and {v} + abs({v}) * 0.1")
        else:
            operator = {"gt": ">", "sa": ">", "lt": "<", "eb": "<", "ge": ">=", "le": "<="}
            test = sql.SQL("{n} " + operator[c.prefix] + " {v}")
        parts = [
            sql.SQL("{} is not null").format(n),
            test.format(n=n, v=self.name(c.number), lo=self.name(c.low), hi=self.name(c.high)),
        ]
        if c.system is not None:
            parts.append(sql.SQL("{} = {}").format(col("system"), self.name(c.system)))
        if c.code is not None:
            code = self.name(c.code)
            if c.system is not None:
                parts.append(sql.SQL("{} = {}").format(col("value"), code))
            else:  # number||code: the code or the unit
                parts.append(
                    sql.SQL("({} = {} or {} = {})").format(col("value"), code, col("text"), code)
                )
        return sql.SQL("({})").format(sql.SQL(" and ").join(parts))

    def rows(self, resource_type: sql.Composable, param: str, a: sql.Identifier) -> sql.Composable:
        """``from fhir_search_index a where`` the institution, type and parameter."""
        return sql.SQL(
            "from fhir_search_index {a} where {a}.institution_code = %(inst)s"
            " and {a}.resource_type = {t} and {a}.param = {p}"
        ).format(a=a, t=resource_type, p=self.name(param))

    def ids(self, resource_type: sql.Composable, criterion: Criterion) -> sql.Composable:
        """A select of the ids of the ``resource_type`` resources matching ``criterion``."""
        if isinstance(criterion, NotCriterion | MissingCriterion) and self.negative(criterion):
            r = self.alias()
            return sql.SQL(
                "select {r}.resource_id from fhir_resource {r} where {r}.institution_code ="
                " %(inst)s and {r}.resource_type = {t} and {test}"
            ).format(
                r=r,
                t=resource_type,
                test=self.test(sql.SQL("{}.resource_id").format(r), resource_type, criterion),
            )
        a = self.alias()
        if isinstance(criterion, MissingCriterion):
            return sql.SQL("select {}.resource_id {}").format(
                a, self.rows(resource_type, criterion.param, a)
            )
        if isinstance(criterion, ChainCriterion):
            targets = [
                sql.SQL("select {} || c.resource_id from ({}) c").format(
                    self.name(f"{link_type}/"), self.ids(self.name(link_type), inner)
                )
                for link_type, inner in criterion.links
            ]
            return sql.SQL("select {a}.resource_id {rows} and {a}.value in ({targets})").format(
                a=a,
                rows=self.rows(resource_type, criterion.param, a),
                targets=sql.SQL(" union all ").join(targets),
            )
        if isinstance(criterion, HasCriterion):
            source = self.name(criterion.source)
            return sql.SQL(
                "select substr({a}.value, length({t}) + 2) as resource_id {rows}"
                " and left({a}.value, length({t}) + 1) = {t} || '/'"
                " and {a}.resource_id in ({inner})"
            ).format(
                a=a,
                t=resource_type,
                rows=self.rows(source, criterion.param, a),
                inner=self.ids(source, criterion.criterion),
            )
        if isinstance(criterion, CompositeCriterion):
            alternatives: list[sql.Composable] = []
            for parts in criterion.alternatives:
                first, *others = parts
                test = [self.condition(a, first)]
                for other in others:
                    b = self.alias()
                    test.append(
                        sql.SQL(
                            "exists (select 1 {rows} and {b}.resource_id = {a}.resource_id"
                            " and {same} ({cond}))"
                        ).format(
                            same=sql.SQL("{}.grp = {}.grp and").format(b, a)
                            if criterion.grouped
                            else sql.SQL(""),
                            rows=self.rows(resource_type, _param_of(other), b),
                            a=a,
                            b=b,
                            cond=self.condition(b, other),
                        )
                    )
                alternatives.append(
                    sql.SQL("select {a}.resource_id {rows} and {test}").format(
                        a=a,
                        rows=self.rows(resource_type, _param_of(first), a),
                        test=sql.SQL(" and ").join(sql.SQL("({})").format(t) for t in test),
                    )
                )
                a = self.alias()
            return sql.SQL(" union all ").join(alternatives)
        return sql.SQL("select {a}.resource_id {rows} and ({cond})").format(
            a=a,
            rows=self.rows(resource_type, _param_of(criterion), a),
            cond=self.condition(a, criterion),
        )

    @staticmethod
    def negative(criterion: Criterion) -> bool:
        return isinstance(criterion, NotCriterion) or (
            isinstance(criterion, MissingCriterion) and criterion.missing
        )

    def test(
        self, resource_id: sql.Composable, resource_type: sql.Composable, criterion: Criterion
    ) -> sql.Composable:
        """Whether the resource ``resource_id`` of ``resource_type`` matches ``criterion``."""
        if isinstance(criterion, NotCriterion):
            return sql.SQL("{} not in ({})").format(
                resource_id, self.ids(resource_type, criterion.criterion)
            )
        if isinstance(criterion, MissingCriterion) and criterion.missing:
            return sql.SQL("{} not in ({})").format(
                resource_id,
                self.ids(resource_type, MissingCriterion(criterion.param, missing=False)),
            )
        return sql.SQL("{} in ({})").format(resource_id, self.ids(resource_type, criterion))

    def add(self, criterion: Criterion) -> None:
        self.clauses.append(self.test(sql.SQL("r.resource_id"), sql.SQL("%(type)s"), criterion))

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
                # filter: no min/max rewrite to an index walk (see keyset._expression)
                bound = sql.SQL(
                    "max(d.high) filter (where true)" if desc else "min(d.low) filter (where true)"
                )
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


# A chain whose targets are at most this many resources is resolved to their references first.
CHAIN_RESOLVED = 10_000


def resolve_chains(conn: Connection, query: SearchQuery) -> SearchQuery:
    """``query`` with each chain (``subject.name=...``, innermost links first) replaced by the
    references it stands for, when they are at most :data:`CHAIN_RESOLVED`.

    Why: the planner cannot estimate how many resources a chain's inner criterion finds (the
    statistics of the shared index table see "Patient", "name" and the text apart), and
    guessed one where ``name=<a family>`` finds a thousand patients with 100,000 Observations,
    so it joined all of them and sorted (900 ms at a million Observations). Given the list,
    it estimates the matches and walks the page's order instead (tens of ms); a chain to one
    patient is as fast either way."""
    if not any(isinstance(c, ChainCriterion) for c in query.criteria):
        return query
    criteria = [_resolved(conn, query, c) for c in query.criteria]
    return replace(query, criteria=criteria)


def _resolved(conn: Connection, query: SearchQuery, criterion: Criterion) -> Criterion:
    if not isinstance(criterion, ChainCriterion):
        return criterion
    links = tuple((t, _resolved(conn, query, inner)) for t, inner in criterion.links)
    builder = _Builder(query)
    targets = sql.SQL(" union all ").join(
        sql.SQL("select {} || c.resource_id as ref from ({}) c").format(
            builder.name(f"{link_type}/"), builder.ids(builder.name(link_type), inner)
        )
        for link_type, inner in links
    )
    statement = sql.SQL("select ref from ({}) t limit {}").format(
        targets, builder.name(CHAIN_RESOLVED + 1)
    )
    found = [row["ref"] for row in conn.execute(statement, builder.params, prepare=False)]
    if len(found) > CHAIN_RESOLVED:
        return ChainCriterion(criterion.param, links)
    return ValuesCriterion(criterion.param, tuple(sorted(set(found))))


def search(conn: Connection, query: SearchQuery) -> list[LiveRow]:
    """One page of matches (``query.count`` from ``query.offset``), in the requested order."""
    builder = _Builder(resolve_chains(conn, query))
    where = builder.build()
    statement = sql.SQL(
        "select r.resource_type, r.resource_id, r.version, r.last_updated, r.record_id"
        " from fhir_resource r where {} order by {} limit {} offset {}"
    ).format(where, builder.order(), builder.name(query.count), builder.name(query.offset))
    rows = conn.execute(statement, builder.params).fetchall()
    return [LiveRow(**row) for row in rows]


def count(conn: Connection, query: SearchQuery) -> int:
    builder = _Builder(resolve_chains(conn, query))
    statement = sql.SQL("select count(*) as n from fhir_resource r where {}").format(
        builder.build()
    )
    row = conn.execute(statement, builder.params).fetchone()
    return int(row["n"]) if row else 0


def found_each(conn: Connection, queries: Sequence[SearchQuery]) -> list[set[str]]:
    """The resource ids each query finds, all sent in one round trip (pipeline mode): a batch of
    resources matched against many subscriptions' searches (each query restricted to the
    batch's ids by ``_id``) costs one wait, not one per resource and search."""
    cursors = []
    with conn.pipeline():
        for query in queries:
            builder = _Builder(query)
            statement = sql.SQL("select r.resource_id from fhir_resource r where {}").format(
                builder.build()
            )
            cursors.append(conn.execute(statement, builder.params))
    return [{str(row["resource_id"]) for row in cursor.fetchall()} for cursor in cursors]


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
