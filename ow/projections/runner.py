"""The projection shell: read each stream in batches, fold, commit with the position reached.

`Projector(bus, path)` owns one DuckDB file (default `<home>/projections/<org>.duckdb`).
`catch_up()` reads every stream to the end it had when called; `run()` catches up and then
follows live. `rebuild()` builds a fresh file from sequence 1 and swaps it in; `replay()`
writes the state as of a sequence or a time into a file of the caller's choice.

Loop of named steps per batch: read (ordered consumer) -> prepare (what needs no database:
metrics read into columns) -> write (fold with `ow.core.state`, commit rows and position in
one transaction). While catching up the three run at once, a batch apart, in worker threads.

Imports: anyio, `ow.core`, and the sibling projection modules (duckdb lazily).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from ow.core import subjects
from ow.core.bus import Bus
from ow.core.config import home_dir
from ow.core.ids import encode_token
from ow.projections import _db
from ow.projections._apply import Folder

__all__ = ["Projector", "default_path", "rebuild", "replay", "stream_filter"]

log = logging.getLogger(__name__)

#: progress(stream, seq reached, end seq)
Progress = Callable[[str, int, int], None]

_PREFIX = {
    subjects.EVENTS_STREAM: subjects.EVENTS_PREFIX,
    subjects.METRICS_STREAM: subjects.METRICS_PREFIX,
    subjects.HEARTBEATS_STREAM: subjects.HEARTBEATS_PREFIX,
}


def stream_filter(stream: str, org: str) -> str:
    """The subject filter of one org's messages on a stream."""
    return f"{_PREFIX[stream]}.{encode_token(org)}.>"


def default_path(org: str) -> Path:
    """Where a process keeps its projection of an org: `<home>/projections/<org>.duckdb`."""
    return home_dir() / "projections" / f"{encode_token(org)}.duckdb"


#: read queries one projector runs at once, each on its own cursor
READERS = 4


