"""`ow audit`: check the history and the projection; exit 1 if anything is wrong.

Imports: typer, `ow.cli` helpers, `ow.projections` (the read service, or this machine's
projection file when none runs).
"""

from __future__ import annotations

from typing import Any

import typer

from ow.cli import _app, render
from ow.cli._app import run

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command()
    def audit(json: bool = typer.Option(False, "--json")) -> None:
        """Report every violation of the log's rules, with the event that shows it."""
        from ow.projections import default_path

        async def go() -> Any:
            org = _app.settings.config.org
            # with no service: this machine's projection file (`--db`), as before it
            async with _app.reader(private=_app.settings.db or default_path(org)) as reader:
                return await reader.result("audit")

        report = run(go)
        rows = report["violations"]
        clean = not rows
        if json:
            render.json_out({"org": report["org"], "clean": clean,
                             "positions": report["positions"], "violations": rows})
        elif clean:
            render.console().print(f"[green]clean[/]: {report['positions']}")
        else:
            render.table(rows, ("rule", "aggregate_id", "seq", "event_type", "detail"))
            if any(v["rule"] == "projection-drift" for v in rows):
                render.console().print(
                    "projection-drift: the projection file disagrees with a fresh replay of "
                    "the log (written by an older ow, or changed by hand); "
                    "`ow projections rebuild` rebuilds it from the log")
        if not clean:
            raise typer.Exit(1)
