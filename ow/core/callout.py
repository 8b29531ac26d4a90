"""The auth callout's decision: an authorization request in, a signed response out.

nats-server (config mode, `authorization { auth_callout { … } }` as `ow.core.tenancy`
renders it) asks for every connection whose user is not one of the static users it knows
(the tokens of `ow token`, the orgs' control/workers/jobs users, which behave as before).
The request is a JWT the server signed, carrying the client's connect options and the user
nkey the server made for this connection; the answer is a JWT signed by the callout's
issuer key with, inside, a user JWT for that nkey: the org account to place it in (`aud`,
config mode) and its permissions. ow answers only its own credentials
(`ow.core.credentials`): a worker's (the worker scope, its bound events under its own worker
id) and a run's (`permissions.run_permissions`, until the run credential expires); anything
else gets an error response, and the server refuses the connection.

Pure: `authorize(request, issuer_seed, cred_key, now)`. The service that subscribes to the
callout subject is `ow.core.authsvc`.

Imports: stdlib and `ow.core` (credentials, errors, ids, nkeys, permissions).
"""

from __future__ import annotations

from typing import Any

from ow.core import credentials, nkeys
from ow.core.errors import TokenError
from ow.core.ids import encode_token
from ow.core.permissions import permissions, run_permissions

__all__ = ["AUTH_ACCOUNT", "CALLOUT_SUBJECT", "authorize", "user_permissions"]

CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH"
AUTH_ACCOUNT = "OW_AUTH"  # uppercase: never an org name (`tenancy._ORG_NAME`)
_NO_LIMIT = -1


def user_permissions(cred: credentials.Credential) -> dict[str, Any]:
    """The NATS permissions of a verified credential, in the user JWT's shape."""
    sender = encode_token(cred.worker_id)
    if cred.kind == "run":
        perms = run_permissions(cred.org, cred.job_id, cred.run_id, sender)
    else:
        perms = permissions("worker", cred.org, credentials.inbox_id(cred), sender=sender)
    pub, sub = perms["publish"], perms["subscribe"]
    return {"pub": {k: pub[k] for k in ("allow", "deny") if pub.get(k)},
            "sub": {k: sub[k] for k in ("allow", "deny") if sub.get(k)}}


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


def authorize(
    request_jwt: bytes, issuer_seed: str, cred_key: bytes, orgs: frozenset[str], now: int,
) -> tuple[str, str]:
    """The signed response to one authorization request, and what was decided (for the
    service's log: never the credential itself).

    A request that is not a server-signed JWT gets no answer worth signing: `TokenError`."""
    request = nkeys.decode_jwt(request_jwt.decode(), nkeys.SERVER)
    nats = request.get("nats", {})
    user_nkey = str(nats.get("user_nkey", ""))
    nkeys.decode_public(user_nkey, nkeys.USER)
    token = str(nats.get("connect_opts", {}).get("auth_token", ""))
    try:
        cred = credentials.verify(cred_key, token, now)
        if cred.org not in orgs:
            raise TokenError(f"org {cred.org!r} does not exist (any more)")
    except TokenError as exc:
        return _response(request, issuer_seed, now, error=str(exc)), f"refused: {exc}"
    user: dict[str, Any] = {
        "sub": user_nkey, "aud": cred.org, "name": f"{cred.kind}:{cred.worker_id}",
        "nats": {**user_permissions(cred), "subs": _NO_LIMIT, "data": _NO_LIMIT,
                 "payload": _NO_LIMIT, "type": "user", "version": 2},
    }
    if cred.expires:
        user["exp"] = cred.expires  # the server disconnects it then
    jwt = nkeys.encode_jwt(user, issuer_seed, now)
    what = f"{cred.kind} {cred.worker_id}" + (f" run {cred.run_id}" if cred.run_id else "")
    return _response(request, issuer_seed, now, jwt=jwt), f"allowed {what} in {cred.org}"

