"""Pure tenancy logic: token format, expiry, checks, scope permissions, the accounts text."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from ow.core import tenancy as tn
from ow.core import tokens as tk
from ow.core.errors import ConfigError

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch):
    monkeypatch.setattr(tk, "BCRYPT_COST", 4)


@pytest.fixture
def state():
    s = tn.TenancyState()
    tn.create_org(s, "acme", NOW)
    return s


def test_no_orgs_renders_no_auth():
    text = tn.render_accounts(tn.TenancyState(), NOW)
    assert "authorization" not in text
    assert "accounts" not in text


def test_default_only_is_not_enabled():
    s = tn.TenancyState()
    tn.ensure_default(s, NOW)
    assert not s.enabled
    assert "users" not in tn.render_accounts(s, NOW)


def test_each_org_gets_an_account_with_jetstream(state):
    text = tn.render_accounts(state, NOW)
    assert '"acme": {\n    jetstream: enabled' in text
    assert '"default": {\n    jetstream: enabled' in text
    # no user outside an org's account but the auth callout's own (in OW_AUTH)
    assert text.split("authorization {")[1].strip().startswith("auth_callout {")
    assert '"OW_AUTH": {\n    users: [' in text
    assert set(state.orgs) == {"acme", "default"}


def test_adopt_global_store(tmp_path):
    (tmp_path / "jetstream" / "$G" / "streams").mkdir(parents=True)
    assert tn.adopt_global_store(tmp_path)
    assert (tmp_path / "jetstream" / "default" / "streams").is_dir()
    assert not tn.adopt_global_store(tmp_path)


@pytest.mark.parametrize("name", ["Acme", "", "-x", "a.b", "$G", "a b", "x" * 64])
def test_bad_org_names(name):
    with pytest.raises(ConfigError):
        tn.create_org(tn.TenancyState(), name, NOW)


def test_token_is_shown_once_and_stored_as_hash(state):
    token, record = tn.create_token(state, "acme", "read", NOW, None)
    tid, secret = tn.parse_token(token)
    assert tid == record.token_id
    assert secret not in json.dumps(tn.render_accounts(state, NOW))
    assert secret not in repr(state)
    assert secret not in "".join(e[1] for e in state.outbox)
    assert record.hash.startswith("$2a$")
    assert tn.check_token(state, token, NOW) is record


@pytest.mark.parametrize("bad", ["", "ow_", "sk-123", "ow_short_secretsecretsecret12",
                                 "ow_ABCDEFGHIJKL_secretsecretsecretsecret"])
def test_malformed_tokens(bad):
    with pytest.raises(tn.TokenError, match="malformed"):
        tn.parse_token(bad)


def test_wrong_secret_is_refused(state):
    token, _ = tn.create_token(state, "acme", "read", NOW, None)
    with pytest.raises(tn.TokenError, match="not valid"):
        tn.check_token(state, token[:-3] + "xyz", NOW)


def test_unknown_token(state):
    with pytest.raises(tn.TokenError, match="unknown"):
        tn.check_token(state, "ow_abcdefghijkl_" + "s" * 40, NOW)


def test_revoked_token_message_and_render(state):
    token, record = tn.create_token(state, "acme", "submit", NOW, None)
    tn.revoke_token(state, record.token_id, NOW + timedelta(hours=1), "leaked")
    with pytest.raises(tn.TokenError) as err:
        tn.check_token(state, token, NOW + timedelta(hours=2))
    msg = str(err.value)
    assert re.match(r"token ow_..….. was revoked at 2026-01-02 04:04:05 UTC \(leaked\)", msg)
    assert record.token_id not in msg
    assert token.split("_", 2)[2] not in msg  # the secret may itself hold "_"
    assert record.token_id not in tn.render_accounts(state, NOW)


def test_expired_token_dropped_at_expiry(state):
    token, record = tn.create_token(state, "acme", "read", NOW, NOW + timedelta(days=7))
    assert record.token_id in tn.render_accounts(state, NOW + timedelta(days=6))
    assert record.token_id not in tn.render_accounts(state, NOW + timedelta(days=7))
    with pytest.raises(tn.TokenError, match="expired at 2026-01-09"):
        tn.check_token(state, token, NOW + timedelta(days=8))


def test_control_token_cannot_be_revoked(state):
    ctl = state.orgs["acme"].control_token
    with pytest.raises(tn.TokenError):
        tn.revoke_token(state, ctl, NOW)


@pytest.mark.parametrize(("text", "delta"), [("30m", 1800), ("12h", 43200), ("7d", 604800),
                                             ("2w", 1209600), ("90s", 90)])
def test_parse_expires(text, delta):
    assert tn.parse_expires(text, NOW) == NOW + timedelta(seconds=delta)


@pytest.mark.parametrize("text", ["7", "d7", "7y", "-1d"])
def test_parse_expires_rejects(text):
    with pytest.raises(ConfigError):
        tn.parse_expires(text, NOW)


def test_parse_expires_never():
    assert tn.parse_expires("never", NOW) is None


def _allowed(perms, subject, kind="publish"):
    def match(pattern, subj):
        p, s = pattern.split("."), subj.split(".")
        for i, tok in enumerate(p):
            if tok == ">":
                return len(s) > i
            if i >= len(s) or (tok != "*" and tok != s[i]):
                return False
        return len(p) == len(s)

    rules = perms[kind]
    return any(match(a, subject) for a in rules["allow"]) and not any(
        match(d, subject) for d in rules.get("deny", []))


SUB = "ow.ev.acme.job.j1.JobSubmitted"
CANCEL = "ow.ev.acme.job.j1.JobCancelRequested"
RUN = "ow.ev.acme.job.j1.RunStarted"
CLAIM = "$KV.ow_claims.acme.j1"
METRIC = "ow.mx.acme.r1"
FILE_CHUNK = "$O.ow_files.C.abc"
SECRET_GET = "$JS.API.DIRECT.GET.KV_ow_secrets.$KV.ow_secrets.X"
STREAM_DELETE = "$JS.API.STREAM.DELETE.OW_EVENTS"
READ_API = "$JS.API.DIRECT.GET.OW_EVENTS"


@pytest.mark.parametrize(("scope", "subject", "ok"), [
    ("read", READ_API, True), ("read", SUB, False), ("read", CANCEL, False),
    ("read", METRIC, False), ("read", CLAIM, False), ("read", FILE_CHUNK, False),
    ("read", SECRET_GET, False), ("read", STREAM_DELETE, False),
    ("submit", SUB, True), ("submit", CANCEL, True), ("submit", RUN, False),
    ("submit", CLAIM, False), ("submit", FILE_CHUNK, True), ("submit", SECRET_GET, False),
    ("submit", "ow.ev.other.job.j1.JobSubmitted", False),
    ("worker", SUB, False), ("worker", CANCEL, False), ("worker", RUN, True),
    ("worker", CLAIM, True), ("worker", METRIC, True), ("worker", SECRET_GET, True),
    ("worker", "$KV.ow_claims.other.j1", False), ("worker", STREAM_DELETE, False),
    ("admin", SUB, True), ("admin", STREAM_DELETE, True),
])
def test_scope_permissions(scope, subject, ok):
    assert _allowed(tn.permissions(scope, "acme", "tid1"), subject) is ok


@pytest.mark.parametrize("scope", ["read", "submit", "worker"])
def test_a_token_subscribes_to_the_orgs_subjects_and_its_own_inboxes_only(scope):
    perms = tn.permissions(scope, "acme", "tid1")
    for subject, ok in [("ow.ev.acme.job.j1.JobSubmitted", True), ("ow.log.acme.r1", True),
                        (f"{tn.inbox_prefix('tid1')}.abc.def", True),
                        ("_INBOX.abc.def", False), (f"{tn.inbox_prefix('tid2')}.abc", False),
                        ("$KV.ow_secrets.HF_TOKEN", False), ("$JS.API.>", False)]:
        assert _allowed(perms, subject, "subscribe") is ok, subject
    assert _allowed(tn.permissions("admin", "acme", "tid1"), "_INBOX.abc", "subscribe")


def test_outbox_events_carry_no_secret(state):
    token, _ = tn.create_token(state, "acme", "admin", NOW, None)
    kinds = [json.loads(e[1])["type"] for e in state.outbox]
    assert kinds == ["OrgCreated", "TokenCreated"]
    assert all(e[1].find(token.split("_", 2)[2]) < 0 for e in state.outbox)
