"""The `ow` command: a typer app with one module per noun, and `main()`.

`main()` turns an `OWError` into one red line and exit code 1 (2 for usage and config
errors); a traceback only with `--debug`. Commands parse, make one call into the packages
and render (`render.py`).

Imports: everything (typer and rich lazily, inside `app()`/`main()`).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["build_app", "command", "main"]


def build_app() -> Any:
    import typer

    from ow.cli import _app, audit, events, files, jobs, projections, serve, workers

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

    for module in (jobs, events, files, workers, projections, audit, serve):
        module.register(app)
    try:
        from ow.cli import up
    except ImportError:
        pass
    else:
        up.register(app)
    try:
        from ow.cli import tenancy
    except ImportError:
        pass
    else:
        tenancy.register(app)
    from ow.cli import compat  # openweights' signup / cluster / manage

    compat.register(app)
    return app


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

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        try:  # standalone: click prints usage errors and exits 2 by itself
            command(build_app())(args=argv, standalone_mode=True)
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
