"""JSON out: never NaN or Infinity (they are not JSON), and results byte-for-byte as the
command line renders them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from infersave.service.jobs import finite


class SafeJSONResponse(JSONResponse):
    """A JSON response whose non-finite floats are null (the app's default response class).
    ASCII with escapes, so text a client sent that is not valid Unicode (a lone surrogate
    such as \\ud800, which JSON can carry) still renders."""

    def render(self, content: Any) -> bytes:
        return json.dumps(finite(content), allow_nan=False, separators=(",", ":")).encode("ascii")


def encoded(chunks: Iterable[str]) -> Iterator[bytes]:
    """UTF-8 chunks for a streamed response; text that is not valid Unicode is escaped."""
    for chunk in chunks:
        yield chunk.encode("utf-8", "backslashreplace")


def model_json(model: BaseModel, status_code: int = 200) -> Response:
    """``model.model_dump_json()``: the text ``infersave ... -f json`` prints (pydantic writes
    non-finite floats as null)."""
    return Response(model.model_dump_json(), status_code, media_type="application/json")
