"""Providers: where workers run. `local` (agent processes here), `runpod`, and `FakeRunPod`.

Imports: `ow.core` and `ow.scheduler`; `runpod` lazily inside the runpod provider.
"""

from __future__ import annotations

from collections.abc import Mapping

from ow.core.errors import ConfigError
from ow.scheduler.providers._base import (
    NoCapacityError,
    PodNotRecordedError,
    PodStatus,
    Provider,
    ProviderError,
    QuotaError,
)
from ow.scheduler.providers.fake_runpod import FakeRunPod, FakeRunPodAPI
from ow.scheduler.providers.local import LocalProvider
from ow.scheduler.providers.runpod import RunPodProvider

__all__ = [
    "FakeRunPod",
    "FakeRunPodAPI",
    "LocalProvider",
    "NoCapacityError",
    "PodNotRecordedError",
    "PodStatus",
    "Provider",
    "ProviderError",
    "QuotaError",
    "RunPodProvider",
    "make_provider",
]


def make_provider(
    name: str, *, api_key: str = "", log_dir: str | None = None,
    ttl_hours: float | None = None, env: Mapping[str, str] | None = None,
) -> Provider:
    """The provider called `name` (`local`, `runpod`, `fake-runpod`)."""
    if name == "local":
        return LocalProvider(log_dir=log_dir, base_env=env)
    if name == "runpod":
        if not api_key:
            raise ConfigError(
                "the runpod provider needs an API key: set RUNPOD_API_KEY "
                "(or use --provider local)"
            )
        kwargs = {} if ttl_hours is None else {"ttl_hours": ttl_hours}
        return RunPodProvider(api_key, **kwargs)
    if name == "fake-runpod":
        return FakeRunPod()
    raise ConfigError(f"unknown provider {name!r}: use local, runpod or fake-runpod")
