"""The exceptions `ow` raises. Adapters map library errors into these; none leak through.

    OWError
    ├── ConfigError
    ├── BusError
    │   ├── BusUnavailableError
    │   │   └── NoServiceError (nothing answers a request subject)
    │   ├── NotConnectedError (a component's bus used before it connected)
    │   └── WireError
    ├── ValidationError(problems)
    │   └── UnsafePathError (a path that would leave its destination)
    ├── NotFoundError(kind, id)
    ├── ConflictError(key, expected_rev)
    ├── PermissionDeniedError
    ├── TokenError
    ├── SecretError
    ├── StoreError
    ├── ApiError
    ├── UnsupportedError
    ├── DevPodError (`ow ssh`: the dev pod, its sshd or the sync failed)
    ├── ProviderError(provider, message)
    │   ├── NoCapacityError
    │   ├── QuotaError
    │   └── PodNotRecordedError(provider, pod_id)
    ├── ProjectionError
    │   ├── ProjectionLockedError(path, pid, exe)
    │   ├── QueryError (a query or parameter the read service does not know)
    │   └── ServiceBehindError (the read service has not folded that far in time)
    ├── JobError
    │   ├── JobFailedError(job_id, run_id, error)
    │   ├── JobCanceledError(job_id)
    │   └── UnschedulableError(job_id, reason)
    └── WaitTimeoutError (also a TimeoutError)

Every class lives here (the modules that raise some re-export them: `tenancy.TokenError`,
`bus.WireError`, `providers.ProviderError`, `projections.ProjectionError`), and each one is in
the drawing (a test reads it). `ow.cli.main` prints any of them as one line.

Imports: stdlib and msgspec only.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

__all__ = [
    "ApiError",
    "BusError",
    "BusUnavailableError",
    "ConfigError",
    "ConflictError",
    "DevPodError",
    "JobCanceledError",
    "JobError",
    "JobFailedError",
    "NoCapacityError",
    "NoServiceError",
    "NotConnectedError",
    "NotFoundError",
    "OWError",
    "PermissionDeniedError",
    "PodNotRecordedError",
    "Problem",
    "ProjectionError",
    "ProjectionLockedError",
    "ProviderError",
    "QueryError",
    "QuotaError",
    "SecretError",
    "ServiceBehindError",
    "StoreError",
    "TokenError",
    "UnschedulableError",
    "UnsupportedError",
    "UnsafePathError",
    "ValidationError",
    "WaitTimeoutError",
    "WireError",
]


class OWError(Exception):
    """Base of every error `ow` raises on purpose."""


class ConfigError(OWError):
    """A configuration value is missing or malformed; the message names the variable."""


class BusError(OWError):
    """The NATS server failed or refused a request (the message has its code)."""


class BusUnavailableError(BusError):
    """No usable NATS server at the configured URL."""


class NotConnectedError(BusError):
    """A component's bus (or blob store) asked for before the component connected it."""


class WireError(BusError):
    """The server refused the bulk reader's connection or broke the protocol (`bus/_wire.py`)."""


class NoServiceError(BusUnavailableError):
    """NATS is up but no service answers the request's subject ("no responders")."""


class Problem(msgspec.Struct, frozen=True):
    """One validation failure: where (file, line) and which rule it broke."""

    file: str
    line: int
    rule: str

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}line {self.line}: {self.rule}" if self.line else f"{where}{self.rule}"


class ValidationError(OWError, ValueError):
    """Input was rejected before anything was published; `problems` lists every reason."""

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem("", 0, problems)]
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} problem(s), nothing was uploaded:\n{shown}{more}")


class UnsafePathError(ValidationError):
    """A path from a job or an upload that would not stay inside its destination (a
    `ValidationError` whose message is the one problem: it is raised at download too)."""

    def __init__(self, message: str):
        self.problems = [Problem("", 0, message)]
        OWError.__init__(self, message)


