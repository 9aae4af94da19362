"""Celery workers. ``celery -A hie.workers worker`` runs them against ``HIE_BROKER_URL``."""

from hie.config import load_settings
from hie.workers.app import broker_status, configure, send_task

# The app `celery -A hie.workers` runs, configured from the environment.
app = configure(load_settings())

__all__ = ["app", "broker_status", "configure", "send_task"]
