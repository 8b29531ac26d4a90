"""Org secrets (`ow env set NAME`): Fernet ciphertext in the org's KV bucket `ow_secrets`.

The master key is `OW_SECRET_KEY` or the key file `<home>/secret.key` (created 0600 on
first use); it is never on the bus. Each org's Fernet key is derived from it
(HMAC-SHA256(master, org)), so a key handed to one org's workers opens no other org's
secrets: a scheduler gives the workers it starts that org key (`OW_ORG_SECRET_KEY`,
`org_key`), never the master key. The value lives only as ciphertext in the org's own
account (a separate NATS account per org: no other org can read the bucket; `read`/`submit`
tokens are denied it too); `SecretSet{name}` events carry the name only. The agent decrypts
the secrets into the job's environment (`job_env`) and nowhere else.

Imports: stdlib, `ow.core` (blobs, bus, config, errors, events, tenancy); cryptography lazily.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from ow.core import credentials, defaults, subjects
from ow.core import events as ev
from ow.core.blobs import BlobStore, NatsObjectStore
from ow.core.bus import Bus, KvBucket, mapped
from ow.core.config import Config
from ow.core.errors import ConfigError, NotFoundError, OWError, SecretError
from ow.core.tenancy import SECRETS_BUCKET

__all__ = ["SECRETS_BUCKET", "derive", "ensure_key", "job_env", "load", "master_key", "names",
           "org_key", "remove", "set_secret"]

log = logging.getLogger(__name__)

KEY_FILE = "secret.key"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def master_key(config: Config) -> bytes | None:
    """`OW_SECRET_KEY`, else the key file in the ow home, else None."""
    if config.secret_key:
        return config.secret_key.encode()
    path = config.home_path / KEY_FILE
    return path.read_bytes().strip() if path.exists() else None


def ensure_key(config: Config) -> bytes:
    """The master key, creating the key file (mode 0600) if there is none."""
    key = master_key(config)
    if key:
        return key
    from cryptography.fernet import Fernet

    from ow.core.config import private_home

    path = private_home(config.home_path, walk=False) / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it a moment ago
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(Fernet.generate_key())
    return path.read_bytes().strip()


def derive(master: bytes, org: str) -> bytes:
    """`org`'s Fernet key (urlsafe base64) from the master key."""
    derived = hmac.new(master, b"ow-secrets:" + org.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(derived)


def org_key(config: Config, org: str) -> bytes | None:
    """The key of `org`'s secrets: derived from the master key if this machine has it, else
    `OW_ORG_SECRET_KEY` (a remote worker's); None if neither."""
    master = master_key(config)
    if master is not None:
        return derive(master, org)
    return config.org_secret_key.encode() or None


def _fernet(master: bytes, org: str) -> Any:
    from cryptography.fernet import Fernet

    return Fernet(derive(master, org))


def check_name(name: str) -> str:
    if not _NAME.match(name) or name.upper().startswith("OW_"):
        raise ConfigError(
            f"bad secret name {name!r}: use an environment variable name (letters, digits, "
            "'_'), not starting with OW_"
        )
    return name


async def _bucket(bus: Bus, create: bool = False) -> KvBucket:
    return await bus.kv(SECRETS_BUCKET, create=create, history=1)


async def set_secret(bus: Bus, master: bytes, name: str, value: str) -> None:
    """Store `value` encrypted under `name` for the bus's org; publish `SecretSet{name}`."""
    check_name(name)
    if not value:
        raise ConfigError(f"secret {name} is empty: give a value on stdin or at the prompt")
    store = await _bucket(bus, create=True)
    token = _fernet(master, bus.org).encrypt(value.encode())
    with mapped("kv put", name):
        await store.put(name, token)
    await bus.publish(ev.SecretSet(name=name))


async def names(bus: Bus) -> list[str]:
    """Names of the org's secrets (never values)."""
    try:
        return sorted(await bus.kv_keys(SECRETS_BUCKET))
    except NotFoundError:
        return []


async def remove(bus: Bus, name: str) -> bool:
    """Delete a secret; False if there was none."""
    if check_name(name) not in await names(bus):
        return False
    store = await _bucket(bus)
    with mapped("kv delete", name):
        await store.purge(name)
    await bus.publish(ev.SecretSet(name=name, removed=True))
    return True


async def load(bus: Bus, key: bytes) -> dict[str, str]:
    """Every secret of the org, decrypted with its `org_key` (for the job's environment only)."""
    from cryptography.fernet import Fernet, InvalidToken

    fernet = Fernet(key)
    out: dict[str, str] = {}
    for name in await names(bus):
        entry = await bus.kv_get(SECRETS_BUCKET, name)
        if entry is None:
            continue
        try:
            out[name] = fernet.decrypt(entry.value).decode()
        except InvalidToken:
            raise SecretError(
                f"secret {name} cannot be decrypted with this key: OW_SECRET_KEY (or "
                "<home>/secret.key, or the OW_ORG_SECRET_KEY derived from it) differs from the "
                "one that set it"
            ) from None
    return out


async def job_env(
    bus: Bus, config: Config, *, job_id: str = "", run_id: str = "", timeout_s: float = 0,
    files: dict[str, str] | None = None, checkpoint: tuple[int, str] | None = None,
) -> dict[str, str]:
    """What a job adds to its environment: the org's secrets and the token to call back:
    a credential for its run alone when this worker has a worker credential and key
    (`run_token`), else the org's job token."""
    env: dict[str, str] = {}
    key = org_key(config, bus.org)
    if key is not None:
        try:
            env.update(await load(bus, key))
        except (OWError, ValueError) as exc:  # the job runs without them; its error will say
            log.error("org=%s: secrets not loaded: %s", bus.org, exc)
    elif await names(bus):
        log.warning("org=%s has secrets but this worker has no key: set OW_SECRET_KEY or "
                    "OW_ORG_SECRET_KEY", bus.org)
    # the job credential (job scope), never this worker's own token: a job's code may log
    # metrics and upload files, not publish results or take claims (issue 15, finding 2)
    token = run_token(config, job_id, run_id, timeout_s, files=files, checkpoint=checkpoint) \
        or config.job_token \
        or _local_job_token(config, bus.org)
    if token:
        env["OW_TOKEN"] = token
    elif config.token:
        log.warning("org=%s: no job credential (OW_JOB_TOKEN) for this worker's jobs: they run "
                    "without a token and cannot call back", bus.org)
    return env


def run_token(
    config: Config, job_id: str, run_id: str, timeout_s: float = 0, *,
    files: dict[str, str] | None = None, checkpoint: tuple[int, str] | None = None,
) -> str:
    """A credential for one run, signed with this worker's key ('' without one). A job with
    a timeout gets one that expires after it (at least `defaults.RUN_CREDENTIAL_TTL_S`:
    an API deployment's timeout is extended while it runs), plus a grace; a job without a
    timeout (a long fine-tune) one that does not expire."""
    if not (config.worker_key and run_id and credentials.is_credential(config.token)):
        return ""
    expires = 0
    if timeout_s > 0:
        ttl = max(timeout_s, defaults.RUN_CREDENTIAL_TTL_S)
        expires = int(time.time() + ttl + defaults.RUN_CREDENTIAL_GRACE_S)
    key = base64.urlsafe_b64decode(config.worker_key)
    return credentials.run_credential(key, config.token, job_id, run_id, expires,
                                      files=files, checkpoint=checkpoint)


async def readable_files(blobs: BlobStore, org: str, spec: ev.JobSubmitted,
                         checkpoint: tuple[int, str] | None) -> dict[str, str]:
    """The files a run of `spec` may read (`credentials.job_files`), each with its object's
    nuid in the NATS object store ('' in another store, or for a file not there: its
    download fails on its own), for its credential."""
    out = {}
    for file_id in credentials.job_files(spec, checkpoint):
        nuid = ""
        if isinstance(blobs, NatsObjectStore):
            with contextlib.suppress(OWError):
                nuid = await blobs.nuid(subjects.file_key(org, file_id))
        out[file_id] = nuid
    return out


def _local_job_token(config: Config, org: str) -> str:
    from ow.core import tenancy

    home = Path(config.home_path)
    return tenancy.job_token(tenancy.load(home), org) if tenancy.state_path(home).exists() \
        else ""
