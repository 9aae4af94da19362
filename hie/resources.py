"""Where the data files of ``schemas/`` are, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path


def schemas_dir() -> Path:
    """The ``schemas/`` folder: inside the wheel as ``hie/schemas``, or at the top of a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "schemas", here.parent / "schemas"):
        if (candidate / "catalog.csv").is_file():
            return candidate
    raise FileNotFoundError("the hie installation has no schemas/ folder; reinstall the package")
