"""The HTTP app on uvicorn in a background thread of this process: what ``hie demo`` serves
and the tests drive a real server with."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from hie.errors import HieError


class BackgroundServer:
    """Serve ``app`` on 127.0.0.1 (``port`` 0: any free port) while the ``with`` block runs.

    The socket is bound here and handed to uvicorn, so a free port cannot be taken by someone
    else between choosing it and listening on it.
    """

    def __init__(self, app: Any, port: int = 0, host: str = "127.0.0.1") -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        bound_port = self._socket.getsockname()[1]
        self.url = f"http://{host}:{bound_port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self._socket.close()
                raise HieError("the HTTP server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self._socket.close()


def free_port() -> int:
    """A port free on 127.0.0.1 now (for a server started in another process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
