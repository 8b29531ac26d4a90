"""Keeping a library's optional dependency from loading while it is imported.

nats-py imports aiohttp at import time for its websocket transport (`ws://` URLs), ~150 ms
that every CLI call paid though ow connects over `nats://`. `without("aiohttp")` hides it
while nats imports (nats then keeps `aiohttp = None`); `attach` hands it over later, when a
websocket URL is actually used. Another importer of aiohttp is unaffected: nothing is left
in `sys.modules` once the block ends.

Imports: the stdlib only.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

__all__ = ["attach", "without"]


@contextlib.contextmanager
def without(name: str) -> Iterator[None]:
    """Inside the block `import name` raises ImportError (unless it is loaded already)."""
    if name in sys.modules:
        yield
        return
    sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not found"
    try:
        yield
    finally:
        if sys.modules.get(name, 0) is None:
            del sys.modules[name]


def attach(module: ModuleType, name: str) -> None:
    """Import `name` now and set it on `module`, which was imported `without` it."""
    if getattr(module, name, None) is None:
        setattr(module, name, importlib.import_module(name))
