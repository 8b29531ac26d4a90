"""The public names of each package are pinned: removing or renaming one is a decision."""

import importlib

import pytest

EXPECTED = {
    "ow": {
        "AsyncOpenWeights", "Job", "JobCanceledError", "JobFailedError", "Jobs", "NotFoundError",
        "OWError", "OpenWeights", "Run", "ValidationError", "WaitTimeoutError", "register",
    },
    "ow.sdk": {"AsyncOpenWeights", "FileObject", "Job", "Jobs", "OpenWeights", "Run", "register"},
    "ow.core.bus": {
        "Bus", "Delivery", "Dispatch", "Handler", "KvBucket", "KvEntry", "Msg",
        "Offer", "Reply", "ServiceFault", "WireError", "check_version", "connect", "mapped",
    },
    "ow.agent": {"Agent", "Hardware", "can_serve", "claim_delay", "detect", "run_agent"},
    "ow.scheduler": {
        "GPU_TABLE", "Action", "DropClaim", "FakeRunPod", "Hardware", "Limits", "LocalProvider",
        "Notice", "Provider", "ProviderError", "Provision", "Requeue", "RunPodProvider",
        "Scheduler", "TTLWatchdog", "Terminate", "View", "cheapest", "limits_from",
        "make_provider", "plan", "reconcile", "run_scheduler",
    },
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_public_names_are_pinned(module):
    mod = importlib.import_module(module)
    assert set(mod.__all__) == EXPECTED[module]
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is in __all__ but missing"
