"""`ow.run`: the API a job uses from inside its run (the agent sets OW_RUN_ID / OW_JOB_ID).

Outside a job (no OW_RUN_ID), the first `log`/`upload`/`checkpoint` (or `start()`) makes the
script its own `script` job with one run, as openweights does (`ow.sdk._script`); the run
ends as completed when the client closes.

`log(dict)` validates at the call (a value that is not JSON-serializable is an error naming
the key), stamps a `MetricLogged` with its time, and buffers it; the buffer is published as one
`MetricBatch` message (one envelope; each record replays as its own `MetricLogged`) when
it is full, when it is older than a fraction of a second, on `flush()`, and on close.

Imports: `ow.core`, msgspec, anyio.
"""

from __future__ import annotations

import logging
import tarfile
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from ow.core import codec, defaults, subjects
from ow.core import events as ev
from ow.core.errors import ConfigError, OWError, ValidationError
from ow.core.ids import uuid7
from ow.sdk._resource import AsyncResource

if TYPE_CHECKING:
    from ow.sdk._client import AsyncOpenWeights

__all__ = ["AsyncRun"]

_enc = msgspec.json.Encoder()
log = logging.getLogger(__name__)


class AsyncRun(AsyncResource):
    """The current run (inside a job)."""

    def __init__(self, client: AsyncOpenWeights):
        super().__init__(client)
        self._buffer: list[ev.MetricLogged] = []
        self._pending: list[Any] = []
        self._last_flush = 0.0  # the first record after a quiet spell goes out at once
        self._script: Any = None  # the script run made outside a job (`ow.sdk._script`)

    @property
    def id(self) -> str:
        if self.client.config.run_id:
            return self.client.config.run_id
        if self._script is not None:
            return self._script.run_id
        raise ConfigError(
            "ow.run has no run yet outside a job (OW_RUN_ID is not set): the first "
            "ow.run.log(...) makes this script a `script` job with one run, or call "
            "ow.run.start() first; to run it on a worker instead use `ow exec \"python …\"`"
        )

    @property
    def job_id(self) -> str:
        if self.client.config.run_id or self._script is None:
            return self.client.config.job_id
        return self._script.job_id

    async def start(self) -> str:
        """The run's id; outside a job, the script job and its run are created first."""
        if not self.client.config.run_id and self._script is None:
            from ow.sdk import _script

            self._script = await _script.start(await self.client.bus())
        return self.id

    async def end(self) -> None:
        """Flush, then end a script run (completed); inside a job the agent ends the run."""
        await self.flush()
        script, self._script = self._script, None
        if script is not None:
            from ow.sdk import _script

            await _script.end(await self.client.bus(), script)

    async def log(self, data: dict[str, Any]) -> None:
        """Record one dict of metrics or facts for this run."""
        if not isinstance(data, dict):
            raise ValidationError(f"ow.run.log takes a dict, got {type(data).__name__}")
        for key, value in data.items():
            try:
                _enc.encode(value)
            except (TypeError, msgspec.EncodeError) as exc:
                raise ValidationError(
                    f"ow.run.log: value of key {key!r} is not JSON-serializable "
                    f"({type(value).__name__}); log numbers, strings, lists or dicts"
                ) from exc
        await self.start()  # outside a job: a valid record makes the script job
        self._buffer.append(
            ev.MetricLogged(
                ts=ev.now(), org=self.client.org, actor=self.id,
                run_id=self.id, job_id=self.job_id, data=data,
            )
        )
        if (
            len(self._buffer) >= defaults.RUN_LOG_BATCH
            or time.monotonic() - self._last_flush >= defaults.RUN_LOG_FLUSH_S
        ):
            await self._send()

    async def _send(self) -> None:
        """Publish the buffer as one message without waiting for its ack."""
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        self._last_flush = time.monotonic()
        bus = await self.client.bus()
        subject = subjects.metric_subject(bus.org, batch[0].run_id)
        msg_id = uuid7()
        data = codec.encode_metrics(batch, msg_id)
        future = await bus.publish_raw(subject, data, msg_id=msg_id, wait=False)
        self._pending.append((future, subject, data, msg_id))
        if len(self._pending) > 256:
            await self._settle()

    async def _settle(self) -> None:
        """Wait for every ack; a batch whose ack was lost (reconnect) is published again.

        The message id makes the retry a no-op if the first copy was stored.
        """
        pending, self._pending = self._pending, []
        bus = await self.client.bus()
        for future, subject, data, msg_id in pending:
            try:
                with anyio.fail_after(defaults.REQUEST_TIMEOUT_S):
                    await future
                continue
            except Exception:  # lost ack, timeout or a disconnect: retry below
                pass
            with anyio.fail_after(60):
                while True:
                    try:
                        await bus.publish_raw(subject, data, msg_id=msg_id)
                        break
                    except OWError:
                        await anyio.sleep(0.2)

    async def flush_periodically(self) -> None:
        """Send buffered records every flush interval (the sync facade runs this in its loop),
        so a record logged just before a long quiet spell is not held back."""
        while True:
            await anyio.sleep(defaults.RUN_LOG_FLUSH_S)
            if self._buffer and time.monotonic() - self._last_flush >= defaults.RUN_LOG_FLUSH_S:
                try:
                    await self._send()
                except OWError as exc:
                    log.warning("could not send run records: %s", exc)

    async def flush(self) -> None:
        """Publish everything logged so far and wait until the server stored it."""
        await self._send()
        await self._settle()

    async def upload(self, path: str) -> str:
        """Upload a file as an artifact of this run; returns its file id."""
        await self.start()
        obj = await self.client.files.upload(path, "result")
        bus = await self.client.bus()
        await bus.publish(
            ev.ArtifactUploaded(
                run_id=self.id, job_id=self.job_id, file_id=obj["id"], path=Path(path).name
            )
        )
        return obj["id"]

    async def checkpoint(self, step: int, path: str) -> str:
        """Save a checkpoint (a file or a directory, packed) and publish `CheckpointSaved`."""
        await self.start()
        src = Path(path)
        if src.is_dir():
            tmp = Path(tempfile.mkdtemp()) / f"checkpoint-{step}.tar"
            with tarfile.open(tmp, "w") as tar:
                tar.add(src, arcname=".")
            src = tmp
        obj = await self.client.files.upload(str(src), "checkpoint")
        bus = await self.client.bus()
        await bus.publish(
            ev.CheckpointSaved(run_id=self.id, job_id=self.job_id, step=step, file_id=obj["id"])
        )
        return obj["id"]

    async def last_checkpoint(self) -> tuple[int, str] | None:
        """(step, file id) of the job's last checkpoint, from any earlier run, or None.

        Inside a job with a run credential, the one its agent saw when the run started (it
        is in the credential, which reads no job history: `permissions.run_permissions`)."""
        bus = await self.client.bus()
        if bus.run is not None and bus.run.job_id == self.job_id:
            return bus.run.checkpoint
        job = await self.client.jobs.retrieve(self.job_id)
        return job.checkpoint
