"""The command line's click group, built so that only the command that runs gets its options.

typer turns every registered command's signature into click parameters before it parses the
command line (``typer.main.get_group_from_info``): 11 commands, ~60 ms of a 0.14 s ``--help``
and of every ``solve`` (issue 12). This group holds typer's own per-command builder
(``typer.main.get_command_from_info``) and calls it for a command when click asks for it by
name; the command list in ``infersave --help`` needs only each command's name and short help,
taken from the same help text typer would give it. The output is the same bytes
(``tests/test_lazy_commands.py`` compares every ``--help`` and a run with typer's own group).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator, MutableMapping
from typing import Any

import typer
import typer.core
import typer.main
from typer.models import CommandInfo, TyperInfo


class _Commands(MutableMapping[str, Any]):
    """Name -> click command, each built from its ``CommandInfo`` the first time it is read."""

    def __init__(self, app: typer.Typer) -> None:
        self._app = app
        self._infos: dict[str, CommandInfo] = {}
        for info in app.registered_commands:
            name = info.name or typer.main.get_command_name(info.callback.__name__)  # type: ignore[union-attr]
            self._infos[name] = info
        self._built: dict[str, Any] = {}

    def info(self, name: str) -> CommandInfo | None:
        """The registration of a command not built yet (None once built or if unknown)."""
        return None if name in self._built else self._infos.get(name)

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            info = self._infos[name]  # KeyError: click's "No such command"
            self._built[name] = typer.main.get_command_from_info(
                info,
                pretty_exceptions_short=self._app.pretty_exceptions_short,
                rich_markup_mode=self._app.rich_markup_mode,
            )
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._infos.pop(name, None)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._infos.pop(name, None)
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from self._infos
        yield from (n for n in self._built if n not in self._infos)

    def __len__(self) -> int:
        return len(set(self._infos) | set(self._built))


class LazyGroup(typer.core.TyperGroup):
    """A :class:`typer.core.TyperGroup` whose ``commands`` is a :class:`_Commands`."""

    commands: _Commands  # type: ignore[assignment]

    def list_commands(self, ctx: Any) -> list[str]:
        """The command names in the order they were registered, none built."""
        return list(self.commands)

    listing = False  # True while the group's help lists its commands

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The named command, built now (None if there is none); while listing, a command
        not built yet is its :func:`_listing`."""
        info = self.commands.info(cmd_name) if self.listing else None
        return _listing(cmd_name, info) if info is not None else self.commands.get(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The group's command list, from each command's help text without building it."""
        self.listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self.listing = False


def _listing(name: str, info: CommandInfo) -> Any:
    """A parameterless click command with the help texts typer gives the command: all a
    group's command list reads (its short help, hidden and deprecated flags)."""
    text = info.help
    text = inspect.getdoc(info.callback) if text is None else inspect.cleandoc(text)
    return typer.core.TyperCommand(
        name=name,
        help=text,
        short_help=info.short_help,
        hidden=info.hidden,
        deprecated=info.deprecated,
        rich_markup_mode=None,
    )


def lazy_group(app: typer.Typer) -> LazyGroup:
    """The click group of ``app`` (a :class:`typer.Typer` without sub-groups or callback
    options) that builds a command when it runs; call it as typer's ``app()`` would be.

    Raises ``ValueError`` if ``app`` has sub-groups (typer merges those at build time)."""
    if app.registered_groups:
        raise ValueError("lazy_group: sub-groups are not supported")
    shell = copy.copy(app)
    shell.registered_commands = []
    shell.info = copy.copy(app.info)
    shell.info.cls = LazyGroup
    group = typer.main.get_group_from_info(
        TyperInfo(shell),
        pretty_exceptions_short=app.pretty_exceptions_short,
        suggest_commands=app.suggest_commands,
        rich_markup_mode=app.rich_markup_mode,
    )
    assert isinstance(group, LazyGroup)
    group.commands = _Commands(app)
    return group
