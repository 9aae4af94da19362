"""``/api/catalog``: the loaded catalog of upload tables."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from hie.catalog import Table
from hie.http.security import DatabaseDep, PrincipalDep
from hie.storage.catalog import current_catalog

router = APIRouter(prefix="/api/catalog", tags=["catalog"])


class TableOut(BaseModel):
    code: str
    name_zh: str
    name_en: str
    standard: str
    cda_template_id: str | None
    cda_code: str | None
    fhir_resource_type: str | None
    required_for: list[str]
    feeds: list[str]

    @classmethod
    def of(cls, table: Table) -> TableOut:
        return cls(
            code=table.code,
            name_zh=table.name_zh,
            name_en=table.name_en,
            standard=table.standard,
            cda_template_id=table.cda_template_id,
            cda_code=table.cda_code,
            fhir_resource_type=table.fhir_resource_type,
            required_for=sorted(table.required_for),
            feeds=sorted(table.feeds),
        )


@router.get("", summary="The loaded catalog of upload tables")
def read_catalog(principal: PrincipalDep, database: DatabaseDep) -> list[TableOut]:
    with database.connection() as conn:
        return [TableOut.of(t) for t in current_catalog(conn)]
