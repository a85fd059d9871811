"""JSON out: never NaN or Infinity (they are not JSON), and results byte-for-byte as the
command line renders them."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from infersave.service.jobs import finite


class SafeJSONResponse(JSONResponse):
    """A JSON response whose non-finite floats are null (the app's default response class)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            finite(content), allow_nan=False, ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")


def model_json(model: BaseModel, status_code: int = 200) -> Response:
    """``model.model_dump_json()``: the text ``infersave ... -f json`` prints (pydantic writes
    non-finite floats as null)."""
    return Response(model.model_dump_json(), status_code, media_type="application/json")
