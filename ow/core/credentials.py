"""Per-worker and per-run credentials: what the auth callout turns into NATS permissions.

A credential is `owc_<claims>.<mac>`: the claims (kind, org, worker id and, for a run, its
job and run ids and an expiry) as base64url JSON, and an HMAC-SHA256 of them under the
worker's key. The worker's key is HMAC(cred key, org, worker id), the cred key being the
operator's (in `<home>/tenancy.json`, never on the bus). So:

- whoever starts an agent (`ow up`, a scheduler's provider) holds the cred key and hands
  that agent its worker credential and its worker key (`OW_TOKEN`, `OW_WORKER_KEY`), for
  its worker id only;
- the agent signs, with its worker key, one run credential per run it holds the claim of,
  and gives it to that run's job as `OW_TOKEN` (the job never sees the worker key);
- the callout service recomputes the worker key from the claims and checks the MAC: a
  worker cannot speak for another worker, a job for another run.

The identity a credential publishes results under (`sender_of`) is its worker id as a
subject token; the server allows a bound event only on a subject ending in it (see
`ow.core.permissions`), and the decoder reads it from there (`ow.core.codec.bind`).

Pure functions (`now` passed in). Imports: stdlib, msgspec, `ow.core` (errors, ids).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import TYPE_CHECKING, Any

import msgspec

from ow.core.errors import TokenError
from ow.core.ids import encode_token

if TYPE_CHECKING:
    from ow.core.events import JobSubmitted

__all__ = ["PREFIX", "Credential", "inbox_id", "is_credential", "mint", "parse", "run_credential",
           "job_files", "run_of", "sender_of", "verify", "worker_credential", "worker_key"]

PREFIX = "owc_"
KINDS = ("worker", "run")


class Credential(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a credential says (its MAC proves who signed it)."""

    kind: str  # worker | run
    org: str
    worker_id: str
    job_id: str = ""
    run_id: str = ""
    expires: int = 0  # unix seconds; 0: never (a worker's lives as long as the cred key)
    #: a run's: the files its job may read (file id -> object store nuid, '' elsewhere)
    files: dict[str, str] = msgspec.field(default_factory=dict)
    #: a run's: (step, file id) of its job's last checkpoint when the run started
    checkpoint: tuple[int, str] | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def worker_key(cred_key: bytes, org: str, worker_id: str) -> bytes:
    """The key one worker signs with (derived: the operator's cred key never leaves it)."""
    return hmac.new(cred_key, f"ow-worker\0{org}\0{worker_id}".encode(), hashlib.sha256).digest()


def mint(key: bytes, cred: Credential) -> str:
    """The credential text of `cred`, signed with `key` (the worker's key)."""
    body = msgspec.json.encode(cred)
    return f"{PREFIX}{_b64(body)}.{_b64(hmac.new(key, body, hashlib.sha256).digest())}"


def worker_credential(cred_key: bytes, org: str, worker_id: str) -> tuple[str, bytes]:
    """(credential, worker key) for an agent that runs as `worker_id` in `org`."""
    key = worker_key(cred_key, org, worker_id)
    return mint(key, Credential(kind="worker", org=org, worker_id=worker_id)), key


def run_credential(
    key: bytes, worker: str, job_id: str, run_id: str, expires: int, *,
    files: dict[str, str] | None = None, checkpoint: tuple[int, str] | None = None,
) -> str:
    """The credential a worker gives the job of one run it holds (`worker`: its own worker
    credential, whose org and worker id the run's credential inherits). `files`: the files
    the job may read (`job_files`), each with its object's nuid in the NATS object store
    (the chunks it may read; '' in S3), and the job's last checkpoint."""
    w = parse(worker)
    return mint(key, Credential(kind="run", org=w.org, worker_id=w.worker_id, job_id=job_id,
                                run_id=run_id, expires=expires, files=dict(files or {}),
                                checkpoint=checkpoint))


def run_of(token: str) -> Credential | None:
    """What a run's credential says (unverified: its holder reads its own claims), or None
    for any other token. The SDK inside a job asks it which reads its credential allows."""
    if not is_credential(token):
        return None
    try:
        cred = parse(token)
    except TokenError:
        return None
    return cred if cred.kind == "run" else None


_FILE_ID = re.compile(r"^[A-Za-z0-9_.-]+:file-[0-9a-f]{12}$")


def job_files(spec: JobSubmitted, checkpoint: tuple[int, str] | None = None) -> list[str]:
    """The files a job's spec names, which its run's credential may read: its mounted files,
    its model and every params value (nested too) that is a file id, and the checkpoint it
    resumes from. Computed by the agent when it mints the credential: it holds the spec."""
    found: list[str] = [*spec.mounted_files.values()]

    def walk(value: Any) -> None:
        if isinstance(value, str) and _FILE_ID.match(value):
            found.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk([spec.model, spec.params])
    if checkpoint is not None:
        found.append(checkpoint[1])
    return list(dict.fromkeys(found))


def is_credential(token: str) -> bool:
    return token.startswith(PREFIX)


def parse(token: str) -> Credential:
    """What a credential claims, unverified (`verify` checks it); `TokenError` if malformed."""
    body, _, _mac = token.removeprefix(PREFIX).partition(".")
    try:
        cred = msgspec.json.decode(_unb64(body), type=Credential)
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise TokenError("credential is malformed: an ow credential looks like owc_<claims>."
                         "<mac> (check OW_TOKEN)") from exc
    if not is_credential(token) or cred.kind not in KINDS or not cred.worker_id:
        raise TokenError(f"credential of kind {cred.kind!r} is not one ow issues")
    return cred


def verify(cred_key: bytes, token: str, now: int) -> Credential:
    """The claims of a credential signed for its worker under `cred_key`, not expired;
    `TokenError` saying why otherwise (the MAC compared in constant time)."""
    cred = parse(token)
    body, _, mac = token.removeprefix(PREFIX).partition(".")
    want = hmac.new(worker_key(cred_key, cred.org, cred.worker_id), _unb64(body),
                    hashlib.sha256).digest()
    try:
        given = _unb64(mac)
    except ValueError:
        given = b""
    if not hmac.compare_digest(want, given):
        raise TokenError(f"{cred.kind} credential of worker {cred.worker_id!r} is not valid "
                         "(its signature does not match)")
    if cred.expires and cred.expires <= now:
        raise TokenError(f"run credential of {cred.run_id!r} expired")
    return cred


def inbox_id(cred: Credential) -> str:
    """The token of a credential's reply inboxes (`permissions.inbox_prefix`): a run's
    are not its worker's, so a job never sees the replies its agent gets."""
    return encode_token(cred.run_id if cred.kind == "run" else cred.worker_id)


def sender_of(token: str) -> str:
    """The identity a connection with `token` publishes bound events under: a credential's
    worker id as a subject token; '' for anything else (static tokens publish unbound
    events, as before per-worker credentials)."""
    if not is_credential(token):
        return ""
    try:
        return encode_token(parse(token).worker_id)
    except TokenError:
        return ""
