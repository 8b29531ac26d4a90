"""The control-plane stream (OW_EVENTS): its tables, and folding a batch into them.

Job and worker events are folded with `ow.core.state` (the one state machine); each touched
job, run, worker and file is written as a whole row (replacing its old one), each event's
envelope into `events`, each rejected event into `anomalies`. Folded states are cached in
memory and read back from the `state` column of their row after a restart.

Imports: pyarrow (lazily), msgspec, `ow.core` and `ow.projections._tables`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from ow.core import codec
from ow.core import events as ev
from ow.core.bus import Msg
from ow.core.state import JobState, WorkerState, apply, apply_worker
from ow.projections._tables import JSON_Z, Table, Writer, j

__all__ = ["EVENTS", "FILES", "JOBS", "RUNS", "WORKERS", "ControlFold"]

_S, _I, _F, _B, _T = "VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", "TIMESTAMPTZ"

EVENTS = Table("events", (
    ("seq", _I), ("stream", _S), ("subject", _S), ("type", _S), ("event_id", _S),
    ("org", _S), ("ts", _T), ("actor", _S), ("json", JSON_Z),
), order="seq")

JOBS = Table("jobs", (
    ("job_id", _S), ("org", _S), ("type", _S), ("model", _S), ("status", _S),
    ("gen", "INTEGER"), ("error", _S), ("cancel_requested", _B), ("requires_vram_gb", _F),
    ("image", _S), ("runs", "INTEGER"), ("run_id", _S), ("worker_id", _S),
    ("outputs", JSON_Z), ("params", JSON_Z), ("created_at", _T), ("updated_at", _T),
    ("state", JSON_Z),
), order="job_id")

RUNS = Table("runs", (
    ("run_id", _S), ("job_id", _S), ("gen", "INTEGER"), ("worker_id", _S), ("claim_rev", _I),
    ("status", _S), ("started_at", _T), ("finished_at", _T), ("exit_code", "INTEGER"),
    ("error", _S), ("log_file", _S), ("outputs", JSON_Z), ("artifacts", JSON_Z),
), order="job_id, gen, run_id")

WORKERS = Table("workers", (
    ("worker_id", _S), ("status", _S), ("provider", _S), ("pod_id", _S), ("hardware", _S),
    ("gpus", "JSON"), ("vram_gb", _F), ("image", _S), ("price_per_hour", _F),
    ("provisioned_at", _T), ("registered_at", _T), ("terminated_at", _T), ("last_ping", _T),
    ("run_id", _S), ("reason", _S), ("state", "JSON"), ("isolation", _S),
), order="worker_id", migrate=("ALTER TABLE workers ADD COLUMN IF NOT EXISTS isolation VARCHAR",))

FILES = Table("files", (
    ("file_id", _S), ("purpose", _S), ("filename", _S), ("size_bytes", _I), ("sha256", _S),
    ("store", _S), ("key", _S), ("created_at", _T), ("seq", _I),
), order="file_id")

#: the events table from (seq, subject, json) rows; absent envelope strings are '' as in
#: the decoded event (msgspec omits defaults when encoding). Its columns in `EVENTS` order.
_EVENTS_SQL = """
INSERT INTO events
SELECT seq, ?, subject, e.type, coalesce(e.event_id, ''), coalesce(e.org, ''),
       e.ts::TIMESTAMPTZ, coalesce(e.actor, ''), json
FROM (SELECT seq, subject, json, json_transform(json, '{"type": "VARCHAR",
      "event_id": "VARCHAR", "org": "VARCHAR", "ts": "VARCHAR", "actor": "VARCHAR"}') AS e
      FROM _rows)
