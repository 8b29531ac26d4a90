"""When a scheduler notice still explains why a job waits (`ow.sdk._pending.stands`)."""

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from ow.core import events as ev
from ow.core.state import JobState
from ow.sdk._pending import stands

T = datetime(2025, 1, 1, 12, tzinfo=UTC)


def state(status="pending", updated=0, cancel=False):
    return JobState(job_id="j", spec=ev.JobSubmitted(job_id="j"), status=status,
                    cancel_requested=cancel, created_at=T,
                    updated_at=T + timedelta(seconds=updated))


def notice(at):
    return ev.SchedulerNoticed(subject_id="j", rule="no_hardware", message="m",
                               ts=T + timedelta(seconds=at))


@pytest.mark.parametrize(
    ("n", "s", "want"),
    [
        (notice(1), state(), True),
        (notice(0), state(), True),  # at the same instant: it is about this state
        (notice(1), state(updated=5), False),  # the job moved on (reset, requeue, ...) since
        (notice(1), state(status="in_progress"), False),
        (notice(1), state(status="completed"), False),
        (notice(1), state(cancel=True), False),
        (None, state(), False),
        (notice(1), None, False),
    ],
)
def test_stands(n, s, want):
    assert stands(n, s) is want


def test_a_notice_without_a_time_stands_for_a_pending_job():
    assert stands(msgspec.structs.replace(notice(1), ts=None), state(updated=5))
