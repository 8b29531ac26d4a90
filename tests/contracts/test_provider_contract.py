"""One contract for every provider: FakeRunPod, the local provider, and real RunPod.

The real RunPod provider runs only with RUNPOD_API_KEY set (it starts a real, billed pod).
"""

from __future__ import annotations

import os
import sys

import pytest

from ow.scheduler.hardware import CPU, Hardware
from ow.scheduler.providers import (
    FakeRunPod,
    LocalProvider,
    NoCapacityError,
    PodNotRecordedError,
    ProviderError,
    RunPodProvider,
)
from tests.integration.conftest import eventually

pytestmark = pytest.mark.anyio


async def _is_running(provider, pod_id):
    return await provider.status(pod_id) == "running"

_SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


class _Case:
    """A provider plus how to make it fail and what it should run."""

    def __init__(self, provider, hardware: Hardware, image: str, break_it, error_type):
        self.provider, self.hardware, self.image = provider, hardware, image
        self.break_it, self.error_type = break_it, error_type


def _fake():
    p = FakeRunPod()
    return _Case(p, CPU, "ow-worker:test", lambda: p.fail_next(), NoCapacityError)


def _local():
    p = LocalProvider(argv=list(_SLEEPER), term_grace_s=2)

    def break_it():
        p._argv = ["/nonexistent/python"]

    return _Case(p, p.offers[0], "", break_it, ProviderError)


def _real():
    key = os.environ.get("RUNPOD_API_KEY")
    if not key:
        pytest.skip("RUNPOD_API_KEY is not set: the real RunPod provider is not exercised")
    c = _Case(RunPodProvider(key), CPU, "runpod/base:0.4.0-cuda11.8.0", None, ProviderError)
    nope = Hardware(name="1x NOPE", gpu="NOPE", count=1, provider_gpu_id="NVIDIA NOPE")
    c.break_it = lambda: setattr(c, "hardware", nope)  # RunPod rejects the unknown GPU type
    return c


@pytest.fixture(params=["fake_runpod", "local", "runpod"])
async def case(request):
    c = {"fake_runpod": _fake, "local": _local, "runpod": _real}[request.param]()
    yield c
    await c.provider.aclose()
    for pod_id in list(getattr(c.provider, "_pods", {})):
        if await c.provider.status(pod_id) == "running":
            await c.provider.terminate(pod_id)


async def test_provision_returns_a_running_pod(case):
    pod_id, price = await case.provider.provision("w-contract", case.hardware, case.image,
                                                  {"OW_URL": "nats://127.0.0.1:1"})
    assert pod_id
    assert price >= 0
    assert await case.provider.status(pod_id) == "running"
    await case.provider.terminate(pod_id)
    assert await case.provider.status(pod_id) == "exited"
    await case.provider.terminate(pod_id)  # already gone: fine


async def test_terminate_of_an_unrecorded_id_raises_and_touches_nothing(case):
    with pytest.raises(PodNotRecordedError):
        await case.provider.terminate("other-1")
    assert await case.provider.status("other-1") == "unknown"
    if isinstance(case.provider, FakeRunPod):
        api = case.provider.api
        assert all(p["desiredStatus"] == "RUNNING" for p in api.foreign.values())
        assert "terminate_pod" not in api.calls
        assert "get_pods" not in api.calls


async def test_a_recorded_pod_can_be_terminated_by_a_new_provider(case):
    """A new scheduler adopts pods from WorkerProvisioned (`record`) and may stop them."""
    pod_id, _ = await case.provider.provision("w-adopt", case.hardware, case.image, {})
    fresh = type(case.provider).__new__(type(case.provider))
    fresh.__dict__.update(case.provider.__dict__)
    fresh._pods = {}
    if hasattr(fresh, "_procs"):
        fresh._procs = {}
    with pytest.raises(PodNotRecordedError):
        await fresh.terminate(pod_id)
    fresh.record(pod_id, "w-adopt")
    # a local child counts as the worker only once it has exec'd the agent (pids are reused)
    assert await eventually(lambda: _is_running(fresh, pod_id), timeout=5)
    await fresh.terminate(pod_id)
    assert await case.provider.status(pod_id) == "exited"


async def test_errors_are_mapped(case):
    case.break_it()
    with pytest.raises(case.error_type) as info:
        await case.provider.provision("w-err", case.hardware, case.image, {})
    assert info.value.message
    assert "fake-key" not in str(info.value)
