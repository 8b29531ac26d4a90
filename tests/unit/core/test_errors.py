"""The error tree: every `OWError` subclass lives in `ow/core/errors.py` and is in its drawing;
the old homes still export theirs; nothing raises a bare `OWError`."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import ow
from ow.core import errors

ROOT = Path(ow.__file__).parent


def _import_every_module() -> None:
    for info in pkgutil.walk_packages([str(ROOT)], "ow."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)


def _subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


def _drawn() -> dict[str, int]:
    """Class name -> depth in the docstring's tree."""
    tree = errors.__doc__.split("\n\n")[1]
    out = {}
    for line in tree.splitlines()[1:]:
        m = re.match(r"^ {4}([│ ]   )*[├└]── (\w+)", line)
        assert m, f"not a tree line: {line!r}"
        out[m.group(2)] = line.index(m.group(2))
    return out


def test_every_owerror_lives_in_errors_and_is_drawn():
    _import_every_module()
    found = {c for c in _subclasses(errors.OWError) if c.__module__.startswith("ow.")}
    assert {c.__name__ for c in found if c.__module__ != "ow.core.errors"} == set()
    assert set(_drawn()) == {c.__name__ for c in found}


def test_the_drawing_shows_each_class_under_its_base():
    drawn = list(_drawn().items())  # in the drawing's order
    for i, (name, depth) in enumerate(drawn):
        parent = next((n for n, d in reversed(drawn[:i]) if d < depth), "OWError")
        cls = getattr(errors, name)
        base = next(b for b in cls.__mro__[1:] if issubclass(b, errors.OWError))
        assert base.__name__ == parent, name


@pytest.mark.parametrize(("module", "name"), [
    ("ow.core.tenancy", "TokenError"),
    ("ow.core.bus", "WireError"),
    ("ow.scheduler.providers", "ProviderError"),
    ("ow.scheduler.providers", "NoCapacityError"),
    ("ow.scheduler.providers", "QuotaError"),
    ("ow.scheduler.providers._base", "PodNotRecordedError"),
    ("ow.projections", "ProjectionError"),
    ("ow.projections._db", "ProjectionLockedError"),
])
def test_old_import_paths_still_work(module, name):
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


def test_wire_errors_are_ow_errors():
    assert issubclass(errors.WireError, errors.BusError)
    assert issubclass(errors.BusUnavailableError, errors.BusError)


def test_nothing_raises_a_bare_owerror():
    bare = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                    and getattr(node.exc.func, "id", "") == "OWError"):
                bare.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    assert bare == []
