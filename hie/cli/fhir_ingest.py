"""FHIR files in ``hie ingest``: through the FHIR server's own write path, counting what each
write did (created, updated, unchanged, rejected)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from hie.audit import Agent
from hie.catalog import Catalog
from hie.cli.context import actor
from hie.client import Receipt
from hie.config import Settings
from hie.fhir.responses import Answer
from hie.fhir.server import Call, FhirServer
from hie.fhir.session import WriteSession
from hie.fhir.transactions import Upload
from hie.storage import Database


class _CountingServer(FhirServer):
    """Keeps what each write session did: a transaction's entries all answer 200 whether a
    resource was updated (a new version) or unchanged (nothing written)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        super().__init__(settings, db)
        self.sessions: list[tuple[int, int]] = []

    def write(
        self,
        call: Call,
        body: bytes,
        catalog: Catalog,
        work: Callable[[WriteSession, Upload], Answer],
        *,
        resources: int = 1,
    ) -> Answer:
        def counted(session: WriteSession, upload: Upload) -> Answer:
            answer = work(session, upload)
            # A retried attempt replaces the count of the one that failed.
            self.sessions[-1:] = [(session.written, session.unchanged)]
            return answer

        self.sessions.append((0, 0))
        return super().write(call, body, catalog, counted, resources=resources)


class FhirIngest:
    """FHIR files through the FHIR server's own write path, as an admin backfilling would."""

    def __init__(
        self, settings: Settings, db: Database, institution: str, moment: datetime | None
    ) -> None:
        from hie.fhir.access import Scope
        from hie.fhir.bundles import BundleProcessor
        from hie.fhir.responses import Preferences

        # A backfill arrives in any order and a plain create gets a new id (so "Patient/p1" in
        # a file names no stored id): it skips the referential integrity check of writes, as
        # a bulk load into HAPI is run with it off. Deletes inside Bundles are still checked.
        unchecked = settings.model_copy(update={"enforce_referential_integrity_on_write": False})
        self.server = _CountingServer(unchecked, db)
        self.bundles = BundleProcessor(self.server)
        self.call = Call(
            Scope(institution, None, moment),
            Preferences.parse(None),
            "/fhir",
            agent=Agent(actor()),
            action="fhir.create",
        )

    def submit(self, file: Path) -> Iterator[tuple[Counter[str], list[str]]]:
        """What each resource or Bundle in ``file`` did (created, updated, unchanged, rejected,
        counted per resource) and the rules that rejected."""
        data = file.read_bytes()
        chunks = data.splitlines() if file.suffix.lower() == ".ndjson" else [data]
        for chunk in (c for c in chunks if c.strip()):
            try:
                head = json.loads(chunk)
            except ValueError:
                head = {}
            kind = head.get("resourceType") if isinstance(head, dict) else None
            self.server.sessions.clear()
            if kind == "Bundle" and head.get("type") in ("transaction", "batch"):
                answer = self.bundles.process(self.call, chunk)
            else:
                answer = self.server.create(self.call, str(kind or "Unknown"), chunk, None)
            receipt = Receipt(answer.status, answer.body or {})
            yield self._counts(answer.status, answer.body or {}), receipt.rules()

    def _counts(self, status: int, body: dict[str, Any]) -> Counter[str]:
        counts: Counter[str] = Counter()
        written, unchanged = self.server.sessions[-1] if self.server.sessions else (0, 0)
        if body.get("resourceType") == "Bundle" and status < 300:
            statuses = [e.get("response", {}).get("status", "") for e in body.get("entry", [])]
            counts["created"] = sum(s.startswith("201") for s in statuses)
            counts["rejected"] = sum(s.startswith(("4", "5")) for s in statuses)
        elif status == 201:
            counts["created"] = 1
        elif status >= 300:
            counts["rejected"] = max(1, len(body.get("entry", [])) if "entry" in body else 1)
        counts["updated"] = max(0, written - counts["created"])
        counts["unchanged"] = unchanged
        return counts
