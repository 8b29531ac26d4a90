"""`ow replay`, `ow projections rebuild` and `ow projections export`.

Imports: typer, rich (progress), `ow.cli` helpers, `ow.projections`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import typer

from ow.cli import _app, render
from ow.cli._app import run

__all__ = ["progress_bar", "register"]


@contextlib.contextmanager
def progress_bar() -> Iterator[Any]:
    """A rich progress bar per stream; yields the `progress(stream, seq, end)` callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    tasks: dict[str, Any] = {}
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(),
                  console=render.console(stderr=True), transient=True) as bar:
        def progress(stream: str, seq: int, end: int) -> None:
            if stream not in tasks:
                tasks[stream] = bar.add_task(stream, total=end, completed=seq)
            bar.update(tasks[stream], completed=seq, total=end)

        yield progress


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Projections: rebuild, export.", no_args_is_help=True)
    app.add_typer(group, name="projections")

    @group.command()
    def rebuild() -> None:
        """Replay the whole log from sequence 1 into a fresh projection file."""
        from ow.projections import rebuild as rebuild_

        async def go() -> Any:
            async with _app.connected() as bus:
                with progress_bar() as progress:
                    return await rebuild_(bus, _app.settings.db, progress)

        render.console().print(f"rebuilt {run(go)}")

    @group.command()
    def export(file: str = typer.Argument(..., help="DuckDB file to write")) -> None:
        """Write a consistent copy of the org's projection into a DuckDB file.

        DuckDB, pandas or any tool may open the copy while `ow serve` goes on folding:
        the read service writes it with one statement on its own connection (ATTACH +
        COPY FROM DATABASE, one snapshot of every table) on this machine, and it is moved to
        FILE. With no service running, this process folds the log privately into the copy.
        """
        import shutil
        from pathlib import Path

        async def go() -> Any:
            async with _app.reader() as reader:
                return await reader.result("export")

        made = run(go)
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(made["path"], file)
        render.console().print(f"exported to {file} at {made['positions']}")

    @app.command()
    def replay(
        until: str = typer.Option(..., help="an OW_EVENTS sequence or an ISO time"),
        out: str = typer.Option(..., help="DuckDB file to write"),
    ) -> None:
        """Write the state of everything as of a sequence or a time into a DuckDB file."""
        from ow.cli.events import _since
        from ow.projections import replay as replay_

        seq, time = _since(until)

        async def go() -> Any:
            async with _app.connected() as bus:
                with progress_bar() as progress:
                    return await replay_(bus, seq if seq is not None else time, out, progress)

        render.console().print(f"state as of {until} written to {run(go)} (duckdb {out})")
