"""The typer application class of normbench: its commands' --help prints a flag without a type.

typer's rich help (0.29) writes every option's type in the column after its name, a flag's
too, so `--quick <bool>` (and `--help <bool>`) read as if they took a value, which they refuse.
The type a flag's row shows is its metavar when one is set, so every flag of every command
(the shared groups, a command's own, typer's --help and completion options) is given an empty
one where its params are collected; a value-taking option keeps its type (`--dim
<list[str]>`). typer before 0.29 left bool types out itself, and an empty metavar changes
nothing there.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


def untyped_flags(params: list[Any]) -> list[Any]:
    """The params, each flag given an empty metavar (what the help prints as its type)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return untyped_flags(super().get_params(ctx))


class Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return untyped_flags(super().get_params(ctx))


class App(typer.Typer):
    """typer.Typer whose group and commands are the classes above, unless one is named."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", Command)
        return super().command(*args, **kwargs)
