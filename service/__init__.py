"""The HTTP service (``infersave serve``): a thin FastAPI layer over the front door.

The request and response bodies are the front door's own models (:class:`~infersave.Scenario`
in, :class:`~infersave.SolveResult` out, ...), so the OpenAPI document (``/openapi.json``) is
generated from the same definitions as the command line's JSON. This package imports nothing
deeper than the package root ``infersave``.

    from infersave.service import Limits, create_app
    app = create_app(Limits(max_jobs=2))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from infersave.service.limits import Limits

__all__ = ["Limits", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":  # imports FastAPI: only when asked for
        from infersave.service.app import create_app

        return create_app
    raise AttributeError(f"module 'infersave.service' has no attribute {name!r}")


if TYPE_CHECKING:
    from infersave.service.app import create_app