"""

_job_dec = msgspec.json.Decoder(JobState)
_worker_dec = msgspec.json.Decoder(WorkerState)


def _job_rows(states: list[JobState]) -> dict[str, list[Any]]:
    last = [st.runs[-1] if st.runs else None for st in states]
    return {
        "job_id": [st.job_id for st in states],
        "org": [st.org for st in states],
        "type": [st.spec.job_type for st in states],
        "model": [st.spec.model for st in states],
        "status": [st.status for st in states],
        "gen": [st.gen for st in states],
        "error": [st.error for st in states],
        "cancel_requested": [st.cancel_requested for st in states],
        "requires_vram_gb": [float(st.spec.requires_vram_gb) for st in states],
        "image": [st.spec.image for st in states],
        "runs": [len(st.runs) for st in states],
        "run_id": [r.run_id if r else None for r in last],
        "worker_id": [r.worker_id if r else None for r in last],
        "outputs": [j(st.outputs) for st in states],
        "params": [j(st.spec.params) for st in states],
        "created_at": [st.created_at for st in states],
        "updated_at": [st.updated_at for st in states],
        "state": [j(st) for st in states],
    }


def _run_rows(states: list[JobState]) -> dict[str, list[Any]]:
    runs = [r for st in states for r in st.runs]
    return {
        "run_id": [r.run_id for r in runs],
        "job_id": [r.job_id for r in runs],
        "gen": [r.gen for r in runs],
        "worker_id": [r.worker_id for r in runs],
        "claim_rev": [r.claim_rev for r in runs],
        "status": [r.status for r in runs],
        "started_at": [r.started_at for r in runs],
        "finished_at": [r.finished_at for r in runs],
        "exit_code": [r.exit_code for r in runs],
        "error": [r.error for r in runs],
        "log_file": [r.log_file for r in runs],
        "outputs": [j(r.outputs) for r in runs],
        "artifacts": [j(dict(r.artifacts)) for r in runs],
    }


def _worker_rows(ws: list[WorkerState]) -> dict[str, list[Any]]:
    return {
        "worker_id": [w.worker_id for w in ws],
        "status": [w.status for w in ws],
        "provider": [w.provider for w in ws],
        "pod_id": [w.pod_id for w in ws],
        "hardware": [w.hardware for w in ws],
        "gpus": [j(w.gpus) for w in ws],
        "vram_gb": [float(w.vram_gb) for w in ws],
        "image": [w.image for w in ws],
        "price_per_hour": [float(w.price_per_hour) for w in ws],
        "provisioned_at": [w.provisioned_at for w in ws],
        "registered_at": [w.registered_at for w in ws],
        "terminated_at": [w.terminated_at for w in ws],
        "last_ping": [w.last_ping for w in ws],
        "run_id": [w.run_id for w in ws],
        "reason": [w.reason for w in ws],
        "state": [j(w) for w in ws],
        "isolation": [w.isolation for w in ws],
    }


def _file_rows(rows: list[tuple[Msg, ev.FileUploaded]]) -> dict[str, list[Any]]:
    return {
        "file_id": [e.file_id for _, e in rows],
        "purpose": [e.purpose for _, e in rows],
        "filename": [e.filename for _, e in rows],
        "size_bytes": [e.size_bytes for _, e in rows],
        "sha256": [e.sha256 for _, e in rows],
        "store": [e.store for _, e in rows],
        "key": [e.key for _, e in rows],
        "created_at": [e.ts for _, e in rows],
        "seq": [m.seq for m, _ in rows],
    }


def _aggregate(subject: str) -> str:
    """`ow.ev.<org>.<aggregate>.<id>` -> aggregate."""
    parts = subject.split(".", 4)
    return parts[3] if len(parts) > 3 else ""


def _agg_id(subject: str) -> str:
    parts = subject.split(".", 4)
    return parts[4] if len(parts) > 4 else ""


class ControlFold(Writer):
    """Folding control-plane batches; `jobs` and `workers` are the folded states."""

    jobs: dict[str, JobState]
    workers: dict[str, WorkerState]

    def _control(self, stream: str, msgs: list[Msg]) -> None:
        bad: list[tuple[Any, ...]] = []
        events = codec.decode_each([m.data for m in msgs])
        if events is not None:
            decoded = [(m, codec.bind(e, m.subject)) for m, e in zip(msgs, events, strict=True)]
        else:  # an undecodable or older-version event: one by one
            decoded = []
            for m in msgs:
                try:
                    decoded.append((m, codec.bind(codec.decode(m.data), m.subject)))
                except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                    bad.append((m.seq, stream, m.subject, None, None, _agg_id(m.subject),
                                f"undecodable: {exc}", m.data.decode("utf-8", "replace")))
        kinds = [(_aggregate(m.subject), m, e) for m, e in decoded]
        if not self.fresh:  # a rebuild has every state in memory
            self._load("jobs", "job_id",
                       {getattr(e, "job_id", "") for k, _, e in kinds if k == "job"})
            self._load("workers", "worker_id",
                       {getattr(e, "worker_id", "") for k, _, e in kinds if k == "worker"})
        touched_jobs: set[str] = set()
        touched_workers: set[str] = set()
        files: list[tuple[Msg, ev.FileUploaded]] = []
        for kind, m, e in kinds:
            anomaly = None
            if kind == "job":
                jid = getattr(e, "job_id", "")
                new, anomaly = apply(self.jobs.get(jid), e)
                if new is not None and anomaly is None:
                    self.jobs[jid] = new
                    touched_jobs.add(jid)
            elif kind == "worker":
                wid = getattr(e, "worker_id", "")
                new_w, anomaly = apply_worker(self.workers.get(wid), e)
                if new_w is not None and anomaly is None:
                    self.workers[wid] = new_w
                    touched_workers.add(wid)
            elif isinstance(e, ev.FileUploaded):
                files.append((m, e))
            if anomaly is not None:
                bad.append((m.seq, stream, m.subject, anomaly.event_id, anomaly.event_type,
                            anomaly.aggregate_id, anomaly.rule, m.data.decode()))
        self._events(stream, [m for m, _ in decoded])
        self._write_jobs(touched_jobs)
        self._write_workers(touched_workers)
        self._write_files(files)
        self._anomalies(bad)

    def _events(self, stream: str, msgs: list[Msg]) -> None:
        """The envelopes of decoded events. DuckDB reads the envelope fields out of the JSON
        (one parse per event, off the GIL): building those columns in Python cost twice as
        much and held the GIL the other streams' folds need."""
        if not msgs:
            return
        import pyarrow as pa

        rows = pa.table({
            "seq": pa.array([m.seq for m in msgs], pa.int64()),
            "subject": pa.array([m.subject for m in msgs], pa.string()),
            # bytes to text in Arrow (it checks the UTF-8): a Python decode per event is slower
            "json": pa.array([m.data for m in msgs], pa.binary()).cast(pa.string()),
        })
        self._on_rows(rows, _EVENTS_SQL, [stream])

    def _load(self, table: str, key: str, ids: Iterable[str]) -> None:
        """Read back the states of aggregates this process has not folded yet."""
        cache: dict[str, Any] = self.jobs if table == "jobs" else self.workers
        missing = [i for i in ids if i and i not in cache]
        if self.fresh or not missing:
            return
        dec = _job_dec if table == "jobs" else _worker_dec
        rows = self.con.execute(
            f"SELECT {key}, state FROM {table} WHERE {key} IN (SELECT unnest(?::VARCHAR[]))",
            [missing],
        ).fetchall()
        for agg_id, state in rows:
            cache[agg_id] = dec.decode(state)

    def _write_jobs(self, ids: set[str]) -> None:
        if not ids:
            return
        states = [self.jobs[i] for i in sorted(ids)]
        job_ids = [st.job_id for st in states]
        self._replace("jobs", "job_id", job_ids, JOBS.arrow(_job_rows(states)))
        self._replace("runs", "job_id", job_ids, RUNS.arrow(_run_rows(states)))

    def _write_workers(self, ids: set[str]) -> None:
        if not ids:
            return
        ws = [self.workers[i] for i in sorted(ids)]
        self._replace("workers", "worker_id", [w.worker_id for w in ws],
                      WORKERS.arrow(_worker_rows(ws)))

    def _write_files(self, files: list[tuple[Msg, ev.FileUploaded]]) -> None:
        if not files:
            return
        latest = {e.file_id: (m, e) for m, e in files}  # one row per file id
        self._replace("files", "file_id", list(latest),
                      FILES.arrow(_file_rows(list(latest.values()))))
