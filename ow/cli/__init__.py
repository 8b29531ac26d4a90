"""The `ow` command: a typer app with one module per noun, and `main()`.

`main()` turns an `OWError` into one red line and exit code 1 (2 for usage and config
errors); a traceback only with `--debug`. Commands parse, make one call into the packages
and render (`render.py`).

Imports: everything (typer and rich lazily, inside `app()`/`main()`).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["MODULES", "build_app", "command", "command_name", "main"]


#: each command module and the names it registers: `ow <name>` imports only that module
#: (all of them cost ~40 ms a call); a name not listed loads them all, so it still works
MODULES = {
    "jobs": ("ls", "show", "logs", "cancel", "restart", "exec", "deploy"),
    "events": ("tail", "metrics"),
    "files": ("fetch", "files"),
    "workers": ("workers", "ssh"),
    "projections": ("replay", "projections"),
    "audit": ("audit",),
    "serve": ("serve",),
    "up": ("up", "down", "worker", "scheduler"),
    "tenancy": ("org", "token", "env"),
    "compat": ("signup", "cluster", "manage"),  # openweights' signup / cluster / manage
}
_OPTIONAL = frozenset({"up", "tenancy"})  # left out when their imports are missing
_GLOBAL_VALUES = frozenset({"--url", "--org", "--db"})  # the options of `_global` with a value


def build_app(name: str | None = None) -> Any:
    """The typer app: every command, or (with `name`) the module that registers it."""
    import typer

    from ow.cli import _app

    app = typer.Typer(
        name="ow", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
        help="Fine-tuning, inference and custom GPU jobs on an event log.",
    )

    @app.callback()
    def _global(
        url: str = typer.Option(None, "--url", envvar="OW_URL", help="NATS URL"),
        org: str = typer.Option(None, "--org", envvar="OW_ORG", help="organisation"),
        db: str = typer.Option(None, "--db", help="projection file (default: under OW_HOME)"),
        debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
    ) -> None:
        _app.settings.url, _app.settings.org, _app.settings.db = url, org, db
        _app.settings.debug = debug

    wanted = [m for m, names in MODULES.items() if name in names] or list(MODULES)
    for module_name in wanted:
        try:
            module = importlib.import_module(f"ow.cli.{module_name}")
        except ImportError:
            if module_name in _OPTIONAL:
                continue
            raise
        module.register(app)
    return app


def command_name(argv: list[str]) -> str | None:
    """The command `argv` names (after the global options), or None."""
    args = iter(argv)
    for arg in args:
        if not arg.startswith("-"):
            return arg
        if arg in _GLOBAL_VALUES:
            next(args, None)
    return None


def command(app: Any) -> Any:
    """The click command of the typer `app`, its plain parameters converted without
    pydantic (`ow.cli._typer`)."""
    import typer.main

    from ow.cli import _typer

    return _typer.plain(typer.main.get_command(app))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `ow` console script."""
    from ow.cli import _app, render
    from ow.core.errors import ConfigError, OWError

    args = argv if argv is not None else sys.argv[1:]
    debug = "--debug" in args
    try:
        try:  # standalone: click prints usage errors and exits 2 by itself
            command(build_app(command_name(args)))(args=argv, standalone_mode=True)
        except BaseExceptionGroup as group:  # an error raised inside a task group
            first = _first_leaf(group)
            if isinstance(first, OWError | KeyboardInterrupt):
                raise first from group
            raise
    except KeyboardInterrupt:
        sys.exit(130)
    except OWError as exc:
        if debug or _app.settings.debug:
            raise
        render.error(str(exc))
        sys.exit(2 if isinstance(exc, ConfigError) else 1)


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
