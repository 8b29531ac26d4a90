"""`AsyncResource`: the base of the SDK's resources, holding the client they belong to.

Imports: nothing at run time (the client's class, for annotations only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ow.sdk._client import AsyncOpenWeights

__all__ = ["AsyncResource"]


class AsyncResource:
    """A part of the client (`client.jobs`, `client.files`, …): it reaches the bus, the blob
    store and the other resources through `self.client`."""

    def __init__(self, client: AsyncOpenWeights):
        self.client = client
