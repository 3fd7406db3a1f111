"""``--help`` in click's conventions: ``TEXT``, ``PATH``, ``INTEGER RANGE``, ``[a|b|c]``.

typer 0.29 shows Python types in help (``<list[str]>``, ``<int range>``,
``<str>``), where click, and typer before it, show the metavars every click
program shows. :class:`ClickHelpCommand` gives every option of a command that
takes a value click's metavar for its type, and every argument its name in
capitals, before the help is written; a typer that still shows click's
metavars (no ``type_descriptor``) is left as it is. Nothing here is imported
until a command or its help runs, and it imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, get_args, get_origin

from typer.core import TyperArgument, TyperCommand, TyperOption

if TYPE_CHECKING:  # typer carries its own click: importing click itself costs start-up time
    import click

__all__ = ["ClickHelpCommand", "click_metavar"]

_NAMES = {str: "TEXT", int: "INTEGER", float: "FLOAT", bool: "BOOLEAN"}
"""click's name of each basic type."""


def _type_name(annotation) -> str:
    """click's name of one value's type (``TEXT``, ``INTEGER``, ``PATH``...)."""
    if annotation in _NAMES:
        return _NAMES[annotation]
    if isinstance(annotation, type) and issubclass(annotation, str):  # a str Enum: choices
        return "TEXT"
    return "PATH" if "path" in getattr(annotation, "__name__", "").lower() else "TEXT"


def click_metavar(descriptor) -> str:
    """click's metavar for a typer parameter's type descriptor.

    Choices ``[a|b|c]``, ``INTEGER RANGE`` or ``FLOAT RANGE``, ``PATH`` (``FILE``,
    ``DIRECTORY``), ``TEXT``, ``INTEGER``, ``FLOAT``; a repeatable option shows its
    element's, a tuple its elements' (``FLOAT FLOAT``).
    """
    if descriptor.is_choice:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in descriptor.choices or ()) + "]"
    if descriptor.is_ranged:
        return f"{_type_name(descriptor.annotation)} RANGE"
    if descriptor.is_path:
        return {"file": "FILE", "dir": "DIRECTORY"}.get(descriptor.path_type, "PATH")
    annotation = descriptor.annotation
    if descriptor.is_tuple:
        return " ".join(_type_name(arg) for arg in get_args(annotation))
    if descriptor.is_list or get_origin(annotation) is list:
        (annotation,) = get_args(annotation) or (str,)
    return _type_name(annotation)


def _no_type(ctx: click.Context) -> None:
    """An argument's help line shows its name only, as click's would."""
    return None


def _click_style(param: click.Parameter) -> None:
    """Give ``param`` click's metavar, once (typer builds a command's parameters once)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None:  # a typer that shows click's metavars already
        return
    if isinstance(param, TyperOption) and not param.is_flag and not param.count:
        if param.metavar is None:
            param.metavar = click_metavar(descriptor)
    elif isinstance(param, TyperArgument):
        if param.metavar is None:
            param.metavar = param.name.upper()
        param.display_type_rich = _no_type


class ClickHelpCommand(TyperCommand):
    """A typer command whose help and usage show click's metavars (see the module docstring)."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        for param in params:
            _click_style(param)
        return params
