"""The auth callout's decision: an authorization request in, a signed response out.

nats-server (config mode, `authorization { auth_callout { … } }` as `ow.core.tenancy`
renders it) asks for every connection whose user is not one of the static users it was
started with (`auth_users`: the tokens that existed then, which behave as before). The
request is a JWT the server signed, carrying the client's connect options and the user nkey
the server made for this connection; the answer is a JWT signed by the callout's issuer key
with, inside, a user JWT for that nkey: the org account to place it in (`aud`, config mode)
and its permissions. Two kinds of client come here:

- a worker's or a run's credential (`ow.core.credentials`): the worker scope with its bound
  events under its own worker id, or `permissions.run_permissions` until the run
  credential expires;
- an `ow_` token created since the server started (nats-server cannot reload
  `auth_users`): checked as `tenancy.check_token` checks it, given its scope's permissions,
  for `TOKEN_JWT_TTL_S` at most (so a revocation ends its connections by then).

Anything else gets an error response, and the server refuses the connection.

Pure: `authorize(request, state, now)`. The service that subscribes to the callout subject
is `ow.core.authsvc`.

Imports: stdlib and `ow.core` (credentials, errors, ids, nkeys, permissions, subjects,
tenancy, tokens).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ow.core import credentials, nkeys
from ow.core.errors import TokenError
from ow.core.ids import encode_token
from ow.core.permissions import permissions, run_permissions
from ow.core.subjects import AUTH_ACCOUNT, CALLOUT_SUBJECT
from ow.core.tenancy import TenancyState, check_token, cred_key
from ow.core.tokens import mask

__all__ = ["AUTH_ACCOUNT", "CALLOUT_SUBJECT", "TOKEN_JWT_TTL_S", "authorize",
           "user_permissions"]

TOKEN_JWT_TTL_S = 600  # a token checked here is checked again after this (a reconnect)
_NO_LIMIT = -1


def user_permissions(cred: credentials.Credential) -> dict[str, Any]:
    """The NATS permissions of a verified credential (`ow.core.permissions`' shape)."""
    sender = encode_token(cred.worker_id)
    if cred.kind == "run":
        return run_permissions(cred.org, cred.job_id, cred.run_id, sender, cred.files)
    return permissions("worker", cred.org, credentials.inbox_id(cred), sender=sender)


def _response(request: dict[str, Any], issuer_seed: str, now: int, *, jwt: str = "",
              error: str = "") -> str:
    nats = request.get("nats", {})
    body: dict[str, Any] = {"sub": nats.get("user_nkey", ""),
                            "aud": nats.get("server_id", {}).get("id", ""),
                            "nats": {"type": "authorization_response", "version": 2}}
    if jwt:
        body["nats"]["jwt"] = jwt
    else:
        body["nats"]["error"] = error
    return nkeys.encode_jwt(body, issuer_seed, now)


def _static_token(state: TenancyState, opts: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The user JWT body for an `ow_` token (user/password) that is valid now: its scope's
    permissions (`ow.core.permissions`), as a static user of the server would have, until
    `TOKEN_JWT_TTL_S` (a revocation takes effect by then) or the token's expiry."""
    token = f"ow_{opts.get('user', '')}_{opts.get('pass', '')}"
    record = check_token(state, token, now)
    if record.org not in state.orgs:
        raise TokenError(f"token {mask(token)} is of org {record.org!r}, which does not exist")
    perms = permissions(record.scope, record.org, record.token_id)
    expires = int(now.timestamp() + TOKEN_JWT_TTL_S)
    if record.expires is not None:
        expires = min(expires, int(record.expires.timestamp()))
    return {"aud": record.org, "name": record.token_id, "exp": expires,
            "nats": _user_nats(perms)}


def _credential(state: TenancyState, opts: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The user JWT body for a worker's or a run's credential (`ow.core.credentials`)."""
    cred = credentials.verify(cred_key(state), str(opts.get("auth_token", "")),
                              int(now.timestamp()))
    if cred.org not in state.orgs:
        raise TokenError(f"org {cred.org!r} does not exist (any more)")
    body: dict[str, Any] = {"aud": cred.org, "name": f"{cred.kind}:{cred.worker_id}",
                            "nats": _user_nats(user_permissions(cred))}
    if cred.expires:
        body["exp"] = cred.expires  # the server disconnects it then
    return body


def _user_nats(perms: dict[str, Any]) -> dict[str, Any]:
    pub, sub = perms["publish"], perms["subscribe"]
    return {"pub": {k: pub[k] for k in ("allow", "deny") if pub.get(k)},
            "sub": {k: sub[k] for k in ("allow", "deny") if sub.get(k)},
            "subs": _NO_LIMIT, "data": _NO_LIMIT, "payload": _NO_LIMIT,
            "type": "user", "version": 2}


def authorize(request_jwt: bytes, state: TenancyState, now: datetime) -> tuple[str, str]:
    """The signed response to one authorization request, and what was decided (for the
    service's log: never a secret).

    A request that is not a server-signed JWT gets no answer worth signing: `TokenError`."""
    request = nkeys.decode_jwt(request_jwt.decode(), nkeys.SERVER)
    nats = request.get("nats", {})
    user_nkey = str(nats.get("user_nkey", ""))
    nkeys.decode_public(user_nkey, nkeys.USER)
    opts = nats.get("connect_opts", {})
    t = int(now.timestamp())
    try:
        body = (_credential if credentials.is_credential(str(opts.get("auth_token", "")))
                else _static_token)(state, opts, now)
    except TokenError as exc:
        return _response(request, state.callout_seed, t, error=str(exc)), f"refused: {exc}"
    jwt = nkeys.encode_jwt({**body, "sub": user_nkey}, state.callout_seed, t)
    return (_response(request, state.callout_seed, t, jwt=jwt),
            f"allowed {body['name']} in {body['aud']}")
