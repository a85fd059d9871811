"""``python -m infersave.service [--host H] [--port P] [--max-body-mb N] [--max-rows N]
[--max-jobs N]``: the same server as ``infersave serve``."""

from __future__ import annotations

import argparse

from infersave.service.limits import MB, Limits
from infersave.service.server import run


def main(argv: list[str] | None = None) -> None:
    d = Limits()
    p = argparse.ArgumentParser(prog="python -m infersave.service", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0: any free port")
    p.add_argument("--max-body-mb", type=float, default=d.max_body_bytes / MB)
    p.add_argument("--max-rows", type=int, default=d.max_rows)
    p.add_argument("--max-jobs", type=int, default=d.max_jobs)
    a = p.parse_args(argv)
    try:
        limits = Limits(
            max_body_bytes=int(a.max_body_mb * MB), max_rows=a.max_rows, max_jobs=a.max_jobs
        )
    except ValueError as exc:
        p.error(str(exc))
    run(a.host, a.port, limits)


if __name__ == "__main__":
    main()
