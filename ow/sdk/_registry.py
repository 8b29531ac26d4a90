"""`@register("name")`: the table of job types, so that `ow.<name>.create(...)` works.

A `Registry` owns its table and knows whether it has loaded the built-in job types (fine_tuning,
inference, api, …, in `payloads.jobs`). It loads them the first time an unknown name is looked
up, so `import ow` stays light. They are found by a plain `import payloads.jobs` in
`Registry.load_builtins`, the one place the SDK names the payloads: import-linter sees it (a
contract in pyproject says no other module of `ow` imports `payloads`), and it needs no install
step, where an entry-point group would silently lose every built-in under a stale editable
install. `@register` writes to `REGISTRY`, the one the clients read.

Imports: stdlib only (and `payloads.jobs`, lazily).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["REGISTRY", "Registry", "job_type", "register", "registered"]

log = logging.getLogger(__name__)


class Registry:
    """Job type name -> `Jobs` subclass. With `builtins` (only `REGISTRY`: the built-ins
    register themselves through `@register`), `payloads.jobs` is loaded on first need."""

    def __init__(self, *, builtins: bool = False):
        self.types: dict[str, type] = {}
        self.builtins_loaded = not builtins

    def register(self, name: str):
        """Class decorator: make a `Jobs` subclass available as `ow.<name>`."""
        if not name.isidentifier():
            raise ValueError(
                f"job type name {name!r} must be a Python identifier (it becomes ow.{name})"
            )

        def wrap(cls: type) -> type:
            cls.job_type = name  # type: ignore[attr-defined]
            self.types[name] = cls
            return cls

        return wrap

    def load_builtins(self) -> None:
        if self.builtins_loaded:
            return
        self.builtins_loaded = True
        try:
            import payloads.jobs  # noqa: F401 - registers the built-in job types into REGISTRY
        except ImportError as exc:
            log.debug("built-in job types unavailable: %s", exc)

    def get(self, name: str) -> Any:
        """The registered class for a job type name, or None."""
        if name not in self.types:
            self.load_builtins()
        return self.types.get(name)

    def all(self) -> dict[str, type]:
        self.load_builtins()
        return dict(self.types)


REGISTRY = Registry(builtins=True)
register = REGISTRY.register
job_type = REGISTRY.get
registered = REGISTRY.all
