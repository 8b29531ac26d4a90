"""Organizations, tokens and their NATS accounts: the tenancy state and what it renders to.

Isolation is enforced by nats-server itself. Every org is a NATS account with its own
JetStream (so its own `OW_EVENTS`, KV buckets and object store), the `default` org too. The
zero-config default keeps its data in the global account `$G`, which cannot have JetStream
once accounts exist; turning accounts on (`ow up`, with its server stopped) moves that store
into the `default` account (`adopt_global_store`).
Every token `ow_<id>_<secret>` is a NATS user `<id>` in its org's account whose password is
the bcrypt hash of `<secret>` (nats-server verifies bcrypt itself, in constant time, so the
config file holds no secret) and whose publish/subscribe permissions are exactly its scope:

    read    subscribe; read ow's streams (message gets, ephemeral unnamed consumers); no
            publishing into ow.ev / ow.mx / ow.log, no KV writes, no secrets, no durable or
            named consumers, no pause/delete/pull of the dispatch consumer
    submit  read + job submission/cancel events, FileUploaded, object store writes
    worker  read + run/worker events, metrics, logs, heartbeats, claims (KV), file writes,
            the dispatch consumer (create, pull, ack; never delete or pause), the secrets
    job     (not a user scope) read ow's streams but no KV at all; metrics, logs,
            ArtifactUploaded, CheckpointSaved, FileUploaded and object store writes: what a
            job's own code needs, never a result or a claim
    admin   everything in the org's account

Which events each scope may publish is `events.PUBLISHED_BY`; tests/security/test_scopes.py
tries every JetStream API verb that matters against every scope.

Each org also has a control user (`ctl…`, admin scope), a workers user (`wrk…`, worker
scope) and a jobs user (`job…`, job scope) whose tokens live only in the state file: `ow up`
hands the control token to that org's scheduler; the local operator's CLI uses it when no
token is given. Agents that `ow up` or a scheduler starts get a worker credential of their
own instead of the workers token (`worker_env`, `ow.core.credentials`), and give their jobs
per-run credentials; the workers and jobs tokens remain for agents started by hand.

The auth callout (`ow.core.callout`) is rendered with the accounts: the `OW_AUTH` account
holds its service's user, and every token active when the server starts bypasses it
(`auth_users`, which nats-server cannot reload: `write_accounts` keeps the list a running
server has). The state keeps the callout's issuer seed and the credential key.

The state file (`<home>/tenancy.json`, mode 0600) is the operator's; it is rendered into
`<home>/nats/accounts.conf`, which the embedded server includes. With no org created, the
rendered file is empty: no accounts, no auth, exactly the zero-config default.

Pure functions (`render_accounts`, `permissions`, `check_token`) take `now`; the file
functions (`load`, `save`, `update`) are the only I/O. The token format, records and checks
are `ow.core.tokens`.

Imports: stdlib, msgspec and `ow.core` (codec, config, credentials, errors, events, ids,
nkeys, permissions, subjects, tokens).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from ow.core import codec, credentials, nkeys
from ow.core import events as ev
from ow.core.errors import ConfigError, OWError, TokenError
from ow.core.ids import uuid7
from ow.core.permissions import SECRETS_BUCKET, event_subjects, inbox_prefix, permissions
from ow.core.subjects import AUTH_ACCOUNT
from ow.core.tokens import (
    JOB_SCOPE,
    SCOPES,
    TokenRecord,
    fresh,
    hash_secret,
    mask,
    matches,
    new_token,
    parse_expires,
    parse_token,
    why_invalid,
)

__all__ = [
    "SCOPES",
    "OrgRecord",
    "TenancyState",
    "TokenError",
    "TokenRecord",
    "SECRETS_BUCKET",
    "check_token",
    "connect_options",
    "create_org",
    "create_token",
    "ensure_callout",
    "ensure_worker_token",
    "event_subjects",
    "inbox_prefix",
    "load",
    "mask",
    "open_server",
    "parse_expires",
    "parse_token",
    "permissions",
    "refused",
    "render_accounts",
    "revoke_token",
    "update",
    "job_token",
    "worker_env",
    "worker_token",
]

DEFAULT_ORG = "default"
GLOBAL_ACCOUNT = "$G"
STATE_FILE = "tenancy.json"
ACCOUNTS_FILE = "accounts.conf"  # next to the server's config (`<home>/nats/`)

_ORG_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class OrgRecord(msgspec.Struct, kw_only=True):
    name: str
    created: datetime
    control_token: str  # plaintext: only in the 0600 state file, never on the bus
    worker_token: str = ""  # the same; "" in state files older than it (ensure_worker_token)
    job_token: str = ""  # the same, job scope: what the jobs the agents start get
    announced: bool = False  # OrgCreated published


class TenancyState(msgspec.Struct, kw_only=True):
    orgs: dict[str, OrgRecord] = msgspec.field(default_factory=dict)
    tokens: dict[str, TokenRecord] = msgspec.field(default_factory=dict)
    #: events not yet on the bus (the server may be down when the CLI runs): [org, json]
    outbox: list[list[str]] = msgspec.field(default_factory=list)
    #: the auth callout (`ow.core.callout`): its issuer's nkey seed, the key that signs
    #: worker and run credentials (base64), and its service's own user (token and hash)
    callout_seed: str = ""
    cred_key: str = ""
    callout_token: str = ""
    callout_hash: str = ""

    @property
    def enabled(self) -> bool:
        """Whether auth is on: some org besides the default was created."""
        return any(name != DEFAULT_ORG for name in self.orgs)


# --- tokens checked against the state (pure; their format is `ow.core.tokens`) -----


def check_token(state: TenancyState, token: str, now: datetime) -> TokenRecord:
    """The record of a valid token; otherwise `TokenError` saying why (hash compared safely)."""
    tid, secret = parse_token(token)
    record = state.tokens.get(tid)
    if why := why_invalid(record, token, now):
        raise TokenError(why)
    assert record is not None
    if not matches(secret, record.hash):
        raise TokenError(f"token {mask(token)} is not valid (its secret part does not match)")
    return record


def active(state: TenancyState, now: datetime) -> list[TokenRecord]:
    """Tokens the server should accept now: not revoked, not expired, of a known org."""
    return [
        t for t in state.tokens.values()
        if t.org in state.orgs and not why_invalid(t, t.token_id, now)
    ]


# --- the accounts block (pure; the permissions are `ow.core.permissions`) -----------------

def _user(record: TokenRecord) -> str:
    perms = json.dumps(permissions(record.scope, record.org, record.token_id))
    return f"    {{user: {json.dumps(record.token_id)}, password: {json.dumps(record.hash)}, " \
        f"permissions: {perms}}}"


def render_accounts(
    state: TenancyState, now: datetime, static: list[str] | None = None,
) -> str:
    """The config text for the server: accounts and users of every active token, and the
    auth callout for worker and run credentials, which the users named in `static` bypass
    (None: every active token's; see `write_accounts`).

    Empty (a comment) when no org besides the default exists: no auth, as before tenancy.
    """
    head = "# rendered by ow.core.tenancy from tenancy.json: do not edit\n"
    if not state.enabled:
        return head
    by_org: dict[str, list[TokenRecord]] = {name: [] for name in state.orgs}
    for record in sorted(active(state, now), key=lambda r: r.token_id):
        by_org[record.org].append(record)
    text = head + "accounts {\n"
    for name in sorted(by_org):
        users = ",\n".join(_user(r) for r in by_org[name])
        text += (f"  {json.dumps(name)}: {{\n    jetstream: enabled\n"
                 f"    users: [\n{users}\n    ]\n  }}\n")
    if not state.callout_seed:
        return text + "}\n"
    tid = parse_token(state.callout_token)[0]
    text += (f"  {json.dumps(AUTH_ACCOUNT)}: {{\n    users: [\n      {{user: {json.dumps(tid)}, "
             f"password: {json.dumps(state.callout_hash)}}}\n    ]\n  }}\n}}\n")
    if static is None:
        static = [tid, *(r.token_id for users in by_org.values() for r in users)]
    return text + (
        f"authorization {{\n  auth_callout {{\n"
        f"    issuer: {json.dumps(nkeys.public_key(state.callout_seed))}\n"
        f"    account: {json.dumps(AUTH_ACCOUNT)}\n    auth_users: {json.dumps(static)}\n"
        "  }\n}\n")


def ensure_callout(state: TenancyState) -> bool:
    """Give the state its auth callout keys and service user if it has none; True if made."""
    if state.callout_seed:
        return False
    state.callout_seed = nkeys.new_seed(nkeys.ACCOUNT)
    state.cred_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    state.callout_token, _, secret = fresh("aut")
    state.callout_hash = hash_secret(secret)
    return True


def cred_key(state: TenancyState) -> bytes:
    """The key worker credentials derive from (b"" when the callout was never set up)."""
    return base64.urlsafe_b64decode(state.cred_key) if state.cred_key else b""


def worker_env(state: TenancyState, org: str, worker_id: str) -> dict[str, str]:
    """OW_TOKEN (a worker credential) and OW_WORKER_KEY for an agent that runs as
    `worker_id` in `org`; {} when this state has no callout keys or no such org."""
    if not state.cred_key or org not in state.orgs:
        return {}
    token, key = credentials.worker_credential(cred_key(state), org, worker_id)
    return {"OW_TOKEN": token, "OW_WORKER_KEY": base64.urlsafe_b64encode(key).decode()}


# --- operations on the state (pure) -----------------------------------------------------


def _control(state: TenancyState, org: str, now: datetime) -> None:
    token, record = new_token(org, "admin", now, None, name="control", control=True)
    state.tokens[record.token_id] = record
    state.orgs[org] = OrgRecord(name=org, created=now, control_token=token)
    ensure_worker_token(state, org, now)


def ensure_worker_token(state: TenancyState, org: str, now: datetime) -> bool:
    """Give `org` its built-in workers token (worker scope) and jobs token (job scope) if it
    has none; True if one was made."""
    record = state.orgs[org]
    made = False
    if not record.worker_token:
        token, tok = new_token(org, "worker", now, None, name="workers", control=True)
        state.tokens[tok.token_id] = tok
        record.worker_token, made = token, True
    if not record.job_token:
        token, tok = new_token(org, JOB_SCOPE, now, None, name="jobs", control=True)
        state.tokens[tok.token_id] = tok
        record.job_token, made = token, True
    return made


def _queue(state: TenancyState, org: str, event: ev.Event, now: datetime) -> None:
    """Keep an event for the bus (published by `ow` once the org's server answers)."""
    event = msgspec.structs.replace(event, event_id=uuid7(), ts=now, org=org, actor="cli")
    state.outbox.append([org, codec.encode(event).decode()])


def ensure_default(state: TenancyState, now: datetime) -> None:
    """The default org's record (its control user), so `ow up` can hand it out from the start."""
    if DEFAULT_ORG not in state.orgs:
        _control(state, DEFAULT_ORG, now)
    ensure_callout(state)


def create_org(state: TenancyState, name: str, now: datetime) -> OrgRecord:
    """Add an org (and the default org, whose data is the global account's)."""
    if not _ORG_NAME.match(name):
        raise ConfigError(
            f"bad org name {name!r}: use lowercase letters, digits, '-' and '_' (≤ 63)"
        )
    if name in state.orgs and name != DEFAULT_ORG:
        raise ConfigError(f"org {name!r} exists already")
    ensure_default(state, now)
    if name not in state.orgs:
        _control(state, name, now)
    _queue(state, name, ev.OrgCreated(name=name), now)
    return state.orgs[name]


def create_token(
    state: TenancyState, org: str, scope: str, now: datetime, expires: datetime | None,
    name: str = "",
) -> tuple[str, TokenRecord]:
    """A new token of `org` (printed once by the caller; only its hash is kept)."""
    if org not in state.orgs:
        raise ConfigError(f"no org {org!r}: create it first with `ow org create {org}`")
    token, record = new_token(org, scope, now, expires, name=name)
    state.tokens[record.token_id] = record
    created = ev.TokenCreated(token_id=record.token_id, hash=record.hash, scope=scope,
                              expires=expires)
    _queue(state, org, created, now)
    return token, record


def revoke_token(
    state: TenancyState, token_id: str, now: datetime, reason: str = ""
) -> TokenRecord:
    """Mark a token revoked (the next render drops its user; the reload disconnects it)."""
    if token_id.startswith("ow_"):
        token_id = parse_token(token_id)[0] if token_id.count("_") >= 2 else token_id[3:]
    record = state.tokens.get(token_id)
    if record is None or record.control:
        raise TokenError(f"token {mask(token_id)} is unknown: see `ow token ls`")
    if record.revoked_at is None:
        record.revoked_at, record.reason = now, reason
        _queue(state, record.org, ev.TokenRevoked(token_id=token_id, reason=reason), now)
    return record


def control_token(state: TenancyState, org: str) -> str:
    return state.orgs[org].control_token if org in state.orgs else ""


def job_token(state: TenancyState, org: str) -> str:
    """The org's built-in jobs token ("" if the org or the token does not exist)."""
    return state.orgs[org].job_token if org in state.orgs else ""


def worker_token(state: TenancyState, org: str) -> str:
    """The org's built-in workers token ("" if the org or the token does not exist)."""
    return state.orgs[org].worker_token if org in state.orgs else ""


# --- the state file (I/O) --------------------------------------------------------------

_enc = msgspec.json.Encoder()


def state_path(home: Path) -> Path:
    return Path(home).expanduser() / STATE_FILE


def load(home: Path) -> TenancyState:
    """The tenancy state in `home` (empty if there is none)."""
    path = state_path(home)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return TenancyState()
    return msgspec.json.decode(raw, type=TenancyState)


def save(home: Path, state: TenancyState) -> None:
    """Write the state atomically, readable by its owner only."""
    path = state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(_enc.encode(state))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def update(home: Path) -> Iterator[TenancyState]:
    """Load, let the caller change, and save the state under an exclusive file lock."""
    from ow.core.config import private_home

    home = private_home(Path(home).expanduser(), walk=False)
    fd = os.open(home / "tenancy.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        state = load(home)
        yield state
        save(home, state)
    finally:
        os.close(fd)


def _static_users(path: Path) -> list[str] | None:
    """The callout's `auth_users` in a rendered accounts file (None: it has none)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    m = re.search(r"^\s*auth_users: (\[.*\])$", text, re.M)
    return json.loads(m.group(1)) if m else None


def write_accounts(home: Path, state: TenancyState, now: datetime, fresh: bool = False) -> bool:
    """Render the accounts file next to the server's config; True if it changed.

    nats-server cannot reload the callout's `auth_users`: the users the running server let
    bypass the callout stay as the file names them (a token created since then connects
    through the callout, which checks it the same way; `ow.core.callout`). `fresh`, for a
    server about to start, names every active token."""
    path = Path(home).expanduser() / "nats" / ACCOUNTS_FILE
    text = render_accounts(state, now, None if fresh else _static_users(path))
    with contextlib.suppress(FileNotFoundError):
        if path.read_text() == text:
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # `ow up` and a CLI may write at once
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return True


def open_server(home: Path) -> bool:
    """Whether this machine's server runs without auth (`ow up` with no org but the default):
    whoever reaches it is its operator."""
    return state_path(home).exists() and not load(home).enabled


def accounts_on(home: Path) -> bool:
    """Whether the rendered accounts file (what the server was last given) has accounts."""
    path = Path(home).expanduser() / "nats" / ACCOUNTS_FILE
    return path.exists() and "accounts {" in path.read_text()


def adopt_global_store(js_dir: Path) -> bool:
    """Move the global account's JetStream store into the `default` account's.

    Only with the server stopped. The zero-config default wrote into `$G`; with accounts on,
    the default org is the `default` account, and `$G` cannot have JetStream.
    """
    src, dst = Path(js_dir) / "jetstream" / GLOBAL_ACCOUNT, Path(js_dir) / "jetstream" / DEFAULT_ORG
    if src.is_dir() and not dst.exists():
        src.rename(dst)
        return True
    return False


def include_line() -> str:
    """The line the server's config needs to take in the rendered accounts file."""
    return f'include "{ACCOUNTS_FILE}"\n'


# --- what the bus uses when connecting ------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def connect_options(token: str, org: str, home: Path | None = None) -> dict[str, Any]:
    """nats-py connect options for a token (user = id, password = secret).

    Without a token, the local operator (who can read `<home>/tenancy.json`) connects as
    the org's control user. A token this machine's state knows to be revoked or expired, or
    to be another org's, is refused here, before the server is asked.
    """
    if home is None:
        from ow.core.config import from_env

        home = from_env().home_path
    if not token:
        token = control_token(load(home), org) if state_path(home).exists() else ""
        if not token:
            return {}
    if credentials.is_credential(token):  # a worker's or a run's: the auth callout's
        return {"token": token, "inbox_prefix": inbox_prefix(
            credentials.inbox_id(credentials.parse(token)))}
    if not token.startswith("ow_"):
        return {"token": token}  # a plain NATS token (an operator's own server)
    tid, secret = parse_token(token)
    if state_path(home).exists():
        state = load(home)
        if tid in state.tokens and (why := why_invalid(state.tokens[tid], token, _now())):
            raise TokenError(why)
        if tid in state.tokens and (why := other_org(state.tokens[tid], token, org)):
            raise TokenError(why)
    return {"user": tid, "password": secret, "inbox_prefix": inbox_prefix(tid)}


def other_org(record: TokenRecord, token: str, org: str) -> str:
    """Why `token` cannot be used for `org` (it is another org's), or ''. Without this the
    server accepts it in its own org's account, where `org`'s subjects are empty: every
    list would come back `[]` and every write be refused, with no word of why."""
    if record.org == org or (org == DEFAULT_ORG and not record.org):
        return ""
    return (f"token {mask(token)} belongs to org {record.org!r}, not {org!r}: use "
            f"--org {record.org} (OW_ORG={record.org}) or a token of org {org!r}")


def refused(token: str, org: str, home: Path | None = None) -> OWError:
    """The error for a connection the server refused: why, if this machine knows."""
    if home is None:
        from ow.core.config import from_env

        home = from_env().home_path
    if not token:
        return TokenError(
            f"the server requires a token for org {org!r}: set OW_TOKEN (an ow_… token from "
            "`ow token create`)"
        )
    if token.startswith("ow_"):
        tid, _ = parse_token(token)
        state = load(home) if state_path(home).exists() else TenancyState()
        why = why_invalid(state.tokens.get(tid), token, _now())
        if why and (tid in state.tokens or state.orgs):  # this machine knows the server
            return TokenError(why)
    return TokenError(
        f"token {mask(token)} was refused by the server (unknown, expired or revoked)"
    )
