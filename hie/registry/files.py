"""The CSV files regulators keep institutions and declarations in (UTF-8, Excel's BOM welcome)."""

from __future__ import annotations

import csv
import io
import re

from hie.errors import InvalidInput, Problem
from hie.registry.model import KINDS, Institution, check_code
from hie.storable import unstorable

_LIST_SEPARATOR = re.compile(r"[\s;,]+")


def _rows(
    data: bytes, source: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> list[tuple[int, dict[str, str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(source, [Problem("not UTF-8; save the file as UTF-8", line)]) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader, [])]
    except csv.Error as exc:
        raise InvalidInput(source, [Problem(f"malformed CSV: {exc}", 1)]) from None
    problems = [Problem("missing column", 1, c) for c in required if c not in header]
    problems += [
        Problem(f"unknown column (expected: {', '.join(required + optional)})", 1, h or "(blank)")
        for h in header
        if h not in required + optional
    ]
    if problems:
        raise InvalidInput(source, problems)
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                problems.append(
                    Problem(f"has {len(row)} fields, the header has {len(header)}", reader.line_num)
                )
                continue
            values = {name: cell.strip() for name, cell in zip(header, row, strict=True)}
            # The database cannot hold these; named here with the line and column.
            unstorable_cells = [
                Problem(why, reader.line_num, name)
                for name, cell in values.items()
                if (why := unstorable(cell)) is not None
            ]
            if unstorable_cells:
                problems += unstorable_cells
                continue
            rows.append((reader.line_num, values))
    except csv.Error as exc:
        problems.append(Problem(f"malformed CSV: {exc}", reader.line_num))
    if problems:
        raise InvalidInput(source, problems)
    return rows


def parse_institutions_csv(data: bytes, source: str = "institutions.csv") -> list[Institution]:
    """Columns ``code,name,kind[,district]``. Every problem is reported, with its line and field."""
    problems: list[Problem] = []
    institutions: list[Institution] = []
    seen: dict[str, int] = {}
    for line, values in _rows(data, source, ("code", "name", "kind"), ("district",)):
        code, name, kind = values["code"], values["name"], values["kind"]
        district = values.get("district") or None
        before = len(problems)
        if why := check_code(code):
            problems.append(Problem(why, line, "code"))
        elif code in seen:
            problems.append(Problem(f"{code!r} is already on line {seen[code]}", line, "code"))
        seen.setdefault(code, line)
        if not name:
            problems.append(Problem("is empty", line, "name"))
        if kind not in KINDS:
            problems.append(Problem(f"{kind!r} is not one of {', '.join(KINDS)}", line, "kind"))
        if district is not None:
            if kind != "hospital":
                problems.append(Problem("only a hospital belongs to a district", line, "district"))
            elif why := check_code(district):
                problems.append(Problem(why, line, "district"))
        if len(problems) == before:
            institutions.append(Institution(code, name, kind, district))
    if problems:
        raise InvalidInput(source, problems)
    return institutions


def parse_declarations_csv(
    data: bytes, source: str = "declarations.csv"
) -> list[tuple[int, str, list[str]]]:
    """Columns ``institution,tables``; tables separated by spaces, ';' or ','. An empty cell is an
    empty declaration. Returns (line, institution code, table codes)."""
    problems: list[Problem] = []
    declarations: list[tuple[int, str, list[str]]] = []
    seen: dict[str, int] = {}
    for line, values in _rows(data, source, ("institution", "tables")):
        code = values["institution"]
        if why := check_code(code):
            problems.append(Problem(why, line, "institution"))
            continue
        if code in seen:
            problems.append(
                Problem(f"{code!r} is already on line {seen[code]}", line, "institution")
            )
            continue
        seen[code] = line
        tables = [t for t in _LIST_SEPARATOR.split(values["tables"]) if t]
        declarations.append((line, code, tables))
    if problems:
        raise InvalidInput(source, problems)
    return declarations
