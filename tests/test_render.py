"""`ow.cli.render.table` prints a plain table itself exactly as rich lays it out (rich's
import and layout were 40 ms of `ow ls`), and leaves every other table to rich."""

from __future__ import annotations

import contextlib
import io
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ow.cli import render

_ASCII = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="["),
                 max_size=12)
_VALUE = st.one_of(st.none(), _ASCII, st.integers(-10**6, 10**9),
                   st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from(["completed", "failed", "pending", "in_progress", "odd"]),
                   st.just(datetime(2026, 3, 1, 10, 5, 7, tzinfo=UTC)))
_COLS = st.lists(st.sampled_from(["job_id", "status", "type", "runs", "created_at", "x"]),
                 min_size=1, max_size=5, unique=True)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch):
    for var in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "TERM"):
        monkeypatch.delenv(var, raising=False)
    render.console.cache_clear()  # rich reads COLUMNS when its console is made
    yield
    render.console.cache_clear()


def _printed(fn, *args, out=None) -> str:
    out = out or io.StringIO()
    with contextlib.redirect_stdout(out):
        fn(*args)
    return out.getvalue()


def _rows(cols, values):
    return [dict(zip(cols, vs, strict=False)) for vs in values]


@settings(max_examples=150, deadline=None)
@given(cols=_COLS, values=st.lists(st.lists(_VALUE, min_size=5, max_size=5), max_size=6),
       width=st.integers(20, 120))
def test_a_plain_table_is_what_rich_prints(cols, values, width):
    rows = _rows(cols, values)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLUMNS", str(width))
        render.console.cache_clear()
        plain = render._plain(rows, cols)
        rich = _printed(render._rich_table, rows, cols)
    if plain is not None:
        assert plain == rich


def test_a_table_too_wide_non_ascii_or_like_markup_goes_to_rich(monkeypatch):
    monkeypatch.setenv("COLUMNS", "30")
    assert render._plain([{"a": "x" * 40}], ["a"]) is None
    assert render._plain([{"a": "naïve"}], ["a"]) is None
    assert render._plain([{"a": "[bold]x"}], ["a"]) is None
    assert render._plain([{"a": "two\nlines"}], ["a"]) is None
    assert render._plain([{"a": "ok"}], ["a"]) == "a \nok\n"
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert render._plain([{"a": "ok"}], ["a"]) is None


def test_on_a_terminal_the_header_is_bold_and_statuses_colored(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    rows = [{"job_id": "j1", "status": "failed"}, {"job_id": "j22", "status": "odd"}]
    text = _printed(render.table, rows, ["job_id", "status"], out=_Tty())
    assert text.startswith("\x1b[1mjob_id  status\x1b[0m\n")
    assert "\x1b[31mfailed\x1b[0m" in text
    assert re.sub(r"\x1b\[[0-9]+m", "", text) == _printed(render.table, rows,
                                                           ["job_id", "status"])
