"""The dead-letter queue (``<prefix>.dead``) read back: which task's message died, and why.

A quorum queue dead-letters a message its workers kept dying on (``x-delivery-limit``:
reason ``delivery_limit``) and one a task rejected without requeueing (reason ``rejected``:
``hie.workers.ingest`` gives up that way on a dependency down too long). The broker adds an
``x-death`` header saying so; Celery's headers say which task, and its body holds the arguments
(ids and item numbers, never data). Whoever records the letters (``hie jobs dead``, the
maintenance queue's ``record_dead_letters``) acknowledges only those it recorded: the others go
back to the queue when the channel closes, in their order.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from celery import Celery

from hie.workers.app import DELIVERY_LIMIT, dead_letter_queue

log = logging.getLogger(__name__)

# Letters read in one go (each is a few hundred bytes: ids and numbers).
BATCH = 1000


@dataclass(frozen=True)
class DeadLetter:
    task: str
    task_id: str | None
    args: tuple[Any, ...]
    reason: str  # delivery_limit | rejected | expired | maxlen
    queue: str | None

    def describe(self) -> str:
        """The reason as an operator reads it."""
        text = f"dead-lettered by the broker ({self.reason})"
        if self.reason == "delivery_limit":
            queue = self.queue or "its queue"
            text += (
                f": handed out more than {DELIVERY_LIMIT} times from {queue}, "
                "its worker died each time"
            )
        elif self.reason == "rejected":
            text += f": its task gave up on {self.queue or 'its queue'}"
        return text


def parse_dead_letter(headers: Mapping[str, Any], payload: Any) -> DeadLetter | None:
    """A letter from a Celery message's headers and decoded body (protocol 2: ``[args, kwargs,
    embed]``); None for a message that is not a Celery task's."""
    task = headers.get("task")
    if not isinstance(task, str):
        return None
    args: tuple[Any, ...] = ()
    if isinstance(payload, list | tuple) and payload and isinstance(payload[0], list | tuple):
        args = tuple(payload[0])
    deaths = headers.get("x-death") or []
    death: Mapping[str, Any] = deaths[0] if deaths and isinstance(deaths[0], Mapping) else {}
    reason = death.get("reason")
    return DeadLetter(
        task=task,
        task_id=headers.get("id") if isinstance(headers.get("id"), str) else None,
        args=args,
        reason=reason.decode() if isinstance(reason, bytes) else str(reason or "unknown"),
        queue=str(death["queue"]) if death.get("queue") else None,
    )


def drain_dead_letters(app: Celery, record: Callable[[DeadLetter], bool]) -> list[DeadLetter]:
    """Read the dead letters and hand each to ``record``; those it recorded (True) leave the
    queue. Returns the letters recorded. In-process mode has no queue."""
    if app.conf.task_always_eager:
        return []
    prefix = str(app.conf.task_default_queue).rsplit(".", 1)[0]
    recorded: list[DeadLetter] = []
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=app.conf.broker_connection_timeout)
        channel = connection.channel()
        try:
            queue = dead_letter_queue(prefix).bind(channel)
            queue.declare()
            for _ in range(BATCH):
                message = queue.get(no_ack=False)
                if message is None:
                    break
                letter = parse_dead_letter(message.headers or {}, _payload(message))
                if letter is not None and record(letter):
                    message.ack()
                    recorded.append(letter)
        finally:
            # The letters not recorded return to the queue with the channel.
            with contextlib.suppress(Exception):
                channel.close()
    return recorded


def _payload(message: Any) -> Any:
    try:
        return message.decode()
    except Exception:  # not JSON, or not ours: only its headers are read
        return None
