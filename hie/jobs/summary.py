"""A job as its submitter sees it (the JSON of ``GET /api/jobs/{id}`` and ``hie jobs show``)."""

from __future__ import annotations

from typing import Any

from hie.storage.jobs import Job

# Items per page of ``GET /api/jobs/{id}/items``.
PAGE = 100

REQUESTS = {"fhir-ndjson": "POST /fhir/$import", "cda-zip": "POST /cda/batch"}


def summary(job: Job, counts: dict[str, int], url: str) -> dict[str, Any]:
    total = job.item_count if job.item_count is not None else sum(counts.values())
    finished = total - counts.get("pending", 0) if job.item_count is not None else 0
    return {
        "id": str(job.id),
        "request": REQUESTS.get(job.kind, job.kind),
        "state": job.state,
        "institution": job.institution_code,
        "transactionTime": job.received_at.isoformat(),
        "bytes": job.byte_size,
        "sha256": job.content_sha256.hex(),
        "items": total if job.item_count is not None else None,
        "progress": f"{finished}/{total if job.item_count is not None else '?'} items",
        "accepted": counts.get("accepted", 0),
        "rejected": counts.get("rejected", 0),
        "failed": counts.get("failed", 0),
        "pending": counts.get("pending", 0),
        "error": f"{url}/items?state=rejected,failed",
        "outcomes": f"{url}/items",
        "created": job.created_at.isoformat(),
        "finished": job.finished_at.isoformat() if job.finished_at else None,
        **({"reason": job.error} if job.error else {}),
    }


def item_rows(job: Job, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-item outcomes: the line (NDJSON) or the entry name (zip) with its OperationOutcome."""
    where = "line" if job.kind == "fhir-ndjson" else "entry"
    out = []
    for row in rows:
        item: dict[str, Any] = {
            "item": row["seq"],
            where: int(row["name"]) if where == "line" else row["name"],
            "state": row["state"],
            "status": row["status"],
        }
        if row["error_code"]:
            item["code"] = row["error_code"]
        if row["outcome"] is not None:
            key = "outcome" if row["state"] in ("rejected", "failed") else "stored"
            item[key] = row["outcome"]
        out.append(item)
    return out
