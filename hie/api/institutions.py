"""``/api/institutions``: the registry of institutions and their declarations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response, status
from pydantic import AfterValidator, BaseModel, Field

from hie.auth import Principal
from hie.http.security import DatabaseDep, PrincipalDep
from hie.registry import Institution, parse_declarations_csv, parse_institutions_csv
from hie.storable import unstorable
from hie.storage import Connection
from hie.storage.catalog import current_catalog
from hie.storage.declarations import (
    clear_declaration,
    current_declaration,
    import_declarations,
    set_declaration,
)
from hie.storage.institutions import (
    add_institution,
    get_institution,
    import_institutions,
    list_institutions,
    update_institution,
)

router = APIRouter(prefix="/api/institutions", tags=["institutions"])

Kind = Literal["hospital", "district"]
CSV_BODY = {"content": {"text/csv": {"schema": {"type": "string"}}}}


def _storable(text: str) -> str:
    if (why := unstorable(text)) is not None:
        raise ValueError(why)  # pydantic: a 422 naming the field
    return text


Text = Annotated[str, AfterValidator(_storable)]


class InstitutionIn(BaseModel):
    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", examples=["320114000000"])
    name: Text = Field(min_length=1, max_length=200, examples=["雨花台区"])
    kind: Kind
    district: Text | None = Field(default=None, description="The district of a hospital.")


class InstitutionPatch(BaseModel):
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    district: Text | None = None


class DeclarationOut(BaseModel):
    institution: str
    declared: list[str] | None = Field(description="Declared table codes; null: no declaration")
    required: list[str] = Field(description="Tables the catalog requires of this kind")


class DeclarationIn(BaseModel):
    tables: list[Text] = Field(description="Table codes; an empty list declares nothing")


class InstitutionOut(BaseModel):
    code: str
    name: str
    kind: Kind
    district: str | None
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, institution: Institution) -> InstitutionOut:
        return cls(
            code=institution.code,
            name=institution.name,
            kind=institution.kind,  # type: ignore[arg-type]
            district=institution.district_code,
            created_at=institution.created_at,
            updated_at=institution.updated_at,
        )


class ImportSummary(BaseModel):
    added: int = 0
    updated: int = 0
    declarations: int = 0


def _declaration(conn: Connection, code: str) -> DeclarationOut:
    institution = get_institution(conn, code)
    required = [t.code for t in current_catalog(conn).required_for(institution.kind)]
    return DeclarationOut(
        institution=code, declared=current_declaration(conn, code), required=required
    )


def _visible(principal: Principal, institutions: list[Institution]) -> list[Institution]:
    return [i for i in institutions if principal.can_read(i.code)]


@router.get("", summary="List institutions (a submitter sees only its own)")
def list_all(
    principal: PrincipalDep,
    database: DatabaseDep,
    kind: Annotated[Kind | None, Query()] = None,
    district: Annotated[str | None, Query(description="Hospitals of this district")] = None,
) -> list[InstitutionOut]:
    with database.connection() as conn:
        found = list_institutions(conn, kind=kind, district=district)
    return [InstitutionOut.of(i) for i in _visible(principal, found)]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Register an institution (admin)")
def create(
    body: InstitutionIn, principal: PrincipalDep, database: DatabaseDep, response: Response
) -> InstitutionOut:
    principal.require_role("admin")
    with database.transaction() as tx:
        created = add_institution(
            tx.conn,
            Institution(body.code, body.name, body.kind, body.district),
            actor=principal.actor,
        )
    response.headers["Location"] = f"/api/institutions/{created.code}"
    return InstitutionOut.of(created)


@router.post(
    "/import",
    summary="Add or update institutions from CSV: code,name,kind[,district] (admin)",
    openapi_extra={"requestBody": CSV_BODY},
)
def import_csv(
    principal: PrincipalDep,
    database: DatabaseDep,
    body: Annotated[bytes, Body(media_type="text/csv")],
) -> ImportSummary:
    principal.require_role("admin")
    institutions = parse_institutions_csv(body, "request body")
    with database.transaction() as tx:
        summary = import_institutions(
            tx.conn, institutions, source="request body", actor=principal.actor
        )
    return ImportSummary(**summary)


@router.post(
    "/declarations/import",
    summary="Set declarations from CSV: institution,tables (admin)",
    openapi_extra={"requestBody": CSV_BODY},
)
def import_declarations_csv(
    principal: PrincipalDep,
    database: DatabaseDep,
    body: Annotated[bytes, Body(media_type="text/csv")],
) -> ImportSummary:
    principal.require_role("admin")
    declarations = parse_declarations_csv(body, "request body")
    with database.transaction() as tx:
        count = import_declarations(
            tx.conn, declarations, source="request body", actor=principal.actor
        )
    return ImportSummary(declarations=count)


@router.get("/{code}", summary="One institution")
def read(code: str, principal: PrincipalDep, database: DatabaseDep) -> InstitutionOut:
    principal.require_read(code)
    with database.connection() as conn:
        return InstitutionOut.of(get_institution(conn, code))


@router.patch("/{code}", summary="Rename an institution or change its district (admin)")
def patch(
    code: str, body: InstitutionPatch, principal: PrincipalDep, database: DatabaseDep
) -> InstitutionOut:
    principal.require_role("admin")
    with database.transaction() as tx:
        current = get_institution(tx.conn, code)
        district = body.district if "district" in body.model_fields_set else current.district_code
        updated = update_institution(
            tx.conn, code, name=body.name, district_code=district, actor=principal.actor
        )
    return InstitutionOut.of(updated)


@router.get("/{code}/declaration", summary="Declared and required tables")
def read_declaration(code: str, principal: PrincipalDep, database: DatabaseDep) -> DeclarationOut:
    principal.require_read(code)
    with database.connection() as conn:
        return _declaration(conn, code)


@router.put("/{code}/declaration", summary="Replace the declaration (admin, or the institution)")
def put_declaration(
    code: str, body: DeclarationIn, principal: PrincipalDep, database: DatabaseDep
) -> DeclarationOut:
    principal.require_write_for(code)
    with database.transaction() as tx:
        set_declaration(tx.conn, code, body.tables, actor=principal.actor)
        return _declaration(tx.conn, code)


@router.delete(
    "/{code}/declaration",
    summary="Clear the declaration: back to no declaration (未反馈)",
    status_code=status.HTTP_204_NO_CONTENT,
)
def delete_declaration(code: str, principal: PrincipalDep, database: DatabaseDep) -> None:
    principal.require_write_for(code)
    with database.transaction() as tx:
        clear_declaration(tx.conn, code, actor=principal.actor)
