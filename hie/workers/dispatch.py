"""Sending tasks only once the transaction that caused them has committed."""

from __future__ import annotations

from typing import Any

from hie.storage import Transaction


def send_after_commit(tx: Transaction, task: Any, *args: Any, **kwargs: Any) -> None:
    """Queue ``task`` when ``tx`` commits; a rolled-back transaction sends nothing.

    Sending inside the transaction would let a worker act on rows it cannot see yet, or on rows
    that are then rolled back.
    """
    tx.after_commit(lambda: task.apply_async(args=args, kwargs=kwargs))
