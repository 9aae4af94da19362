"""``hie validate``: the server's validators, offline, for hospital and vendor developers."""

from __future__ import annotations

import gc
import importlib
import json
import multiprocessing
import os
import pkgutil
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any
from xml.sax.saxutils import escape, quoteattr

import typer
from rich.progress import Progress

from hie.catalog import default_catalog_path, read_catalog
from hie.cli.context import console, errors, fail, reported_errors
from hie.validators.conformance import SERVER, Policy, load_context
from hie.validators.files import STDIN, FileResult, Options, scan, validate_path
from hie.validators.report import Severity

FORMATS = ("text", "json", "junit")
PLATFORM, HL7 = "platform", "hl7"
MODES = (PLATFORM, HL7)
# What each mode judges, said in every output.
MODE_MEANING = {
    PLATFORM: "what the platform stores: FHIR R4 and the platform's rules, as its server",
    HL7: "FHIR R4 validity only, as HL7's validator",
}
# Below this many files a process pool costs more than it saves.
PARALLEL_FROM = 16


def _load_rules() -> None:
    """Import every module of the validators so that the registry knows all their rules."""
    import hie.validators
    from hie.validators.fhir_rules.invariants import invariants

    for module in pkgutil.walk_packages(hie.validators.__path__, "hie.validators."):
        importlib.import_module(module.name)
    invariants()  # registered as they are read from schemas/fhir/invariants.json


def _explain(rule_id: str) -> None:
    from hie.validators.rules import RULES

    _load_rules()
    rule = RULES.get(rule_id)
    if rule is None:
        close = sorted(r for r in RULES if rule_id.split(".")[0] in r)[:10]
        hint = f"; rules of that family: {', '.join(close)}" if close else ""
        raise fail(f"no rule {rule_id!r}{hint}", 2)
    console.print(f"[bold]{rule.id}[/]\n\nChecks: {rule.summary}\n\nTo fix: {rule.fix}")


