"""The job commands as table rows (state, last_seq -> decision), and the CAS loop's retries."""

from __future__ import annotations

import anyio
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ow.core import commands, defaults
from ow.core import events as ev
from ow.core.errors import ConflictError
from ow.core.state import JobState

SPEC = ev.JobSubmitted(event_id="custom-1", job_id="custom-1", job_type="custom")
RESUBMITTED = ev.JobReset(job_id="custom-1", reason="resubmitted")
RESTART = ev.JobReset(job_id="custom-1", reason="restart")
CANCEL = ev.JobCancelRequested(job_id="custom-1")
STARTED = ev.RunStarted(run_id="run-1", job_id="custom-1", gen=1, worker_id="w")


def job(status: str = "pending", **kw) -> JobState:
    return JobState(job_id="custom-1", spec=SPEC, status=status, **kw)


def same(a: commands.Decision, b: commands.Decision) -> bool:
    """Equal decisions (events compared without their generated id and time)."""
    def plain(d):
        out = msgspec.to_builtins(d)
        if isinstance(out, dict) and isinstance(out.get("event"), dict):
            out["event"] = {k: v for k, v in out["event"].items() if k not in ("event_id", "ts")}
        return type(d), out
    return plain(a) == plain(b)


@pytest.mark.parametrize(("state", "last", "expected"), [
    (None, 0, commands.Publish(SPEC, 0)),  # a new job: the subject must still be empty
    (None, 3, commands.Publish(SPEC, 3)),  # only undecodable events: fenced past them (15.6)
    (job("pending"), 1, commands.Existing(job("pending"))),
    (job("in_progress"), 2, commands.Existing(job("in_progress"))),
    (job("completed"), 4, commands.Existing(job("completed"))),
    (job("failed"), 4, commands.Reset(RESUBMITTED, 4)),
    (job("canceled"), 2, commands.Reset(RESUBMITTED, 2)),
])
def test_submit(state, last, expected):
    assert same(commands.submit(state, last, SPEC), expected)


@pytest.mark.parametrize(("state", "last", "expected"), [
    (None, 0, commands.Missing("custom-1")),
    (None, 2, commands.Missing("custom-1")),
    (job("pending"), 1, commands.Existing(job("pending"))),
    (job("in_progress"), 2, commands.Existing(job("in_progress"))),
    (job("completed"), 4, commands.Reset(RESTART, 4)),
    (job("failed"), 4, commands.Reset(RESTART, 4)),
    (job("canceled"), 2, commands.Reset(RESTART, 2)),
])
def test_restart(state, last, expected):
    assert same(commands.restart(state, last, "custom-1"), expected)


@pytest.mark.parametrize(("state", "last", "expected"), [
    (None, 0, commands.Missing("custom-1")),
    (job("pending"), 1, commands.Publish(CANCEL, 1)),
    (job("in_progress"), 3, commands.Publish(CANCEL, 3)),
    (job("in_progress", cancel_requested=True), 4,
     commands.Existing(job("in_progress", cancel_requested=True))),
    (job("completed"), 4, commands.Existing(job("completed"))),
    (job("canceled"), 2, commands.Existing(job("canceled"))),
])
def test_cancel(state, last, expected):
    assert same(commands.cancel(state, last, "custom-1"), expected)


@pytest.mark.parametrize(("state", "last", "expected"), [
    (job("pending", gen=1), 5, commands.Publish(STARTED, 5)),
    (job("pending", gen=2), 6, commands.Missing("custom-1")),  # reset since the claim
    (job("in_progress", gen=1), 6, commands.Missing("custom-1")),  # someone else started
    (job("canceled", gen=1), 6, commands.Missing("custom-1")),
    (None, 0, commands.Missing("custom-1")),
])
def test_start_run(state, last, expected):
    assert same(commands.start_run(state, last, STARTED), expected)


class Subject:
    """A job subject that moves `races` times under the writer before it lets a write in."""

    def __init__(self, races: int):
        self.races, self.seq, self.reads, self.writes = races, 1, 0, []

    async def read(self) -> tuple[str, int]:
        self.reads += 1
        return "state", self.seq

    async def act(self, decision: commands.Decision, state: str) -> int:
        assert isinstance(decision, commands.Publish)
        assert state == "state"
        if self.races:
            self.races -= 1
            self.seq += 1  # another writer got there first
            raise ConflictError("subj", decision.expected_seq)
        self.writes.append(decision.expected_seq)
        return self.seq


def decide(state: str, last: int) -> commands.Decision:
    return commands.Publish(CANCEL, last)


@pytest.mark.parametrize("races", [0, 1, defaults.CAS_ATTEMPTS - 1])
def test_cas_reads_again_after_each_lost_race(races):
    s = Subject(races)
    assert anyio.run(lambda: commands.cas(s.read, decide, s.act, key="subj")) == 1 + races
    assert (s.reads, s.writes) == (races + 1, [1 + races])


def test_cas_uses_the_read_it_is_given_first():
    s = Subject(0)
    anyio.run(lambda: commands.cas(s.read, decide, s.act, key="subj", first=("state", 7)))
    assert (s.reads, s.writes) == (0, [7])


def test_cas_gives_up_after_cas_attempts_with_a_conflict_that_says_so():
    s = Subject(defaults.CAS_ATTEMPTS)
    said = f"lost {defaults.CAS_ATTEMPTS} races in a row: it keeps changing; try again"
    with pytest.raises(ConflictError, match=said) as info:
        anyio.run(lambda: commands.cas(s.read, decide, s.act, key="subj"))
    assert info.value.key == "subj"
    assert s.writes == []


states = st.none() | st.builds(
    job, st.sampled_from(["pending", "in_progress", "completed", "failed", "canceled"]),
    gen=st.integers(0, 3), cancel_requested=st.booleans(),
)


@given(state=states, last=st.integers(0, 10**6))
def test_every_write_is_fenced_on_the_sequence_read(state, last):
    decisions = [commands.submit(state, last, SPEC), commands.restart(state, last, "custom-1"),
                 commands.cancel(state, last, "custom-1"),
                 commands.start_run(state, last, STARTED)]
    for d in decisions:
        if isinstance(d, commands.Publish | commands.Reset):
            assert d.expected_seq == last
    assert not isinstance(decisions[0], commands.Missing)  # a submit always has a job after
    if state is None:  # nothing to restart, cancel or start
        assert all(isinstance(d, commands.Missing) for d in decisions[1:])
