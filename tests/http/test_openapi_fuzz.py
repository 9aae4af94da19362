"""Schemathesis over the OpenAPI document (every /api, /cda and /fhir operation), on a live
server and database with admin and submitter tokens: no request may get a 5xx. A small budget
here; ``scripts/fuzz_api.py`` runs the large campaign (``HIE_FUZZ_EXAMPLES`` raises this one)."""

from __future__ import annotations

import importlib.util
import os
import secrets
import sys
from pathlib import Path
from types import ModuleType

from hie.app import create_app
from hie.config import Settings

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fuzz_api.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_api", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_fhir_routes_are_described_for_clients(tmp_path: Path) -> None:
    spec = create_app(
        Settings(
            database_url="postgresql://nobody@127.0.0.1:1/none",
            data_dir=tmp_path,
            secret_key=secrets.token_urlsafe(48),
        )
    ).openapi()
    create = spec["paths"]["/fhir/{resource_type}"]["post"]
    assert "application/fhir+json" in create["requestBody"]["content"]
    assert {"identifier", "_count", "X-HIE-Institution"} <= {
        p["name"] for p in create["parameters"]
    }
    search = spec["paths"]["/fhir/{resource_type}/_search"]["post"]
    assert "application/x-www-form-urlencoded" in search["requestBody"]["content"]
    assert "application/fhir+json" in spec["paths"]["/fhir"]["post"]["requestBody"]["content"]


def test_fuzzing_every_operation_finds_no_server_error(postgres_url: str, broker_url: str) -> None:
    examples = int(os.environ.get("HIE_FUZZ_EXAMPLES", "2"))
    served = _script().fuzz(
        max_examples=examples,
        postgres_url=postgres_url,
        broker_url=broker_url,
        seed=int(os.environ.get("HIE_FUZZ_SEED", "1")),
        workers=1,
        phases=os.environ.get("HIE_FUZZ_PHASES", "fuzzing"),
    )
    assert served.requests >= 100  # schemathesis did run, against every operation
    assert served.server_errors == []
