from datetime import UTC, datetime, timedelta

import pytest

from ow.scheduler.ttl import TTLWatchdog, decide, extend, read_deadline, set_ttl

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("deadline", "now", "want"),
    [(None, T0, False), (T0, T0, True), (T0 + timedelta(seconds=1), T0, False),
     (T0, T0 + timedelta(hours=1), True)],
)
def test_decide(deadline, now, want):
    assert decide(deadline, now) is want


def test_set_extend_and_read(tmp_path):
    path = tmp_path / "shutdown.txt"
    assert read_deadline(path) is None
    assert set_ttl(path, 2, T0) == T0 + timedelta(hours=2)
    assert extend(path, 1, T0) == T0 + timedelta(hours=3)
    assert extend(path, 1, T0 + timedelta(hours=10)) == T0 + timedelta(hours=11)  # was past
    path.write_text("garbage")
    assert read_deadline(path) is None


@pytest.mark.anyio
async def test_watchdog_terminates_its_own_pod_after_the_deadline(tmp_path):
    now = [T0]
    killed: list[str] = []
    fails = [True]

    async def terminate(pod_id):
        if fails.pop() if fails else False:
            raise RuntimeError("api down")
        killed.append(pod_id)

    async def sleep(s):
        now[0] += timedelta(seconds=s)

    dog = TTLWatchdog("pod-1", terminate, path=tmp_path / "s.txt", ttl_hours=1,
                      interval_s=60, clock=lambda: now[0], sleep=sleep)
    await dog.run()
    assert killed == ["pod-1"]
    assert now[0] >= T0 + timedelta(hours=1, minutes=1)  # one failed attempt retried


@pytest.mark.anyio
async def test_watchdog_keeps_an_existing_deadline_and_sees_extensions(tmp_path):
    path = tmp_path / "s.txt"
    set_ttl(path, 5, T0)
    dog = TTLWatchdog("p", lambda p: None, path=path, ttl_hours=1, clock=lambda: T0)
    assert dog.start() == T0 + timedelta(hours=5)
    assert not await dog.check()
