"""Celery workers. ``celery -A hie.workers worker`` runs them against ``HIE_BROKER_URL``."""

from hie.config import load_settings
from hie.workers.app import app, broker_status, configure

configure(load_settings())

__all__ = ["app", "broker_status", "configure"]