class Projector:
    """Folds an org's streams into one DuckDB file it owns."""

    def __init__(
        self,
        bus: Bus,
        path: str | Path | None = None,
        *,
        streams: tuple[str, ...] = _db.STREAMS,
        batch: int = 10_000,
        memory: bool = False,
    ):
        self.bus = bus
        self.path = None if memory else Path(path) if path else default_path(bus.org)
        self.streams = streams
        self.batch = batch
        self._folder: Folder | None = None
        self._streams: dict[str, Folder] = {}  # one cursor (own transactions) per stream
        self._readers_free = anyio.Semaphore(READERS)
        self._cursors: list[Any] = []  # idle read cursors
        self.last_time_ns: dict[str, int] = {}
        self._catching_up = 0  # catch-ups running now (they may overlap)
        self._threads = 1  # DuckDB's thread count before the first of them
        self._advanced = anyio.Event()  # set (and replaced) after every committed batch
        #: the position each stream committed, kept here: reading it from the file would
        #: use a connection that a fold in a worker thread may be busy with
        self._committed: dict[str, int] = {}

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def con(self) -> Any:
        """The DuckDB connection (opened on first use)."""
        return self._open().con

    def _open(self) -> Folder:
        if self._folder is None:
            con = _db.connect(self.path)
            empty = all(
                con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] == 0
                for t in ("jobs", "workers")
            )
            self._folder = Folder(con, fresh=empty)
            self._committed = {s: self._folder.position(s) for s in _db.STREAMS}
        return self._folder

    def _stream_folder(self, stream: str) -> Folder:
        """Each stream writes through its own cursor: streams fold concurrently (their tables
        and position rows are disjoint), and the control stream keeps the state caches."""
        main = self._open()
        if stream == subjects.EVENTS_STREAM:
            return main
        if stream not in self._streams:
            self._streams[stream] = Folder(main.con.cursor(), fresh=True)
        return self._streams[stream]

    def shutdown(self) -> None:
        """Close the file. Idempotent."""
        if self._folder is not None:
            folder, self._folder = self._folder, None
            for c in [*(f.con for f in self._streams.values()), *self._cursors]:
                with contextlib.suppress(Exception):
                    c.close()
            self._streams.clear()
            self._cursors.clear()
            with contextlib.suppress(Exception):
                folder.con.close()

    async def __aenter__(self) -> Projector:
        await anyio.to_thread.run_sync(self._open)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.shutdown()

    # --- reading -------------------------------------------------------------------

    def position(self, stream: str) -> int:
        self._open()
        return self._committed.get(stream, 0)

    def positions(self) -> dict[str, int]:
        """The stream sequence each stream is committed up to."""
        return {s: self.position(s) for s in self.streams}

    async def wait_for(self, at_least: dict[str, int]) -> None:
        """Return once every stream named is folded up to its sequence (no polling: woken
        by each committed batch). The caller bounds the wait (`anyio.fail_after`)."""
        while any(self.position(s) < seq for s, seq in at_least.items() if s in self.streams):
            await self._advanced.wait()

    async def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a read query as dicts (in a worker thread, on a cursor of its own: queries
        never wait on a fold, and up to `READERS` run at once)."""
        async with self._readers_free:
            cursor = self._cursors.pop() if self._cursors else self._open().con.cursor()
            try:
                def run() -> list[dict[str, Any]]:
                    with _db.mapped("query", self.path or ":memory:"):
                        return _db.rows(cursor, sql, params)

                return await anyio.to_thread.run_sync(run)
            finally:
                self._cursors.append(cursor)

    async def snapshot(self, out: Path) -> None:
        """Write a consistent copy of the projection into the DuckDB file `out` (replaced
        atomically), through this process's own connection: one statement, one snapshot of
        every table, taken while the folds go on."""
        tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
        _remove(tmp)
        cursor = self._open().con.cursor()

        def copy() -> None:
            alias = f"snap_{abs(hash(str(tmp)))}"
            with _db.mapped(f"exporting to {out}", self.path or ":memory:"):
                source = cursor.execute("SELECT current_database()").fetchall()[0][0]
                cursor.execute(f"ATTACH '{_quoted(tmp)}' AS {alias}")
                try:
                    cursor.execute(f'COPY FROM DATABASE "{source}" TO {alias}')
                finally:
                    cursor.execute(f"DETACH {alias}")
            os.replace(tmp, out)

        try:
            await anyio.to_thread.run_sync(copy)
        finally:
            cursor.close()
            _remove(tmp)

    # --- folding -------------------------------------------------------------------

    async def catch_up(
        self,
        *,
        progress: Progress | None = None,
        stop_at: dict[str, int] | None = None,
        until_ns: int | None = None,
        streams: tuple[str, ...] | None = None,
    ) -> int:
        """Fold every stream (or those of `streams`) up to the end it has now; returns how
        many messages applied.

        Streams are folded concurrently (the control plane's fold in Python overlaps the
        metrics' load inside DuckDB)."""
        await anyio.to_thread.run_sync(self._open)
        counts: dict[str, int] = {}

        async def one(stream: str) -> None:
            filt = stream_filter(stream, self.bus.org)
            end = await self.bus.last_seq(stream, filt)
            if stop_at and stream in stop_at:
                end = min(end, stop_at[stream])
            counts[stream] = await self._fold(
                self._stream_folder(stream), stream, filt, end, progress, until_ns
            )

        with _one_error(), _gc_paused(), self._threads_per_stream():
            async with anyio.create_task_group() as tg:
                for stream in streams or self.streams:
                    tg.start_soon(one, stream)
        return sum(counts.values())

    @contextlib.contextmanager
    def _threads_per_stream(self) -> Iterator[None]:
        """While catching up, DuckDB gets the cores divided by the streams folding at once.

        The streams already fold in parallel; DuckDB's own threads on top of that cost more
        than they gave (2 cores: the metrics catch-up of 900k records took 2.25 s wall and
        3.05 s CPU with 2 DuckDB threads, 2.03 s and 2.7 s with 1)."""
        con = self._open().con
        if not self._catching_up:
            self._threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
            con.execute(f"SET threads = {max(1, (os.cpu_count() or 1) // len(self.streams))}")
        self._catching_up += 1
        try:
            yield
        finally:
            self._catching_up -= 1
            if not self._catching_up:
                with contextlib.suppress(Exception):
                    con.execute(f"SET threads = {int(self._threads)}")

    async def _fold(
        self, folder: Folder, stream: str, filt: str, end: int,
        progress: Progress | None, until_ns: int | None,
    ) -> int:
        start = folder.position(stream) + 1
        applied = 0
        if end < start:
            return 0
        # three steps at once, a batch apart: the next batch is read while this one is
        # prepared (`Folder.prepare`, no database) and the one before it written
        read_send, read_receive = anyio.create_memory_object_stream[list[Any]](1)
        prep_send, prep_receive = anyio.create_memory_object_stream[tuple[list[Any], Any]](1)

        async def read() -> None:
            batches = self.bus.read(stream, filt, start_seq=start, stop_at=end,
                                    max_batch=self.batch)
            async with read_send, contextlib.aclosing(batches):
                with contextlib.suppress(anyio.BrokenResourceError):  # the fold stopped
                    async for batch in batches:
                        await read_send.send(batch)

        async def prepare() -> None:
            async with prep_send, read_receive:
                async for batch in read_receive:
                    done = until_ns is not None and batch[-1].time_ns > until_ns
                    if until_ns is not None:
                        batch = [m for m in batch if m.time_ns <= until_ns]
                    prepared = await anyio.to_thread.run_sync(folder.prepare, stream, batch)
                    try:
                        await prep_send.send((batch, prepared))
                    except anyio.BrokenResourceError:
                        return  # the write step stopped (its error is the one to see)
                    if done:
                        return

        with _one_error():
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                tg.start_soon(prepare)
                async with prep_receive:
                    async for batch, prepared in prep_receive:
                        await self._write(folder, stream, batch, prepared)
                        applied += len(batch)
                        if progress and batch:
                            progress(stream, batch[-1].seq, end)
                tg.cancel_scope.cancel()  # the reader, if `until_ns` ended the fold early
        return applied

    async def _write(self, folder: Folder, stream: str, batch: list[Any], prepared: Any) -> None:
        if not batch:
            return
        with _db.mapped(f"applying {stream} up to {batch[-1].seq}", self.path or ""):
            await anyio.to_thread.run_sync(folder.write, stream, batch, prepared)
        self.last_time_ns[stream] = batch[-1].time_ns
        self._committed[stream] = batch[-1].seq
        advanced, self._advanced = self._advanced, anyio.Event()
        advanced.set()

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Catch up, report started, then follow every stream live until cancelled."""
        log.info("projection %s of org %s: resuming after %s", self.path or ":memory:",
                 self.bus.org, {s: self.position(s) for s in self.streams})
        await self.catch_up()
        async with anyio.create_task_group() as tg:
            for stream in self.streams:
                tg.start_soon(self._follow, self._stream_folder(stream), stream)
            task_status.started()

    async def _follow(self, folder: Folder, stream: str) -> None:
        filt = stream_filter(stream, self.bus.org)
        batches = self.bus.read(stream, filt, start_seq=folder.position(stream) + 1,
                                max_batch=self.batch)
        async with contextlib.aclosing(batches):
            async for batch in batches:
                prepared = await anyio.to_thread.run_sync(folder.prepare, stream, batch)
                await self._write(folder, stream, batch, prepared)


async def rebuild(
    bus: Bus, path: str | Path | None = None, progress: Progress | None = None
) -> Path:
    """Replay everything from sequence 1 into a new file, then swap it in for `path`."""
    target = Path(path) if path else default_path(bus.org)
    await anyio.to_thread.run_sync(_check_free, target)
    tmp = target.with_name(target.name + ".rebuild")
    _remove(tmp)
    with _gc_paused():  # until the folded states are freed with the projector: see there
        async with Projector(bus, tmp) as p:
            await p.catch_up(progress=progress)
    _remove(target)
    os.replace(tmp, target)
    return target


async def replay(
    bus: Bus, until: int | datetime, out: str | Path, progress: Progress | None = None
) -> Path:
    """Write the state as of `until` (an OW_EVENTS sequence, or a time) into `out`.

    With a sequence, the other streams are cut at the time that event was stored.
    """
    out = Path(out)
    _remove(out)
    with _gc_paused():
        async with Projector(bus, out) as p:
            if isinstance(until, datetime):
                await p.catch_up(progress=progress, until_ns=int(until.timestamp() * 1e9))
            else:
                p.streams = (subjects.EVENTS_STREAM,)
                await p.catch_up(progress=progress, stop_at={subjects.EVENTS_STREAM: until})
                cut = p.last_time_ns.get(subjects.EVENTS_STREAM, 0)
                p.streams = tuple(s for s in _db.STREAMS if s != subjects.EVENTS_STREAM)
                await p.catch_up(progress=progress, until_ns=cut)
    return out


@contextlib.contextmanager
def _one_error() -> Iterator[None]:
    """Callers see the error, not a task group's group of one."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group
        raise


class _GcPause:
    """No cyclic garbage collection while catching up, one collection after.

    A catch-up allocates millions of short-lived, acyclic objects (messages, events, rows);
    the collector's passes over them were a third of the fold's time. Reference counting
    still frees them; cycles wait for the collector's next pass. That pass walks every object
    the catch-up left alive (the folded states: 0.14 s after a 1M-event rebuild), so a
    rebuild or replay keeps the collector off until its projector has let them go.

    The collector is one per process, so is this: `depth` counts the catch-ups running in
    it (they may overlap); the last one out turns the collector back on."""

    def __init__(self) -> None:
        self.depth = 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if not gc.isenabled() and not self.depth:
            yield  # someone else turned it off: leave it to them
            return
        self.depth += 1
        gc.disable()
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth:
                gc.enable()


_gc_paused = _GcPause()


def _check_free(path: Path) -> None:
    """Raise ProjectionLockedError if another process has the file open."""
    if path.exists():
        _db.connect(path).close()


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
