"""The regulator dashboard: server-rendered pages under ``/dashboard`` (issue 8).

``router`` holds the pages; ``static_files()`` serves the stylesheets from the package itself (the
users' network reaches no CDN).
"""

from pathlib import Path

from starlette.staticfiles import StaticFiles

from hie.dashboard.residents import router as residents_router
from hie.dashboard.routes import router

router.include_router(residents_router)

STATIC = Path(__file__).parent / "static"


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)


__all__ = ["STATIC", "router", "static_files"]
