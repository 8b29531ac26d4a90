"""`FakeRunPod`: the stand-in for RunPod in tests (no API key, no network, no money).

It is the real `RunPodProvider` driven by `FakeRunPodAPI`, an in-memory copy of the few
`runpod` functions the provider calls (`create_pod`, `terminate_pod`, `get_pod`), raising
the same kinds of errors with RunPod's texts. A pod created with `ports="22/tcp"` reports
`public_ssh` (host, port) as its public ssh port in `get_pod()["runtime"]`, as RunPod does
once the pod runs; a test points it at a real local sshd standing in for the pod's. The
fake account also holds pods of other people (`foreign`), which the provider must never
touch; `get_pods` exists only so a test can prove nothing calls it. It passes the provider
contract suite (tests/contracts).

Imports: stdlib and `ow.scheduler`.
"""

from __future__ import annotations

import itertools
from typing import Any

from ow.scheduler.hardware import GPU_TABLE, Hardware
from ow.scheduler.providers.runpod import RunPodProvider

__all__ = ["NO_CAPACITY", "QUOTA", "FakeRunPod", "FakeRunPodAPI", "QueryError"]

NO_CAPACITY = (
    "There are no longer any instances available with the requested specifications. "
    "Please refresh and try again."
)
QUOTA = "You have reached your spend limit; add funds to your balance."


class QueryError(Exception):
    """Like `runpod.error.QueryError`: a GraphQL error with RunPod's message."""


class FakeRunPodAPI:
    """In-memory RunPod account: pods by id, injectable errors, and other people's pods."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.pods: dict[str, dict[str, Any]] = {}
        self.foreign = {
            f"other-{i}": {"id": f"other-{i}", "name": f"someone-else-{i}",
                           "desiredStatus": "RUNNING"}
            for i in (1, 2)
        }
        self.errors: list[str] = []  # raised by the next create_pod calls, in order
        self.calls: list[str] = []
        self.public_ssh: tuple[str, int] | None = None  # what a pod's port 22 maps to

    def fail_next(self, message: str = NO_CAPACITY, times: int = 1) -> None:
        self.errors.extend([message] * times)

    def create_pod(self, name: str, image_name: str = "", **kwargs: Any) -> dict[str, Any]:
        self.calls.append("create_pod")
        if self.errors:
            raise QueryError(self.errors.pop(0))
        pod_id = f"fake{next(self._ids):04d}"
        self.pods[pod_id] = {
            "id": pod_id, "name": name, "imageName": image_name, "desiredStatus": "RUNNING",
            "env": kwargs.get("env", {}), "gpuTypeId": kwargs.get("gpu_type_id"),
            "gpuCount": kwargs.get("gpu_count"), "ports": kwargs.get("ports") or "",
        }
        return {"id": pod_id, "imageName": image_name, "machineId": "m-1"}

    def _find(self, pod_id: str) -> dict[str, Any] | None:
        return self.pods.get(pod_id) or self.foreign.get(pod_id)

    def terminate_pod(self, pod_id: str) -> None:
        self.calls.append("terminate_pod")
        pod = self._find(pod_id)
        if pod is None:
            raise QueryError(f"Pod {pod_id} not found")
        pod["desiredStatus"] = "TERMINATED"

    def get_pod(self, pod_id: str, api_key: str | None = None) -> dict[str, Any] | None:
        self.calls.append("get_pod")
        pod = self._find(pod_id)
        if pod is None or pod["desiredStatus"] != "RUNNING":
            return pod
        return {**pod, "runtime": self._runtime(pod)}

    def _runtime(self, pod: dict[str, Any]) -> dict[str, Any] | None:
        """RunPod's `runtime` (None until the pod's ports are up)."""
        if "22/tcp" not in pod.get("ports", "").split(",") or self.public_ssh is None:
            return None
        host, port = self.public_ssh
        return {"ports": [{"ip": host, "isIpPublic": True, "privatePort": 22,
                           "publicPort": port, "type": "tcp"}]}

    def get_pods(self) -> list[dict[str, Any]]:
        """Lists the whole account, other people included; the provider never calls it."""
        self.calls.append("get_pods")
        return [*self.pods.values(), *self.foreign.values()]

    def running(self) -> list[str]:
        return [p for p, pod in self.pods.items() if pod["desiredStatus"] == "RUNNING"]


class FakeRunPod(RunPodProvider):
    """The RunPod provider over a `FakeRunPodAPI` (same interface and rules as the real one)."""

    def __init__(
        self, api: FakeRunPodAPI | None = None, *, offers: tuple[Hardware, ...] = GPU_TABLE
    ):
        self.api = api or FakeRunPodAPI()
        super().__init__("fake-key", client=self.api, offers=offers)

    def fail_next(self, message: str = NO_CAPACITY, times: int = 1) -> None:
        self.api.fail_next(message, times)