def _run(paths: list[str], options: Options, jobs: int, stdin: bytes | None) -> list[FileResult]:
    with _fewer_collections():
        if jobs > 1 and len(paths) >= PARALLEL_FROM:
            return _run_in_processes(paths, options, jobs, stdin)
        results = []
        with Progress(console=errors, transient=True, disable=len(paths) < 50) as progress:
            task = progress.add_task("validating", total=len(paths))
            for path in paths:
                results.append(validate_path(path, options, stdin))
                progress.advance(task)
        return results


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """A validation allocates millions of short-lived objects (the JSON, the models, the
    issues), and at Python's default thresholds the collector kept scanning the long-lived ones
    (R4's definitions, models and compiled expressions): a fifth of the time. What is loaded is
    frozen (never scanned; its memory pages stay shared with forked workers instead of being
    copied when the collector touches them), and collections are rarer."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


# What a pool's worker validates with, given once when it starts rather than with each file.
_SHARED: list[tuple[Options, bytes | None]] = []


def _share(options: Options, stdin: bytes | None) -> None:
    _SHARED[:] = [(options, stdin)]


def _run_in_processes(
    paths: list[str], options: Options, jobs: int, stdin: bytes | None
) -> list[FileResult]:
    # Largest first, so that no worker is left with a large file while the others are idle.
    order = sorted(range(len(paths)), key=lambda i: -_size(paths[i]))
    results: list[FileResult | None] = [None] * len(paths)
    # One file of middle size is validated here, before the workers are forked: the imports,
    # the models, R4's definitions and the compiled expressions it needs are loaded once and
    # inherited by every worker rather than loaded by each.
    _preload(paths)
    first = order.pop(len(order) // 2)
    results[first] = validate_path(paths[first], options, stdin)
    gc.freeze()
    # Forked where the platform can (a spawned worker would import and load everything again).
    context = (
        multiprocessing.get_context("fork")
        if "fork" in multiprocessing.get_all_start_methods()
        else None
    )
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_share, initargs=(options, stdin)
    ) as pool:
        # Submitted (and so forked) before the progress bar starts its thread.
        futures = {pool.submit(_validate_shared, paths[i]): i for i in order}
        with Progress(console=errors, transient=True) as progress:
            task = progress.add_task("validating", total=len(paths), completed=1)
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                progress.advance(task)
    return [result for result in results if result is not None]


def _preload(paths: list[str]) -> None:
    """Import the validators the files will need, once, before the workers are forked."""
    if any(not path.endswith((".cda", ".ccd", ".ccda")) for path in paths):
        import hie.validators.fhir
    if any(not path.endswith((".json", ".ndjson")) for path in paths):
        import hie.validators.cda  # noqa: F401


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def _validate_shared(path: str) -> FileResult:
    [(options, stdin)] = _SHARED  # set by _share when the worker started
    return validate_path(path, options, stdin)


def _text(results: list[FileResult]) -> str:
    lines = []
    for result in results:
        if not result.report.issues:
            continue
        lines.append(
            f"{result.path} ({result.format}{', ' + result.table if result.table else ''})"
        )
        for issue in result.report.issues:
            where = result.path
            if issue.line is not None:
                where += f":{issue.line}" + (f":{issue.column}" if issue.column else "")
            path = f" at {issue.expression}" if issue.expression else ""
            lines.append(f"{where} {issue.severity.value} {issue.rule} {issue.message}{path}")
    return "\n".join(lines)


def _summary(results: list[FileResult], mode: str) -> str:
    errors_ = sum(len(r.report.errors) for r in results)
    warnings = sum(len(r.report.warnings) for r in results)
    rejected = sum(1 for r in results if r.report.rejected)
    return (
        f"{len(results)} file(s): {len(results) - rejected} valid, {rejected} invalid; "
        f"{errors_} error(s), {warnings} warning(s) or note(s); "
        f"mode {mode} ({MODE_MEANING[mode]})"
    )


def _json(results: list[FileResult], mode: str) -> str:
    return json.dumps(
        [
            {
                "path": r.path,
                "format": r.format,
                "table": r.table,
                "mode": mode,
                "valid": not r.report.rejected,
                "outcome": r.report.to_operation_outcome(per_rule=None),
            }
            for r in results
        ],
        ensure_ascii=False,
        indent=2,
    )


def _junit(results: list[FileResult], mode: str) -> str:
    failures = sum(1 for r in results if r.report.rejected)
    cases = []
    for r in results:
        body = ""
        if r.report.rejected:
            message = quoteattr(r.report.errors[0].message)
            detail = escape(_text([r]))
            body = f"<failure message={message}>{detail}</failure>"
        elif r.report.warnings:
            body = f"<system-out>{escape(_text([r]))}</system-out>"
        cases.append(
            f'  <testcase classname="hie.validate" name={quoteattr(r.path)}>{body}</testcase>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuite name="hie validate" tests="{len(results)}" failures="{failures}" errors="0">\n'
        f'  <properties><property name="mode" value="{mode}"/></properties>\n'
        + "\n".join(cases)
        + "\n</testsuite>"
    )


def validate(
    paths: Annotated[
        list[str] | None, typer.Argument(help="Files, folders (recursive), globs, or - for stdin.")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="text, json or junit.")] = "text",
    fail_on: Annotated[
        str, typer.Option(help="error (default) or warning: the level that makes the exit code 1.")
    ] = "error",
    catalog: Annotated[
        Path | None, typer.Option(help="A catalog CSV instead of the built-in one.")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="hospital or district: check as for it.")] = None,
    declared: Annotated[
        str | None,
        typer.Option(help="Comma-separated declared tables, checked as the server does."),
    ] = None,
    schema: Annotated[
        Path | None,
        typer.Option(help="HL7's CDA.xsd or CDA_SDTC.xsd instead of the built-in schema."),
    ] = None,
    ig: Annotated[
        list[Path] | None,
        typer.Option(
            help="FHIR conformance resources (Questionnaires, StructureDefinitions, ValueSets, "
            "CodeSystems): a file, a folder or a Bundle; repeatable, like HL7's -ig."
        ),
    ] = None,
    allow_any_extensions: Annotated[
        bool,
        typer.Option(help="Accept FHIR extensions whose definition is not known (as the server)."),
    ] = False,
    extension_domain: Annotated[
        list[str] | None,
        typer.Option(help="Accept unknown FHIR extensions whose URL starts with this; repeatable."),
    ] = None,
    security_checks: Annotated[
        bool, typer.Option(help="Refuse FHIR strings that look like HTML markup.")
    ] = False,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            help="Also validate each FHIR resource against this profile's canonical URL (from "
            "--ig or R4's own); repeatable, like HL7's -profile."
        ),
    ] = None,
    bundle_profile: Annotated[
        list[str] | None,
        typer.Option(
            help="RULE=URL: also validate the Bundle entries RULE picks against this profile, "
            "like HL7's -bundle RULE URL. RULE is Type:n (the n-th entry of that type, from "
            "0), Type (every entry of that type) or :n (entry n); repeatable.",
            metavar="RULE=URL",
        ),
    ] = None,
    allow_json_comments: Annotated[
        bool,
        typer.Option(help="Accept // and /* */ comments in FHIR JSON (otherwise an error)."),
    ] = False,
    assume_valid_rest_references: Annotated[
        bool,
        typer.Option(
            help="Take a reference such as Group/1 to name a resource of that type, and check "
            "it against the profile's target types (HL7's -assumeValidRestReferences)."
        ),
    ] = False,
    for_publication: Annotated[
        bool,
        typer.Option(
            help="Also check what HL7 requires of resources it publishes: the owning work group "
            "of canonical resources at HL7 URLs (HL7's -forPublication)."
        ),
    ] = False,
    check_references: Annotated[
        bool,
        typer.Option(
            help="A relative reference (Patient/1) made inside a Bundle or Parameters must "
            "name one of its resources, as HL7's reference policy CHECK_EXISTS (offline: no "
            "server is asked for what is not there)."
        ),
    ] = False,
    ignore_contained: Annotated[
        bool,
        typer.Option(
            help="Leave contained resources out of the validation (and dom-3), as HL7's "
            "validator with its contained-resource policy IGNORE (validateContains)."
        ),
    ] = False,
    mode: Annotated[
        str | None,
        typer.Option(
            help="platform (default): what the platform's server stores, its catalog rules "
            "included; unknown extensions outside R4's own, wrong displays, vital signs outside "
            "R4's profiles and relative canonicals only warned about. hl7: FHIR R4 validity "
            "only, judged as HL7's validator does (also --profile hl7)."
        ),
    ] = None,
    as_server: Annotated[
        bool, typer.Option(help="The same as --mode platform (the default).")
    ] = False,
    jobs: Annotated[int, typer.Option(help="Processes to use (default: every core).")] = 0,
    explain: Annotated[
        str | None,
        typer.Option(help="Print what RULE-ID checks and how to fix it.", metavar="RULE-ID"),
    ] = None,
) -> None:
    """Validate CDA documents and FHIR resources exactly as the platform would, offline.

    Exit code 0 when nothing reaches --fail-on, 1 otherwise, 2 for usage errors.
    """
    if explain:
        _explain(explain)
        return
    if not paths:
        raise fail("give at least one file, folder, glob or -", 2)
    if format not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}", 2)
    if fail_on not in ("error", "warning"):
        raise fail("--fail-on must be error or warning", 2)
    if kind not in (None, "hospital", "district"):
        raise fail("--kind must be hospital or district", 2)
    if schema is not None and not schema.is_file():
        raise fail(f"--schema {schema}: no such file", 2)
    with reported_errors():
        loaded = read_catalog(catalog or default_catalog_path())
    tables = [t.strip() for t in declared.split(",") if t.strip()] if declared is not None else None
    if tables and (unknown := loaded.unknown_codes(tables)):
        raise fail(f"--declared names tables the catalog does not have: {', '.join(unknown)}", 2)
    try:
        found = scan(paths)
    except FileNotFoundError as exc:
        raise fail(f"{exc.args[0]}: no such file, folder or match", 2) from None
    # What a folder scan left out is listed, never silent (on standard error: the outputs stay
    # what they are).
    for left in found.skipped:
        errors.print(f"skipped {left.path}: {left.reason}", highlight=False, markup=False)
    files = found.files
    if not files:
        raise fail("no CDA or FHIR files found", 2)
    for source in ig or []:
        if not source.exists():
            raise fail(f"--ig {source}: no such file or folder", 2)
    # --profile hl7 names the mode, not a profile (profiles are canonical URLs).
    named = [p for p in profile or [] if p in MODES]
    profile = [p for p in profile or [] if p not in MODES]
    modes = {*named, *([mode] if mode else []), *([PLATFORM] if as_server else [])}
    if not modes <= set(MODES):
        raise fail(f"--mode must be one of {', '.join(MODES)}", 2)
    if len(modes) > 1:
        raise fail(f"conflicting modes: {', '.join(sorted(modes))}", 2)
    chosen = modes.pop() if modes else PLATFORM
    platform = chosen == PLATFORM
    base = SERVER.policy if platform else Policy()
    policy = replace(
        base,
        any_extension=allow_any_extensions or base.any_extension,
        extension_domains=tuple(extension_domain or ()),
        security_checks=security_checks,
        valid_rest_references=assume_valid_rest_references or base.valid_rest_references,
        json_comments=allow_json_comments,
        for_publication=for_publication,
        validate_contained=not ignore_contained,
        check_references=check_references,
    )
    by_rule: list[tuple[str, str]] = []
    for given in bundle_profile or []:
        rule, equals, canonical = given.partition("=")
        if not equals or not canonical or not rule:
            raise fail(f"--bundle-profile {given}: give RULE=URL, e.g. Patient:0=URL", 2)
        by_rule.append((rule, canonical))
    try:
        context = load_context(
            ig or [], policy, profile, platform_rules=platform, entry_profiles=by_rule
        )
    except (ValueError, OSError) as exc:
        raise fail(f"--ig: {exc}", 2) from None
    if context.profiles:
        from hie.validators.fhir_rules.profiles import profile_type  # R4's definitions: costly
    for canonical in context.profiles:
        if profile_type(canonical, context.conformance) is None:
            raise fail(f"--profile {canonical}: no such profile in R4 or the --ig resources", 2)
    if context.entry_profiles:
        from hie.validators.fhir_rules.profiles import profile_type
    for _, canonical in context.entry_profiles:
        if profile_type(canonical, context.conformance) is None:
            raise fail(
                f"--bundle-profile {canonical}: no such profile in R4 or the --ig resources", 2
            )
    stdin = sys.stdin.buffer.read() if STDIN in files else None
    options = Options(loaded, kind, tables, schema, context=context)
    results = _run(files, options, jobs or (os.cpu_count() or 1), stdin)

    output: dict[str, Any] = {
        "text": lambda results, _: _text(results),
        "json": _json,
        "junit": _junit,
    }
    rendered = output[format](results, chosen)
    if rendered:
        sys.stdout.write(rendered + "\n")
        sys.stdout.flush()  # before the summary on standard error
    if format == "text":
        errors.print(_summary(results, chosen), highlight=False)
    bar = {Severity.FATAL, Severity.ERROR} | ({Severity.WARNING} if fail_on == "warning" else set())
    failed = any(i.severity in bar for r in results for i in r.report.issues)
    raise typer.Exit(1 if failed else 0)
