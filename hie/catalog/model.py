"""Catalog values: plain, immutable, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

KINDS = ("hospital", "district")

# The report figures a table can feed (report-spec.md, "The figures").
FIGURES = (
    "outpatient_visits",
    "discharges",
    "health_records.basic",
    "health_records.hypertension",
    "health_records.diabetes",
)

# The code system of shared-document type codes (卫生信息共享文档规范编码体系).
DOCUMENT_TYPE_SYSTEM = "2.16.156.10011.2.4"


@dataclass(frozen=True)
class Table:
    """One upload table (上传表)."""

    code: str
    name_zh: str
    name_en: str
    standard: str
    cda_template_id: str | None = None
    # False for templateIds the standard's public material does not confirm: those must not
    # reject a document on their own.
    template_id_confirmed: bool = False
    cda_code: str | None = None
    fhir_resource_type: str | None = None
    required_for: frozenset[str] = field(default_factory=frozenset)
    feeds: frozenset[str] = field(default_factory=frozenset)

    def required_of(self, kind: str) -> bool:
        return kind in self.required_for


class Catalog:
    """An ordered, validated set of tables with a look-up for each way a table is recognised."""

    def __init__(self, tables: Iterable[Table]) -> None:
        self.tables: tuple[Table, ...] = tuple(tables)
        self._by_code = {t.code: t for t in self.tables}
        self._by_template = {t.cda_template_id: t for t in self.tables if t.cda_template_id}
        self._by_cda_code = {t.cda_code: t for t in self.tables if t.cda_code}
        self._by_resource_type = {
            t.fhir_resource_type: t for t in self.tables if t.fhir_resource_type
        }

    def __iter__(self) -> Iterator[Table]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Catalog) and self.tables == other.tables

    def __hash__(self) -> int:
        return hash(self.tables)

    def get(self, code: str) -> Table | None:
        return self._by_code.get(code)

    def by_template_id(self, root: str) -> Table | None:
        return self._by_template.get(root)

    def by_cda_code(self, code: str) -> Table | None:
        return self._by_cda_code.get(code)

    def by_resource_type(self, resource_type: str) -> Table | None:
        return self._by_resource_type.get(resource_type)

    def required_for(self, kind: str) -> list[Table]:
        return [t for t in self.tables if t.required_of(kind)]

    def unknown_codes(self, codes: Iterable[str]) -> list[str]:
        return sorted({c for c in codes if c not in self._by_code})
