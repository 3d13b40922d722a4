"""An app served by uvicorn on a free local port in a thread, for the tests that need real
sockets (a client that stops reading, several concurrent streams)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from disagg.experiments.serve.server import ReadyServer


@contextmanager
def serving(app: Any) -> Iterator[int]:
    """Serve ``app`` until the block ends; yields the port it listens on."""
    listening = threading.Event()
    port: list[int] = []
    server = ReadyServer(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                        lifespan="off"),
                         lambda p: (port.append(p), listening.set()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert listening.wait(30)
        yield port[0]
    finally:
        server.should_exit = True
        thread.join(30)
