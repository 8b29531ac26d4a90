"""Golden event files: every line ever released must decode, upcast and fold forever.

`tests/golden/events-v1.jsonl` holds at least one line of every event type of the catalogue,
as one org's history (a fine-tuning job requeued after a lost worker, failed twice, canceled,
reset and completed). A new event type fails `test_every_event_type_has_a_golden_line` until
a line is added here; a changed schema fails the decode or the fold.
"""

from __future__ import annotations

import typing
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from ow.core import codec, subjects
from ow.core import events as ev
from ow.core.state import apply, apply_worker

GOLDEN = Path(__file__).parents[2] / "golden"
FILES = sorted(GOLDEN.glob("events-v*.jsonl"))
JOB = "ft-7e9341169f89"
RUNS = ["run-a1b2c3d4e5f6", "run-b7c8d9e0f1a2", "run-c3d4e5f6a7b8", "run-d9e0f1a2b3c4",
        "run-e5f6a7b8c9d0"]


def lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def golden_v1() -> list[ev.Event]:
    return [codec.decode(line) for line in lines(GOLDEN / "events-v1.jsonl")]


def test_there_is_a_golden_file():
    assert GOLDEN / "events-v1.jsonl" in FILES


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_golden_line_decodes_to_the_current_version(path):
    for n, line in enumerate(lines(path), 1):
        event = codec.decode(line)
        assert event.event_id, f"{path.name}:{n} has no event id"
        assert event.ts is not None
        assert event.ts.tzinfo is not None


def test_decoding_keeps_every_field():
    for line in lines(GOLDEN / "events-v1.jsonl"):
        assert msgspec.json.decode(codec.encode(codec.decode(line))) == msgspec.json.decode(line)


def test_every_event_type_has_a_golden_line():
    catalogue = {cls.__name__ for cls in typing.get_args(ev.AnyEvent)}
    covered = {type(e).__name__ for e in golden_v1()}
    assert catalogue - covered == set(), "add a line for each new event type to events-v1.jsonl"


def test_every_golden_event_has_a_subject():
    for e in golden_v1():
        assert subjects.subject_of(e).startswith(("ow.ev.acme.", "ow.mx.acme.", "ow.hb.acme."))


def test_the_job_folds_to_its_known_final_state():
    state, anomalies = None, []
    for e in golden_v1():
        if getattr(e, "job_id", None) != JOB or isinstance(e, ev.MetricLogged):
            continue
        state, anomaly = apply(state, e)
        if anomaly:
            anomalies.append((anomaly.event_type, anomaly.rule))
    assert anomalies == [("RunFinished", "result from run run-a1b2c3d4e5f6 but the job is "
                                         "in_progress (run-b7c8d9e0f1a2 holds it)")]
    assert (state.status, state.gen, state.error, state.cancel_requested) == (
        "completed", 4, "", False)
    assert [(r.run_id, r.gen, r.status) for r in state.runs] == [
        (RUNS[0], 0, "requeued"), (RUNS[1], 1, "failed"), (RUNS[2], 2, "failed"),
        (RUNS[3], 3, "canceled"), (RUNS[4], 4, "completed")]
    assert state.runs[1].error == "CUDA out of memory"
    assert state.runs[4].artifacts == (("uploads/adapter.tar", "result:file-7f8e9d0c1b2a"),)
    assert state.outputs == {"model": "acme/qwen3-4b-ft", "final_loss": 0.8121}
    assert state.checkpoint == (100, "checkpoint:file-0c4d2e1f3a5b")
    assert state.timeout_until == datetime(2025, 6, 1, 14, tzinfo=UTC)
    assert (state.spec.requires_vram_gb, state.spec.job_type) == (48.0, "ft")
    assert state.spec.mounted_files == {"train.jsonl": "conversations:file-5e1a2b3c4d5e"}


def test_the_workers_fold_to_their_known_final_state():
    workers = {}
    for e in golden_v1():
        wid = getattr(e, "worker_id", None)
        if wid is not None and type(e).__name__.startswith("Worker"):
            workers[wid], anomaly = apply_worker(workers.get(wid), e)
            assert anomaly is None
    lost, local = workers["worker-3b9f0c2d1e4a"], workers["worker-local-1"]
    assert (lost.status, lost.reason, lost.provider, lost.pod_id) == (
        "terminated", "lost", "runpod", "pod-x7k2m9")
    assert (local.status, local.reason) == ("draining", "5 consecutive failed jobs")


def test_every_form_of_metrics_message_decodes_to_its_records():
    """OW_METRICS messages: a JSON array of MetricLogged (as first written) and a
    `MetricBatch` (one envelope, records of dt + data), each read as its records."""
    got = [e for line in lines(GOLDEN / "metric-messages-v1.jsonl")
           for e in codec.decode_message(line)]
    assert all(isinstance(e, ev.MetricLogged) for e in got)
    assert {(e.org, e.run_id, e.job_id, e.actor) for e in got} == {
        ("acme", RUNS[0], JOB, f"run:{RUNS[0]}")}
    batch = "0197000ac0de700a8000a1b2c3d4e602"
    assert [e.event_id for e in got] == [
        "0197000ac0de700a8000a1b2c3d4e600", "0197000ac0de700a8000a1b2c3d4e601",
        f"{batch}-0", f"{batch}-1"]
    assert [e.ts for e in got] == [
        datetime(2025, 6, 1, 12, 1, 41, tzinfo=UTC), datetime(2025, 6, 1, 12, 1, 42, tzinfo=UTC),
        datetime(2025, 6, 1, 12, 1, 43, 250, tzinfo=UTC),
        datetime(2025, 6, 1, 12, 1, 44, 750, tzinfo=UTC)]
    assert [e.data.get("step") for e in got] == [101, 102, 103, 104]
    assert got[-1].data["note"] == "any JSON"
