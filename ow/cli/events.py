"""`ow tail` (one line per event, live) and `ow metrics` (latest values and a sparkline).

Imports: typer, `ow.cli` helpers (the read service through them), `ow.core`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from ow.cli import _app, render
from ow.cli._app import run

if TYPE_CHECKING:  # nats, DuckDB and the SDK load when used, not at `ow <command>`
    from ow.core.bus import Bus
    from ow.projections.client import Reader

__all__ = ["register"]


def _since(value: str | None) -> tuple[int | None, datetime | None]:
    """`--since 42` (a sequence) or `--since 2025-01-01T10:00` (a time, UTC if naive)."""
    from datetime import UTC

    from ow.core.errors import ConfigError

    if value is None:
        return None, None
    if value.isdigit():
        return int(value), None
    try:
        t = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"--since {value!r}: give a sequence number or an ISO time") from exc
    return None, t if t.tzinfo else t.replace(tzinfo=UTC)


def _matches(event: Any, subject: str, kinds: list[str]) -> bool:
    name = type(event).__name__.lower()
    agg = subject.split(".")[3] if subject.count(".") >= 4 else ""
    return not kinds or any(name.startswith(k.lower()) or agg == k.lower() for k in kinds)


_TYPE_OPTION = typer.Option([], "--type", help="event type or aggregate (job, worker, …)")


def register(app: typer.Typer) -> None:
    @app.command()
    def tail(
        org: str = typer.Option(None, "--org", help="org to tail ('*': every org)"),
        type: list[str] = _TYPE_OPTION,
        since: str = typer.Option(None, help="start at a sequence or an ISO time"),
        follow: bool = typer.Option(True, "--follow/--no-follow", help="keep following"),
        json: bool = typer.Option(False, "--json", help="one JSON object per line"),
    ) -> None:
        """One line per control-plane event, colored by aggregate."""
        from ow.core import subjects

        start_seq, start_time = _since(since)
        if not follow and start_seq is None and start_time is None:
            start_seq = 1

        async def go() -> None:
            async with _app.connected() as bus:
                filt = subjects.events_filter(None if org == "*" else org or bus.org)
                stop = None if follow else await bus.last_seq(subjects.EVENTS_STREAM, filt)
                if stop == 0:
                    return
                async for d in bus.subscribe(
                    filt, start_seq=start_seq, start_time=start_time, stop_at=stop
                ):
                    if _matches(d.event, d.subject, type):
                        _print(d, json)

        run(go)

    @app.command()
    def metrics(
        run_id: str,
        follow: bool = typer.Option(False, "--follow", "-f", help="follow live"),
        key: str = typer.Option("loss", help="metric drawn as a sparkline"),
        json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Latest value of each metric of a run and a sparkline of `loss`; with -f, again
        after each new record (the records live from the stream, the summary from the
        read service at least as far as the record)."""
        async def go() -> None:
            async with _app.connected(provision=False) as bus, _app.reader(bus) as reader:
                params = {"run_id": run_id, "key": key}
                answer = await reader.ask("metrics_summary", params)
                _show_metrics(answer.result, key, json)
                if follow:
                    await _follow_metrics(bus, reader, params, answer.positions, json)

        run(go)


def _print(d: Any, json: bool) -> None:
    if json:
        import msgspec

        render.json_out({"seq": d.seq, "subject": d.subject, **msgspec.to_builtins(d.event)})
    else:
        render.event_line(d.seq, d.subject, d.event)


def _show_metrics(summary: dict[str, Any], key: str, json: bool) -> None:
    if json:
        return render.json_out(summary)
    rows = [{**r, "value": r["raw"] if r["value"] is None else r["value"]}
            for r in summary["latest"]]
    render.table(rows, ("key", "value", "step", "n"), title=summary["run_id"])
    if summary[key]:
        render.console().print(f"{key} {render.sparkline(summary[key])} {summary[key][-1]:.4g}")


async def _follow_metrics(
    bus: Bus, reader: Reader, params: dict[str, Any], positions: dict[str, int], json: bool
) -> None:
    """Re-render after new metrics messages of the run, from an answer that includes them.
    Messages that arrive while an answer is on its way make one more render, not one each."""
    import anyio

    from ow.core import subjects

    stream = subjects.METRICS_STREAM
    newest = [positions.get(stream, 0)]
    arrived = anyio.Event()

    async def watch() -> None:
        nonlocal arrived
        async for seq, _, _ in bus.subscribe(
            subjects.metric_subject(bus.org, params["run_id"]), stream=stream,
            start_seq=newest[0] + 1, raw=True,
        ):
            newest[0] = seq
            arrived.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        while True:
            await arrived.wait()
            arrived = anyio.Event()
            answer = await reader.ask("metrics_summary", params,
                                      at_least={stream: newest[0]}, latest=False)
            _show_metrics(answer.result, params["key"], json)
