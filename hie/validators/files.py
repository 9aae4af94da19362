"""Validating files offline, as ``hie validate`` does: find them, tell CDA from FHIR, run exactly
the validators the server runs, and report per file. No database, no broker, no network."""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hie.catalog import Catalog
from hie.validators.conformance import STANDALONE, Context
from hie.validators.report import Issue, Report, Severity
from hie.validators.rules import register

# Suffixes taken from a folder without looking inside (a damaged one still gets its verdict);
# any other file in a folder is taken when its content is CDA or FHIR (see ``scan``).
SUFFIXES = (".xml", ".json", ".ndjson", ".cda", ".ccd", ".ccda")
STDIN = "-"
SNIFF_BYTES = 4096

UNRECOGNISED = register(
    "file.format",
    summary="A file must be a CDA document (XML), a FHIR resource or Bundle (JSON or XML), or "
    "FHIR NDJSON.",
    fix="Check that the file is one of those, saved as UTF-8; CDA's root element is "
    "ClinicalDocument in urn:hl7-org:v3, FHIR XML's is a resource in http://hl7.org/fhir.",
)
UNREADABLE = register(
    "file.read",
    summary="The file could be read.",
    fix="Check the path and the file's permissions.",
)


@dataclass
class FileResult:
    path: str
    format: str  # cda | fhir-json | fhir-ndjson | fhir-xml | unknown
    report: Report
    table: str | None = None
    units: int = 1  # documents or resources validated in the file


@dataclass(frozen=True)
class Options:
    """What the server would know about the uploading institution."""

    catalog: Catalog
    kind: str | None = None
    declared: Sequence[str] | None = None
    schema_path: Path | None = None
    max_bytes: int = 50 * 1024 * 1024
    # FHIR: the implementation guide's resources (--ig) and HL7's policy choices.
    context: Context = STANDALONE


@dataclass(frozen=True)
class Skipped:
    """A file a folder scan did not take, and why (listed to the user, never silent)."""

    path: str
    reason: str


@dataclass
class Scan:
    files: list[str]
    skipped: list[Skipped]


def scan(arguments: Sequence[str]) -> Scan:
    """Files named, files in folders (recursively), glob matches, and ``-``. In a folder, a file
    is taken by its suffix (``SUFFIXES``) or, whatever its name (``.ccd``, ``.txt``, none), by
    its content; every file left out is in ``skipped`` with the reason. Hidden folders (``.git``)
    are not searched. Raises FileNotFoundError for an argument that names nothing."""
    files: list[str] = []
    skipped: list[Skipped] = []
    for argument in arguments:
        if argument == STDIN:
            files.append(STDIN)
            continue
        path = Path(argument)
        if path.is_dir():
            _scan_folder(path, files, skipped)
        elif path.exists():
            files.append(str(path))
        else:
            matches = sorted(glob.glob(argument, recursive=True))  # noqa: PTH207 (user patterns)
            if not matches:
                raise FileNotFoundError(argument)
            files.extend(m for m in matches if Path(m).is_file())
    return Scan(list(dict.fromkeys(files)), skipped)


def _scan_folder(folder: Path, files: list[str], skipped: list[Skipped]) -> None:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).parts
        hidden = next((i for i, part in enumerate(relative) if part.startswith(".")), None)
        if hidden is not None:
            # Report a hidden folder once, not every file under it.
            if hidden == len(relative) - 1 and path.is_dir():
                skipped.append(Skipped(str(path), "hidden folder, not searched"))
            elif hidden == len(relative) - 1:
                skipped.append(Skipped(str(path), "hidden file"))
            continue
        if not path.is_file():
            continue
        if path.suffix.lower() in SUFFIXES:
            files.append(str(path))
            continue
        reason = _not_taken(path)
        if reason is None:
            files.append(str(path))
        else:
            skipped.append(Skipped(str(path), reason))


def _not_taken(path: Path) -> str | None:
    """Why a file with an unknown suffix is not validated, or None when its content is CDA or
    FHIR."""
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    if not head.strip():
        return "empty file"
    # Stricter than sniff: any XML or JSON file (a schema, a web page, a config) is not taken
    # just because it opens with < or {.
    kind = sniff(head)
    suffix = path.suffix.lower() or "no suffix"
    if kind == "cda" and b"ClinicalDocument" in head:
        return None
    if kind == "fhir-xml" or (kind.startswith("fhir") and b'"resourceType"' in head):
        return None
    if kind == "cda":
        return f"XML but not a CDA ClinicalDocument nor a FHIR resource ({suffix})"
    if kind.startswith("fhir"):
        return f"JSON without a FHIR resourceType ({suffix})"
    return f"neither CDA nor FHIR by its content ({suffix})"


