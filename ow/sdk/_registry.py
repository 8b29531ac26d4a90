"""`@register("name")`: the table of job types, so that `ow.<name>.create(...)` works.

Built-in job types (fine_tuning, inference, api, …) live in `payloads.jobs` and are imported
the first time an unknown name is looked up, so `import ow` stays light.

Imports: stdlib only.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

__all__ = ["job_type", "register", "registered"]

log = logging.getLogger(__name__)

_TYPES: dict[str, type] = {}
_BUILTINS = "payloads.jobs"
_builtins_loaded = False


def register(name: str):
    """Class decorator: make a `Jobs` subclass available as `ow.<name>`."""
    if not name.isidentifier():
        raise ValueError(
            f"job type name {name!r} must be a Python identifier (it becomes ow.{name})"
        )

    def wrap(cls: type) -> type:
        cls.job_type = name  # type: ignore[attr-defined]
        _TYPES[name] = cls
        return cls

    return wrap


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    try:
        importlib.import_module(_BUILTINS)
    except ImportError as exc:
        log.debug("built-in job types unavailable: %s", exc)


def job_type(name: str) -> Any:
    """The registered class for a job type name, or None."""
    if name not in _TYPES:
        _load_builtins()
    return _TYPES.get(name)


def registered() -> dict[str, type]:
    _load_builtins()
    return dict(_TYPES)
