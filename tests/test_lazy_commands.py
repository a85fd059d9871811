"""The command line's lazy group (:mod:`infersave.cli.lazy_commands`) behaves as typer's own
group: same output bytes and outcome for every command's ``--help``, the top-level help, no
arguments, an unknown command (with its suggestion) and a real command; and it builds only the
command that runs."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest
import typer.main

from infersave.cli.lazy_commands import LazyGroup, lazy_group
from infersave.cli.main import app

COMMANDS = [typer.main.get_command_name(i.callback.__name__) if i.name is None else i.name
            for i in app.registered_commands]  # fmt: skip


def _run(group: Any, args: list[str]) -> tuple[str, Any]:
    """What the group prints for ``args`` and how it ended (return, exit code or error)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            end: Any = (
                "return",
                group.main(args=args, prog_name="infersave", standalone_mode=False),
            )
        except SystemExit as exc:
            end = ("exit", exc.code)
        except Exception as exc:  # click's usage errors: compared by type and message
            end = (type(exc).__name__, str(exc))
    return out.getvalue(), end


CASES = [
    ["--help"],
    [],
    ["solv"],
    ["models", "--format", "json"],
    ["instances", "--format", "csv", "--region", "us-east-1"],
    ["solve", "--model", "opt-2.7b"],  # missing option: a usage error naming it
    *([c, "--help"] for c in COMMANDS),
]


@pytest.mark.parametrize("args", CASES, ids=" ".join)
def test_lazy_group_is_typers_group(args: list[str]) -> None:
    want = _run(typer.main.get_command(app), args)
    got = _run(lazy_group(app), args)
    assert got == want
    assert got[0] or got[1][0] != "return"  # it did something


def test_only_the_command_that_runs_is_built() -> None:
    group = lazy_group(app)
    assert isinstance(group, LazyGroup) and len(COMMANDS) >= 10
    _run(group, ["--help"])
    assert group.commands._built == {}  # the listing built nothing
    _run(group, ["models", "--format", "json"])
    assert list(group.commands._built) == ["models"]
    assert list(group.commands) == COMMANDS  # registration order, as typer lists them


def test_sub_groups_are_refused() -> None:
    other = typer.Typer()
    other.command()(lambda: None)
    other.add_typer(typer.Typer(), name="sub")
    with pytest.raises(ValueError, match="sub-groups"):
        lazy_group(other)