def expand(arguments: Sequence[str]) -> Iterator[str]:
    """The files of :func:`scan`, without the list of what was skipped."""
    yield from scan(arguments).files


def sniff(data: bytes) -> str:
    """The format of ``data`` from its content, not its name."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:4096]
    if head.startswith(b"<"):
        if b"http://hl7.org/fhir" in head and b"ClinicalDocument" not in head:
            return "fhir-xml"
        return "cda"
    # A JSON file may open with a comment (JSON5 style): parse_json locates it, or skips it
    # when the policy allows comments.
    if head.startswith((b"{", b"//", b"/*")):
        lines = [line for line in data.splitlines() if line.strip()]
        if len(lines) > 1 and all(line.lstrip().startswith(b"{") for line in lines[:3]):
            try:
                json.loads(data)
            except ValueError:
                return "fhir-ndjson"
        return "fhir-json"
    return "unknown"


def validate_bytes(path: str, data: bytes, options: Options) -> FileResult:
    """Validate one file's bytes; never raises on bad content."""
    kind = sniff(data)
    if kind == "cda":
        from hie.validators.cda import CdaSchema, validate_cda

        result = validate_cda(
            data,
            catalog=options.catalog,
            kind=options.kind,
            declared=options.declared,
            schema=CdaSchema(options.schema_path),
            max_bytes=options.max_bytes,
        )
        table = result.table.code if result.table else None
        return FileResult(path, kind, result.report, table)
    if kind.startswith("fhir"):
        return _validate_fhir(path, kind, data, options)
    report = Report()
    report.add(
        Severity.FATAL,
        UNRECOGNISED.id,
        "not a CDA document, a FHIR resource or Bundle, nor FHIR NDJSON",
        code="structure",
        line=1,
    )
    return FileResult(path, "unknown", report)


def _validate_fhir(path: str, kind: str, data: bytes, options: Options) -> FileResult:
    from hie.validators.fhir import parse_json, validate_resource

    report = Report()
    if kind == "fhir-xml":
        from hie.validators.fhir_xml import read_fhir_xml

        read = read_fhir_xml(data, max_bytes=options.max_bytes)
        report.extend(read.report)
        if read.resource is None:
            return FileResult(path, kind, report)
        result = validate_resource(
            read.resource,
            catalog=options.catalog,
            declared=list(options.declared) if options.declared is not None else None,
            context=options.context,
        )
        # The rule layers locate issues by FHIRPath; in XML they also get the line and column.
        report.issues.extend(read.locations.place(issue) for issue in result.report.issues)
        return FileResult(path, kind, report, result.table.code if result.table else None)
    chunks = [data] if kind == "fhir-json" else [c for c in data.splitlines() if c.strip()]
    tables: set[str] = set()
    for number, chunk in enumerate(chunks, start=1):
        resource, parsed = parse_json(chunk, allow_comments=options.context.policy.json_comments)
        for issue in parsed.issues:
            report.issues.append(_on_line(issue, number) if kind == "fhir-ndjson" else issue)
        if resource is None:
            continue
        result = validate_resource(
            resource,
            catalog=options.catalog,
            declared=list(options.declared) if options.declared is not None else None,
            context=options.context,
        )
        for issue in result.report.issues:
            report.issues.append(_on_line(issue, number) if kind == "fhir-ndjson" else issue)
        if result.table is not None:
            tables.add(result.table.code)
    return FileResult(path, kind, report, ", ".join(sorted(tables)) or None, units=len(chunks))


def _on_line(issue: Issue, line: int) -> Issue:
    """An NDJSON issue points at its line of the file."""
    return Issue(
        issue.severity, issue.rule, issue.message, issue.code, line, issue.column, issue.expression
    )


def validate_path(path: str, options: Options, stdin: bytes | None = None) -> FileResult:
    if path == STDIN:
        return validate_bytes("<stdin>", stdin or b"", options)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        report = Report()
        report.add(Severity.FATAL, UNREADABLE.id, f"cannot read the file: {exc.strerror}")
        return FileResult(path, "unknown", report)
    return validate_bytes(path, data, options)
