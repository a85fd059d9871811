"""Run the app with uvicorn on one listening socket."""

from __future__ import annotations

import socket
import sys

from infersave.service.limits import Limits


def run(host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None) -> None:
    """Serve until interrupted. ``port`` 0 takes a free port; the address actually bound is
    printed on stderr first (``infersave: serving on http://HOST:PORT``).

    Raises:
        OSError: the address cannot be bound (in use, or not an address of this machine).
    """
    import uvicorn

    from infersave.service.app import create_app

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every answer waited ~40 ms for the client's delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    sys.stderr.write(f"infersave: serving on http://{shown}:{bound} (docs at /docs)\n")
    sys.stderr.flush()
    config = uvicorn.Config(
        create_app(limits or Limits()),
        log_level="info",
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=[sock])
