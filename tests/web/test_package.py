"""The package's shape: its public names, its assets inside the package, and that
`import ow` never loads it (starlette, uvicorn stay unloaded)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ow.web
from ow.web import present

STATIC = Path(ow.web.__file__).parent / "static"


def test_public_names_and_assets_ship_inside_the_package():
    assert set(ow.web.__all__) == {"create_app", "serve_app"}
    for name in ("page.html", "login.html", "app.js", "style.css", "vendor/uPlot.iife.min.js",
                 "vendor/uPlot.min.css", "vendor/LICENSE"):
        assert (STATIC / name).stat().st_size > 0, name
    html = (STATIC / "page.html").read_text()
    assert "http://" not in html
    assert "https://" not in html


def test_import_ow_loads_no_web_library():
    code = ("import sys, ow; bad = [m for m in ('starlette', 'uvicorn', 'ow.web') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(ow.web.__file__).parents[2])
    assert out.stdout.strip() == "[]"


def test_points_put_each_log_prob_tag_in_a_series_of_its_own():
    assert present.point({"step": 3, "loss": 0.5, "lr": 1e-4, "note": "x"}) == {
        "step": 3, "values": {"loss": 0.5, "lr": 1e-4}}
    assert present.point({"step": 3, "type": "logp", "dataset": "eval", "tag": "a",
                          "logp": -1.5, "tokens": 12}) == {
        "step": 3, "values": {"logp/eval/a": -1.5, "tokens/eval/a": 12.0}}
    assert present.point({"loss": 0.5}) is None  # no step: latest values only
    assert present.point({"step": True, "loss": 0.5}) is None
    assert present.point({"step": 1, "ok": True, "nan": float("nan")}) is None
    assert present.shown_series(["lr", "loss"]) == ["loss"]
    assert present.shown_series(["lr", "acc"]) == ["lr"]


def test_only_submit_and_admin_scopes_get_actions():
    assert present.actions("read", "in_progress") == []
    assert present.actions("worker", "pending") == []
    assert present.actions("submit", "in_progress") == ["cancel"]
    assert present.actions("admin", "failed") == ["restart"]
