"""Reading a catalog file (CSV, UTF-8) into a validated :class:`Catalog`, or every problem in it."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from hie.catalog.model import FIGURES, KINDS, Catalog, Table
from hie.errors import InvalidInput, Problem
from hie.resources import schemas_dir

COLUMNS = (
    "code",
    "name_zh",
    "name_en",
    "standard",
    "cda_template_id",
    "template_id_confirmed",
    "cda_code",
    "fhir_resource_type",
    "required_for",
    "feeds",
)
REQUIRED_VALUES = ("code", "name_zh", "name_en", "standard")

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_YES_NO = {"yes": True, "no": False, "": False}
_LIST_SEPARATOR = re.compile(r"[\s;]+")


def default_catalog_path() -> Path:
    return schemas_dir() / "catalog.csv"


def read_catalog(path: Path) -> Catalog:
    """Read and validate a catalog file; raises :class:`InvalidInput` naming line and field."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(str(path), [Problem(f"cannot read the file: {exc.strerror}")]) from None
    return parse_catalog(data, source=str(path))


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(
            source,
            [Problem(f"not UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8", line)],
        ) from None


def _split_list(value: str) -> list[str]:
    return [item for item in _LIST_SEPARATOR.split(value.strip()) if item]


def parse_catalog(data: bytes, source: str = "catalog") -> Catalog:
    """Parse catalog CSV bytes. Every problem is collected before refusing, not just the first."""
    text = _decode(data, source)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[Problem] = []
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InvalidInput(source, [Problem(f"malformed CSV: {exc}", 1)]) from None
    if header is None:
        raise InvalidInput(source, [Problem("the file is empty", 1)])
    header = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [h for h in header if h not in COLUMNS]
    for column in missing:
        problems.append(Problem("missing column", 1, column))
    for column in unknown:
        problems.append(
            Problem(f"unknown column (expected: {', '.join(COLUMNS)})", 1, column or "(blank)")
        )
    if problems:
        raise InvalidInput(source, problems)

    tables: list[Table] = []
    first_line: dict[tuple[str, str], int] = {}
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem(f"malformed CSV: {exc}", reader.line_num))
            break
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(Problem(f"has {len(row)} fields, the header has {len(header)}", line))
            continue
        values = {name: cell.strip() for name, cell in zip(header, row, strict=True)}
        table = _table_from_row(values, line, problems)
        for key in ("code", "cda_template_id", "cda_code", "fhir_resource_type"):
            value = values[key]
            if not value:
                continue
            earlier = first_line.setdefault((key, value), line)
            if earlier != line:
                problems.append(Problem(f"{value!r} is already used on line {earlier}", line, key))
        if table is not None:
            tables.append(table)

    if not tables and not problems:
        problems.append(Problem("the catalog has no tables", line))
    if problems:
        raise InvalidInput(source, problems)
    return Catalog(tables)


def _table_from_row(values: dict[str, str], line: int, problems: list[Problem]) -> Table | None:
    before = len(problems)

    def bad(field: str, message: str) -> None:
        problems.append(Problem(message, line, field))

    for name in REQUIRED_VALUES:
        if not values[name]:
            bad(name, "is empty")
    code = values["code"]
    if code and not _CODE.fullmatch(code):
        bad("code", f"{code!r} is not a table code (letters, digits, '.', '_', '-'; up to 64)")
    template = values["cda_template_id"]
    if template and not _OID.fullmatch(template):
        bad("cda_template_id", f"{template!r} is not an OID")
    confirmed = values["template_id_confirmed"].lower()
    if confirmed not in _YES_NO:
        bad("template_id_confirmed", f"{values['template_id_confirmed']!r} is not yes or no")
    cda_code = values["cda_code"]
    if cda_code and not _CODE.fullmatch(cda_code):
        bad("cda_code", f"{cda_code!r} is not a document type code")
    resource_type = values["fhir_resource_type"]
    if resource_type and not _RESOURCE_TYPE.fullmatch(resource_type):
        bad("fhir_resource_type", f"{resource_type!r} is not a FHIR resource type name")
    if not (template or cda_code or resource_type):
        bad(
            "cda_code",
            "the table cannot be recognised: give a cda_template_id, a cda_code "
            "or a fhir_resource_type",
        )
    required_for = _split_list(values["required_for"])
    for kind in required_for:
        if kind not in KINDS:
            bad("required_for", f"{kind!r} is not an institution kind ({', '.join(KINDS)})")
    feeds = _split_list(values["feeds"])
    for figure in feeds:
        if figure not in FIGURES:
            bad("feeds", f"{figure!r} is not a report figure ({', '.join(FIGURES)})")
    if len(problems) > before:
        return None
    return Table(
        code=code,
        name_zh=values["name_zh"],
        name_en=values["name_en"],
        standard=values["standard"],
        cda_template_id=template or None,
        template_id_confirmed=_YES_NO[confirmed],
        cda_code=cda_code or None,
        fhir_resource_type=resource_type or None,
        required_for=frozenset(required_for),
        feeds=frozenset(feeds),
    )
