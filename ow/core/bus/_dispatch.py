"""Dispatch: the org's shared pull consumer over job events, as typed `Offer`s.

Each job event is handed to one agent at a time; `Offer.take()` acknowledges it,
`Offer.give_back(delay_s)` hands it back to be offered again after a delay
(`agent/policy.offer` decides which).

Imports: stdlib, anyio, nats and `ow.core`.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import anyio
import nats.errors
from nats.aio.msg import Msg as NatsMsg
from nats.js import JetStreamContext, api

from ow.core import codec, defaults, subjects
from ow.core import events as ev
from ow.core.bus._base import BusBase
from ow.core.bus._errors import mapped
from ow.core.errors import OWError

__all__ = ["Dispatch", "DispatchMixin", "Offer"]

log = logging.getLogger(__name__)


class DispatchMixin(BusBase):
    """`dispatch` (and the subscription under it)."""

    async def dispatch_subscription(self, org: str) -> JetStreamContext.PullSubscription:
        """The org's shared pull consumer over job events: each is handed to one agent.

        Created, or updated to this config (a home made by an earlier ow keeps its consumer
        and its offers; its filters must still match every dispatching subject)."""
        durable = subjects.dispatch_consumer(org)
        cfg = api.ConsumerConfig(
            durable_name=durable,
            filter_subjects=subjects.dispatch_filters(org),
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=defaults.DISPATCH_ACK_WAIT_S,
            max_ack_pending=10_000,
            deliver_policy=api.DeliverPolicy.ALL,
        )
        with mapped("dispatch consumer", durable):
            await self.js.add_consumer(subjects.EVENTS_STREAM, cfg)
            return await self.js.pull_subscribe_bind(durable=durable, stream=subjects.EVENTS_STREAM)

    async def dispatch(self, org: str) -> Dispatch:
        """The org's dispatch consumer as typed `Offer`s (see `Dispatch`)."""
        return Dispatch(self, org, await self.dispatch_subscription(org))


@dataclass(frozen=True, slots=True)
class Offer:
    """One dispatched job event: `take()` acknowledges it (the job needs this event no more),
    `give_back(delay_s)` hands it back to be offered again (to any agent) after a delay."""

    events: list[ev.Event]  # [] when undecodable
    seq: int
    delivered: int  # 1 on the first delivery
    _msg: NatsMsg

    async def take(self) -> None:
        with contextlib.suppress(nats.errors.Error, TimeoutError):  # redelivered: dropped then
            await self._msg.ack()

    async def give_back(self, delay_s: float) -> None:
        with contextlib.suppress(nats.errors.Error, TimeoutError):  # redelivered after ack_wait
            await self._msg.nak(delay=delay_s)


class Dispatch:
    """A pull loop over the org's dispatch consumer that survives a server restart: a fetch
    that times out is no offer, and any other failure waits for the connection and pulls
    through a new subscription of the (durable, unchanged) consumer."""

    def __init__(self, bus: DispatchMixin, org: str, sub: JetStreamContext.PullSubscription):
        self._bus, self._org, self._sub = bus, org, sub

    async def next(self, timeout_s: float = 5.0) -> list[Offer]:
        """The next offers (at most one), or [] after `timeout_s` or a failure."""
        try:
            msgs = await self._sub.fetch(1, timeout=timeout_s)
        except (nats.errors.TimeoutError, TimeoutError):
            return []
        except nats.errors.Error as exc:
            log.warning("dispatch fetch failed (%s); pulling again", exc)
            await self._renew()
            return []
        return [
            Offer(codec.decode_or_skip(m.data, m.metadata.sequence.stream, m.subject),
                  m.metadata.sequence.stream, m.metadata.num_delivered, m)
            for m in msgs
        ]

    async def _renew(self) -> None:
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()
        while True:
            await self._bus.wait_connected()
            try:
                self._sub = await self._bus.dispatch_subscription(self._org)
                return
            except (OWError, nats.errors.Error, TimeoutError) as exc:
                log.warning("dispatch consumer not available yet (%s); retrying", exc)
                await anyio.sleep(0.5)
