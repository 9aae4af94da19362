"""Generated NDJSON lines and CDA zips for the bulk tests and the benchmark."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hie.synth.documents import Person, fhir_encounter, fhir_patient, resident_id

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def resources(count: int, *, prefix: str = "p") -> list[dict[str, Any]]:
    """Patients (with ids: updates) and their Encounters (without: creates), half each."""
    out: list[dict[str, Any]] = []
    for n in range(count // 2):
        gender = "1" if n % 2 else "2"
        birth = date(1950, 1, 1) + timedelta(days=n % 20000)
        person = Person(
            resident_id("320102", birth, n, gender), f"HR-{prefix}-{n}", f"病人{n}", gender, birth
        )
        patient_id = f"{prefix}{n}"
        out.append(fhir_patient(patient_id, person))
        encounter = fhir_encounter("x", patient_id, "AMB", "finished", START + timedelta(minutes=n))
        del encounter["id"]
        out.append(encounter)
    return out


def ndjson(lines: list[dict[str, Any] | str]) -> bytes:
    return b"".join(
        (line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)).encode() + b"\n"
        for line in lines
    )


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()
