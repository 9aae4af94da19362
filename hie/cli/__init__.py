"""The ``hie`` command line."""

from hie.cli.main import app, main

__all__ = ["app", "main"]