class NotFoundError(OWError, KeyError):
    """No such job, file, run or worker (in this org)."""

    def __init__(self, kind: str, id: str, hint: str = ""):
        self.kind, self.id = kind, id
        msg = f"{kind} {id!r} not found"
        super().__init__(f"{msg} — {hint}" if hint else msg)

    def __str__(self) -> str:
        return str(self.args[0])


class ConflictError(OWError):
    """An optimistic write lost: the subject or key moved past the expected revision."""

    def __init__(self, key: str, expected_rev: int | None, detail: str = ""):
        self.key, self.expected_rev = key, expected_rev
        rev = "" if expected_rev is None else f" (expected revision {expected_rev})"
        super().__init__(f"conflict on {key}{rev} {detail}".strip())


class PermissionDeniedError(OWError):
    """The server refused an operation to this connection's credentials (a token's scope)."""


class TokenError(OWError):
    """A token is malformed, unknown, expired or revoked; the message says which."""


class SecretError(OWError):
    """A stored secret cannot be decrypted with this key; the message says which key to set."""


class StoreError(OWError):
    """The blob store (NATS object store or S3) failed, or holds a corrupt object."""


class ApiError(OWError):
    """A deployed model's HTTP API answered with an error or cannot be reached."""


class UnsupportedError(OWError):
    """The operation does not apply here (this worker, this build); the message says why."""


class DevPodError(OWError):
    """`ow ssh`'s dev pod did not come up, or ssh/rsync to it failed; the message says which."""


class ProviderError(OWError):
    """A provider call failed; the message is the provider's own text (never a credential)."""

    kind = "error"

    def __init__(self, provider: str, message: str):
        self.provider = provider
        self.message = message
        super().__init__(f"{provider}: {message}")


class NoCapacityError(ProviderError):
    """The provider has no machine of that kind right now (try later or other hardware)."""

    kind = "no_capacity"


class QuotaError(ProviderError):
    """The account hit a spending or resource limit, or its credentials were refused."""

    kind = "quota"


class PodNotRecordedError(ProviderError):
    """Refused: terminating a pod this provider never recorded (it may be someone else's)."""

    kind = "not_recorded"

    def __init__(self, provider: str, pod_id: str):
        self.pod_id = pod_id
        super().__init__(
            provider,
            f"refusing to terminate pod {pod_id!r}: it was never recorded in WorkerProvisioned "
            "by this provider (it may belong to someone else)",
        )


class ProjectionError(OWError):
    """DuckDB failed while reading or writing a projection."""


class ProjectionLockedError(ProjectionError):
    """Another process owns the projection file."""

    def __init__(self, path: Path, pid: int | None, exe: str):
        self.path, self.pid = path, pid
        who = f"process {pid} ({exe})" if pid else "another process"
        super().__init__(
            f"projection {path} is in use by {who}. DuckDB allows one writer per file: stop "
            f"that process (kill {pid}), or point this one at another file (--db PATH)."
            if pid else f"projection {path} is locked by {who}; stop it or use --db PATH."
        )


class QueryError(ProjectionError):
    """A query named something that is not a query, or a parameter it does not take."""


class ServiceBehindError(ProjectionError):
    """The read service has not folded up to the positions asked for in time."""


class JobError(OWError):
    """A job ended without completing."""


class JobFailedError(JobError):
    def __init__(self, job_id: str, run_id: str, error: str):
        self.job_id, self.run_id, self.error = job_id, run_id, error
        super().__init__(f"job {job_id} failed (run {run_id}): {error}")


class JobCanceledError(JobError):
    def __init__(self, job_id: str):
        self.job_id = job_id
        super().__init__(f"job {job_id} was canceled")


class UnschedulableError(JobError):
    """Nothing here can ever run the job as asked (the scheduler's notice says what to do).
    The job stays pending: cancel it, or change what it asks for and submit again."""

    def __init__(self, job_id: str, reason: str):
        self.job_id, self.reason = job_id, reason
        super().__init__(f"job {job_id} cannot run here: {reason}")


class WaitTimeoutError(OWError, TimeoutError):
    """A wait ran out of time; the job itself goes on."""
