"""Rendering for the CLI: rich tables, JSON, one-line events, sparklines, red error lines.

Imports: rich (lazily), msgspec and `ow.core`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

import msgspec

__all__ = [
    "AGGREGATE_COLORS", "console", "error", "event_line", "json_out", "sparkline", "table",
]

AGGREGATE_COLORS = {
    "job": "cyan", "worker": "magenta", "file": "green", "scheduler": "yellow",
    "token": "blue", "secret": "blue", "org": "blue", "mx": "white", "hb": "bright_black",
}
_BARS = "▁▂▃▄▅▆▇█"
_STATUS = {"completed": "green", "failed": "red", "canceled": "yellow", "in_progress": "cyan",
           "pending": "white", "active": "green", "terminated": "bright_black",
           "draining": "yellow", "starting": "cyan"}


@cache
def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    """One red line on stderr."""
    first = str(message).strip().splitlines() or ["error"]
    text = " ".join(line.strip() for line in first)
    from rich.text import Text

    console(stderr=True).print(Text(f"error: {text}", style="bold red"))


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    return str(obj)


def json_out(obj: Any) -> None:
    """Print a value as JSON (one document)."""
    sys.stdout.write(msgspec.json.encode(obj, enc_hook=_default).decode() + "\n")
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Iterable[str], title: str = "") -> None:
    """A rich table of the given columns; status-like cells are colored. One that is
    plain text (`_plain`) is printed as rich would lay it out, without loading rich."""
    cols = list(columns)
    text = None if title else _plain(rows, cols)
    if text is None:
        _rich_table(rows, cols, title)
        return
    sys.stdout.write(text)
    sys.stdout.flush()


def _rich_table(rows: Sequence[dict[str, Any]], cols: list[str], title: str = "") -> None:
    from rich.table import Table

    t = Table(title=title or None, header_style="bold", box=None, pad_edge=False)
    for c in cols:
        t.add_column(c)
    for row in rows:
        t.add_row(*(
            f"[{_STATUS[row[c]]}]{row[c]}[/]" if c == "status" and row.get(c) in _STATUS
            else _cell(row.get(c))
            for c in cols
        ))
    console().print(t)


def _plain(rows: Sequence[dict[str, Any]], cols: list[str]) -> str | None:
    """The table as rich prints it with `box=None, pad_edge=False` (left-justified
    columns two spaces apart, each cell padded to its column's width; on a terminal the
    header bold and statuses colored), or None where rich would do more: a cell that is
    not printable ASCII or could be markup, a table wider than the terminal, a variable
    that changes rich's styling. tests/test_render.py holds it to rich's output."""
    from ow.core.config import terminal_is_plain, terminal_width

    if not terminal_is_plain():
        return None
    cells = [cols, *([_cell(row.get(c)) for c in cols] for row in rows)]
    if not all(v.isascii() and v.isprintable() and "[" not in v for line in cells for v in line):
        return None
    widths = [max(len(line[i]) for line in cells) for i in range(len(cols))]
    if sum(widths) + 2 * (len(cols) - 1) > terminal_width():
        return None
    styled = sys.stdout.isatty()
    out = []
    for n, line in enumerate(cells):
        padded = [v.ljust(w) for v, w in zip(line, widths, strict=True)]
        if styled and n == 0:
            padded = [f"\x1b[1m{'  '.join(padded)}\x1b[0m"]
        elif styled:
            padded = [_ansi(v, rows[n - 1].get(c)) if c == "status" else v
                      for v, c in zip(padded, cols, strict=True)]
        out.append("  ".join(padded))
    return "\n".join(out) + "\n"


#: the SGR codes of the colors `_STATUS` names (what rich emits for them)
_SGR = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "white": "37",
        "bright_black": "90"}


def _ansi(padded: str, status: Any) -> str:
    color = _STATUS.get(status) if isinstance(status, str) else None
    if color is None:
        return padded
    text = padded.rstrip(" ")
    return f"\x1b[{_SGR[color]}m{text}\x1b[0m{padded[len(text):]}"


def sparkline(values: Sequence[float], width: int = 60) -> str:
    """A unicode sparkline of the last `width` values."""
    vals = [v for v in values if v is not None][-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    return "".join(_BARS[min(7, int((v - lo) / span * 7.999))] for v in vals)


def event_line(seq: int, subject: str, event: Any) -> None:
    """One line per event: seq, time, aggregate/id, type, the interesting fields."""
    from rich.text import Text

    parts = subject.split(".")
    agg = parts[3] if parts[:2] == ["ow", "ev"] and len(parts) > 3 else parts[1]
    color = AGGREGATE_COLORS.get(agg, "white")
    fields = {k: v for k, v in msgspec.structs.asdict(event).items()
              if k not in ("event_id", "v", "org", "ts", "actor") and v not in ("", {}, [], None)}
    ts = event.ts.strftime("%H:%M:%S.%f")[:-3] if event.ts else "-"
    detail = " ".join(f"{k}={_short(v)}" for k, v in fields.items())
    line = Text(f"{seq:>8} {ts} ", style="bright_black")
    line.append(f"{type(event).__name__:<20}", style=f"bold {color}")
    line.append(f" {detail}", style=color)
    if event.actor:
        line.append(f"  ({event.actor})", style="bright_black")
    console().print(line)


def _short(value: Any) -> str:
    if not isinstance(value, str):
        value = msgspec.json.encode(value, enc_hook=_default).decode()
    text = " ".join(value.split())  # one line per event, whatever the value holds
    return text if len(text) <= 60 else text[:57] + "…"
