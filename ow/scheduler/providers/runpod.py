"""The RunPod provider: one pod per worker, through the `runpod` package (imported lazily).

A pod runs the worker image with the env that lets its agent connect (OW_URL, OW_ORG,
OW_TOKEN, OW_WORKER_ID) and TTL_HOURS for the in-pod watchdog (`ow.scheduler.ttl`). Pods
are terminated only by an id this provider recorded (it created the pod, or the scheduler
replayed the pod's `WorkerProvisioned`).

SAFETY: never call `runpod.get_pods()` and terminate what comes back. The API key's account
may hold other people's workloads; a cleanup that did exactly that once wiped them out in a
real incident. Orphans are found by asking about recorded ids only (`status`).

A dev pod (`provision_dev`, for `ow ssh`) runs the same image with OW_DEV=true: its entrypoint
starts sshd (authorized for PUBLIC_KEY) and the TTL watchdog, no agent. Its public ssh address
comes from the pod's runtime ports (`ssh_address`); it is recorded like any other pod, so it
too is terminated by its id only.

Every exception of the client is mapped to a `ProviderError` carrying the provider's own
text, with the API key scrubbed from it.

Imports: stdlib, anyio and `ow.scheduler`; `runpod` inside `_client`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import anyio

from ow.core import defaults
from ow.scheduler.hardware import GPU_TABLE, Hardware
from ow.scheduler.providers._base import (
    NoCapacityError,
    PodNotRecordedError,
    PodStatus,
    ProviderError,
    QuotaError,
)

__all__ = ["RunPodProvider", "map_error"]

log = logging.getLogger(__name__)

_NO_CAPACITY = ("no longer any instances", "no instances", "not enough", "capacity",
                "unavailable", "out of stock")
_QUOTA = ("quota", "balance", "insufficient funds", "spend limit", "limit reached",
          "unauthorized", "api key")
_GONE = ("not found", "does not exist", "no pod", "already terminated")


def map_error(provider: str, exc: BaseException, secret: str = "") -> ProviderError:
    """The `ProviderError` for a client exception: its text, without the secret."""
    text = str(exc) or type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    low = text.lower()
    if type(exc).__name__ == "AuthenticationError" or any(s in low for s in _QUOTA):
        return QuotaError(provider, text)
    if any(s in low for s in _NO_CAPACITY):
        return NoCapacityError(provider, text)
    return ProviderError(provider, text)


class RunPodProvider:
    """Pods on RunPod; `client` is the `runpod` module (or a stand-in with its functions)."""

    name = "runpod"

    def __init__(
        self,
        api_key: str = "",
        *,
        client: Any = None,
        offers: tuple[Hardware, ...] = GPU_TABLE,
        ttl_hours: float = defaults.POD_TTL_S / 3600,
        cloud_type: str = "SECURE",
        container_disk_gb: int = 50,
    ):
        self._api_key = api_key
        self._client = client
        self._offers = offers
        self._ttl_hours = ttl_hours
        self._cloud_type = cloud_type
        self._disk = container_disk_gb
        self._pods: dict[str, str] = {}  # pod_id -> worker_id, recorded only

    @property
    def offers(self) -> tuple[Hardware, ...]:
        return self._offers

    def _api(self) -> Any:
        if self._client is None:
            try:
                import runpod  # heavy and optional: only a RunPod scheduler needs it
            except ImportError as exc:
                raise ProviderError(
                    self.name, "the runpod package is missing: pip install 'ow[runpod]'"
                ) from exc
            runpod.api_key = self._api_key
            self._client = runpod
        return self._client

    @contextlib.contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except ProviderError:
            raise
        except Exception as exc:  # the client raises many kinds (query, auth, http, value)
            raise map_error(self.name, exc, self._api_key) from exc

    def record(self, pod_id: str, worker_id: str) -> None:
        self._pods.setdefault(pod_id, worker_id)

    async def provision(
        self, worker_id: str, hardware: Hardware, image: str, env: Mapping[str, str]
    ) -> tuple[str, float]:
        pod_env = {**env, "OW_WORKER_ID": worker_id, "TTL_HOURS": f"{self._ttl_hours:g}"}
        pod_id = await self._create(f"ow-{worker_id}", hardware, image, pod_env)
        self._pods[pod_id] = worker_id
        log.info("created pod_id=%s for worker_id=%s (%s)", pod_id, worker_id, hardware.name)
        return pod_id, hardware.price_per_hour

    async def provision_dev(
        self, name: str, hardware: Hardware, image: str, *, public_key: str, ttl_hours: float,
        env: Mapping[str, str] | None = None,
    ) -> tuple[str, float]:
        """Start a dev pod (no agent; sshd for `public_key`; TTL watchdog): (pod_id, price)."""
        pod_env = {**(env or {}), "OW_DEV": "true", "TTL_HOURS": f"{ttl_hours:g}",
                   "PUBLIC_KEY": public_key}
        pod_id = await self._create(
            f"ow-dev-{name}", hardware, image, pod_env, ports="22/tcp", support_public_ip=True
        )
        self._pods[pod_id] = f"dev-{name}"
        log.info("created dev pod_id=%s (%s, ttl %sh)", pod_id, hardware.name, ttl_hours)
        return pod_id, hardware.price_per_hour

    async def _create(
        self, name: str, hardware: Hardware, image: str, env: Mapping[str, str], **extra: Any
    ) -> str:
        api = self._api()
        kwargs: dict[str, Any] = {
            "name": name, "image_name": image, "env": dict(env),
            "cloud_type": self._cloud_type, "container_disk_in_gb": self._disk, **extra,
        }
        if hardware.provider_gpu_id:
            kwargs.update(gpu_type_id=hardware.provider_gpu_id, gpu_count=hardware.count or 1)
        with self._mapped():
            pod = await anyio.to_thread.run_sync(lambda: api.create_pod(**kwargs))
        pod_id = str((pod or {}).get("id") or "")
        if not pod_id:
            raise ProviderError(self.name, f"create_pod returned no pod id: {pod!r}")
        return pod_id

    async def ssh_address(self, pod_id: str) -> tuple[str, int] | None:
        """The public (host, port) of a recorded pod's sshd, or None while RunPod has none."""
        if pod_id not in self._pods:
            raise PodNotRecordedError(self.name, pod_id)
        api = self._api()
        with self._mapped():
            pod = await anyio.to_thread.run_sync(api.get_pod, pod_id)
        ports = ((pod or {}).get("runtime") or {}).get("ports") or []
        for port in ports:
            if port.get("privatePort") == 22 and port.get("isIpPublic") and port.get("ip"):
                return str(port["ip"]), int(port["publicPort"])
        return None

    async def terminate(self, pod_id: str) -> None:
        # Only recorded ids. Never get_pods() + terminate: see the module docstring.
        if pod_id not in self._pods:
            raise PodNotRecordedError(self.name, pod_id)
        api = self._api()
        try:
            with self._mapped():
                await anyio.to_thread.run_sync(api.terminate_pod, pod_id)
        except ProviderError as exc:
            if any(s in exc.message.lower() for s in _GONE):
                return  # already gone: what we wanted
            raise

    async def status(self, pod_id: str) -> PodStatus:
        if pod_id not in self._pods:
            return "unknown"
        api = self._api()
        with self._mapped():
            pod = await anyio.to_thread.run_sync(api.get_pod, pod_id)
        if not pod:
            return "exited"
        desired = str(pod.get("desiredStatus", "")).upper()
        if desired == "RUNNING":
            return "running"
        if desired in ("EXITED", "TERMINATED"):
            return "exited"
        return "unknown"

    async def aclose(self) -> None:
        """Pods outlive the scheduler: a new leader adopts them from the log."""
