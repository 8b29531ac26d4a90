"""typer without pydantic for plain parameters: about 70 ms off every command.

typer (0.2x) converts every parameter through a pydantic `TypeAdapter`, built when the
parameter is first processed; importing pydantic and building the adapters took 70 ms of
`ow ls`, whose whole budget is 250 ms (issue 14). ow's parameters are plain `str`, `int`,
`float`, `bool` and lists of them: `plain(command)` gives those a direct conversion and leaves
anything else (paths, choices, ranges, files, custom parsers) to typer.

This leans on typer's private API (`typer._coercion.RuntimeParam`, a parameter's
`_runtime_param` and `type_descriptor`): with those missing it changes nothing, and
tests/test_import_cost.py fails when pydantic loads on the `ow ls` path again.

Imports: typer (the caller has loaded it).
"""

from __future__ import annotations

import contextlib
from typing import Any, get_args, get_origin

__all__ = ["plain"]

_PLAIN = {str: "text", int: "integer", float: "number", bool: "boolean"}
_BOOLS = {"1": True, "true": True, "yes": True, "y": True, "on": True, "t": True,
          "0": False, "false": False, "no": False, "n": False, "off": False, "f": False}


def plain(command: Any) -> Any:
    """`command` (a click command or group from `typer.main.get_command`), its plain
    parameters (and those of its subcommands) converted without pydantic."""
    try:
        from typer._coercion import RuntimeParam
    except ImportError:
        return command
    make = _runtime_class(RuntimeParam)
    _walk(command, make)
    return command


def _walk(command: Any, make: Any) -> None:
    for param in getattr(command, "params", ()):
        _patch(param, make)
    if callable(getattr(command, "get_help_option", None)):  # made on first use, per ctx
        made = command.get_help_option

        def get_help_option(ctx: Any) -> Any:
            option = made(ctx)
            _patch(option, make)
            return option

        command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        _walk(sub, make)


def _patch(param: Any, make: Any) -> None:
    if _plain_kind(param) is not None and getattr(param, "_runtime_param", 0) is None:
        desc = param.type_descriptor
        param._runtime_param = make(parameter_info=desc.parameter_info,
                                    annotation=desc.annotation)


def _plain_kind(param: Any) -> type | None:
    """The element type of a parameter typer would hand to pydantic for nothing."""
    desc = getattr(param, "type_descriptor", None)
    if desc is None:
        return None
    with contextlib.suppress(AttributeError):
        if (desc.file_annotation is not None or desc.is_path or desc.is_choice
                or desc.is_ranged or desc.parameter_info.parser is not None):
            return None
        annotation = desc.annotation
        if get_origin(annotation) is list:
            (annotation,) = get_args(annotation) or (None,)
        return annotation if annotation in _PLAIN else None
    return None


def _runtime_class(base: type) -> Any:
    class _Plain(base):  # type: ignore[misc,valid-type]
        """typer's `RuntimeParam` for a `str`/`int`/`float`/`bool` (or a list of them)."""

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, list | tuple):
                return [self._one(v, param, ctx) for v in value]
            return self._one(value, param, ctx)

        def _one(self, value: Any, param: Any, ctx: Any) -> Any:
            kind = _plain_kind(param)
            if kind is None or type(value) is kind:
                return value
            try:
                if kind is bool:
                    return _BOOLS[str(value).strip().lower()]
                return kind(value)
            except (TypeError, ValueError, KeyError):
                import typer

                raise typer.BadParameter(f"{value!r} is not a valid {_PLAIN[kind]}.",
                                   ctx=ctx, param=param) from None

    return _Plain
