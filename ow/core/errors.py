"""The exceptions `ow` raises. Adapters map library errors into these; none leak through.

    OWError
    ├── ConfigError
    ├── BusUnavailableError
    │   └── NoServiceError (nothing answers a request subject)
    ├── ValidationError(problems)
    ├── NotFoundError(kind, id)
    ├── ConflictError(key, expected_rev)
    ├── PermissionDeniedError
    ├── JobError
    │   ├── JobFailedError(job_id, run_id, error)
    │   └── JobCanceledError(job_id)
    └── WaitTimeoutError (also a TimeoutError)

Imports: stdlib and msgspec only.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "BusUnavailableError",
    "ConfigError",
    "ConflictError",
    "JobCanceledError",
    "JobError",
    "JobFailedError",
    "NoServiceError",
    "NotFoundError",
    "OWError",
    "PermissionDeniedError",
    "Problem",
    "ValidationError",
    "WaitTimeoutError",
]


class OWError(Exception):
    """Base of every error `ow` raises on purpose."""


class ConfigError(OWError):
    """A configuration value is missing or malformed; the message names the variable."""


class BusUnavailableError(OWError):
    """No usable NATS server at the configured URL."""


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
        super().__init__(f"conflict on {key} (expected revision {expected_rev}) {detail}".strip())


class PermissionDeniedError(OWError):
    """The server refused an operation to this connection's credentials (a token's scope)."""


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


class WaitTimeoutError(OWError, TimeoutError):
    """A wait ran out of time; the job itself goes on."""
