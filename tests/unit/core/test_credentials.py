"""Pure tests of nkeys, NATS JWTs, ow credentials, the callout's decision, bound subjects and
the fold's rule that a bound run's result counts only from its claim holder."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from ow.core import callout, codec, nkeys, subjects
from ow.core import credentials as cr
from ow.core import events as ev
from ow.core import tenancy as tn
from ow.core.errors import TokenError
from ow.core.state import check, fold_all

NOW = datetime(2026, 1, 1, tzinfo=UTC)
T = int(NOW.timestamp())
KEY = b"k" * 32


@pytest.mark.parametrize(("kind", "letter"), [(nkeys.ACCOUNT, "A"), (nkeys.USER, "U"),
                                              (nkeys.SERVER, "N")])
def test_nkeys_name_their_kind_and_round_trip(kind, letter):
    seed = nkeys.new_seed(kind)
    assert seed.startswith("S" + letter)
    public = nkeys.public_key(seed)
    assert public.startswith(letter)
    assert len(public) == 56
    assert len(nkeys.decode_public(public, kind)) == 32
    assert nkeys.verify(public, b"data", nkeys.sign(seed, b"data"))
    assert not nkeys.verify(public, b"other", nkeys.sign(seed, b"data"))


def test_crc16_is_xmodem():
    assert nkeys.crc16(b"123456789") == 0x31C3  # the CRC-16/XMODEM check value


def test_a_damaged_nkey_is_refused():
    public = nkeys.public_key(nkeys.new_seed())
    damaged = public[:10] + ("A" if public[10] != "A" else "B") + public[11:]
    with pytest.raises(TokenError, match="checksum"):
        nkeys.decode_public(damaged)
    with pytest.raises(TokenError, match="not a user key"):
        nkeys.decode_public(public, nkeys.USER)


def test_a_jwt_verifies_against_its_issuer_only():
    seed = nkeys.new_seed()
    token = nkeys.encode_jwt({"sub": "x", "nats": {"type": "user"}}, seed, T)
    head = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert head == {"typ": "JWT", "alg": "ed25519-nkey"}
    claims = nkeys.decode_jwt(token, nkeys.ACCOUNT)
    assert (claims["iss"], claims["iat"], claims["sub"]) == (nkeys.public_key(seed), T, "x")
    body = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    forged = ".".join([token.split(".")[0], base64.urlsafe_b64encode(json.dumps(
        {**body, "sub": "y"}).encode()).decode().rstrip("="), token.split(".")[2]])
    with pytest.raises(TokenError, match="signature"):
        nkeys.decode_jwt(forged)


def test_credentials_verify_only_under_their_workers_key():
    token, key = cr.worker_credential(KEY, "orga", "w1")
    assert cr.verify(KEY, token, T) == cr.Credential(kind="worker", org="orga", worker_id="w1")
    assert key == cr.worker_key(KEY, "orga", "w1") != cr.worker_key(KEY, "orga", "w2")
    run = cr.run_credential(key, token, "j1", "r1", T + 60)
    assert cr.verify(KEY, run, T).run_id == "r1"
    bad = [cr.mint(cr.worker_key(KEY, "orga", "w2"), cr.parse(run)),  # w2 signing for w1
           cr.mint(b"x" * 32, cr.parse(token)), token[:-3] + "abc", "owc_!!"]
    for text in bad:
        with pytest.raises(TokenError):
            cr.verify(KEY, text, T)
    with pytest.raises(TokenError, match="expired"):
        cr.verify(KEY, run, T + 60)
    assert (cr.sender_of(run), cr.sender_of(token), cr.sender_of("ow_x_y")) == ("w1", "w1", "")


def _request(server_seed: str, user_seed: str, opts: dict) -> bytes:
    claims = {"sub": "A", "aud": "nats-authorization-request",
              "nats": {"user_nkey": nkeys.public_key(user_seed), "connect_opts": opts,
                       "server_id": {"id": nkeys.public_key(server_seed)},
                       "type": "authorization_request", "version": 2}}
    return nkeys.encode_jwt(claims, server_seed, T).encode()


@pytest.fixture
def state():
    s = tn.TenancyState()
    tn.create_org(s, "orga", NOW)
    return s


def test_the_callout_places_a_worker_in_its_org_with_its_own_subjects(state):
    server, user = nkeys.new_seed(nkeys.SERVER), nkeys.new_seed(nkeys.USER)
    token = tn.worker_env(state, "orga", "w1")["OW_TOKEN"]
    answer, what = callout.authorize(_request(server, user, {"auth_token": token}), state, NOW)
    response = nkeys.decode_jwt(answer, nkeys.ACCOUNT)
    assert (response["sub"], response["aud"]) == (nkeys.public_key(user),
                                                 nkeys.public_key(server))
    granted = nkeys.decode_jwt(response["nats"]["jwt"], nkeys.ACCOUNT)
    assert (granted["aud"], granted["sub"], what) == (
        "orga", nkeys.public_key(user), "allowed worker:w1 in orga")
    assert "ow.ev.orga.job.*.RunFinished.w1" in granted["nats"]["pub"]["allow"]
    assert response["iss"] == granted["iss"] == nkeys.public_key(state.callout_seed)


@pytest.mark.parametrize("opts", [{}, {"auth_token": "owc_bad.bad"},
                                  {"user": "nosuchtoken1", "pass": "x" * 30}])
def test_the_callout_refuses_what_it_did_not_issue(state, opts):
    server, user = nkeys.new_seed(nkeys.SERVER), nkeys.new_seed(nkeys.USER)
    answer, what = callout.authorize(_request(server, user, opts), state, NOW)
    response = nkeys.decode_jwt(answer)
    assert "jwt" not in response["nats"]
    assert response["nats"]["error"]
    assert what.startswith("refused")


def test_the_callout_checks_a_token_created_after_the_server_started(state):
    server, user = nkeys.new_seed(nkeys.SERVER), nkeys.new_seed(nkeys.USER)
    token, record = tn.create_token(state, "orga", "read", NOW, NOW + timedelta(seconds=90))
    tid, secret = tn.parse_token(token)
    answer, _ = callout.authorize(_request(server, user, {"user": tid, "pass": secret}),
                                  state, NOW)
    granted = nkeys.decode_jwt(nkeys.decode_jwt(answer)["nats"]["jwt"])
    assert (granted["aud"], granted["name"], granted["exp"]) == ("orga", tid, T + 90)
    tn.revoke_token(state, tid, NOW)
    answer, what = callout.authorize(_request(server, user, {"user": tid, "pass": secret}),
                                     state, NOW)
    assert "revoked" in what


def test_a_callout_request_not_signed_by_a_server_is_ignored(state):
    account, user = nkeys.new_seed(nkeys.ACCOUNT), nkeys.new_seed(nkeys.USER)
    with pytest.raises(TokenError):
        callout.authorize(_request(account, user, {}), state, NOW)


def test_the_auth_users_of_a_running_server_stay_as_they_were(state, tmp_path):
    tn.write_accounts(tmp_path, state, NOW, fresh=True)
    before = tn._static_users(tmp_path / "nats" / tn.ACCOUNTS_FILE)
    tn.create_token(state, "orga", "read", NOW, None)
    tn.write_accounts(tmp_path, state, NOW)
    assert tn._static_users(tmp_path / "nats" / tn.ACCOUNTS_FILE) == before
    tn.write_accounts(tmp_path, state, NOW, fresh=True)
    assert len(tn._static_users(tmp_path / "nats" / tn.ACCOUNTS_FILE)) == len(before) + 1


def test_bound_events_carry_their_sender_in_the_subject_not_the_payload():
    e = ev.RunFinished(org="o", run_id="r", job_id="j", status="completed", sender="w1")
    assert subjects.subject_of(e) == "ow.ev.o.job.j.RunFinished.w1"
    assert subjects.subject_of(ev.JobSubmitted(org="o", job_id="j", sender="w1")) == \
        "ow.ev.o.job.j.JobSubmitted"  # not bound: never tagged
    data = codec.encode(e)
    assert codec.decode_or_skip(data, 1, "ow.ev.o.job.j.RunFinished.w2")[0].sender == "w2"
    assert codec.decode_or_skip(data, 1, "ow.ev.o.job.j.RunFinished")[0].sender == ""
    assert subjects.aggregate_of("ow.ev.o.job.j.RunFinished.w1") == "ow.ev.o.job.j.>"


JOB = ev.JobSubmitted(event_id="s", org="o", job_id="j")


def _started(sender: str) -> ev.RunStarted:
    return ev.RunStarted(event_id="st", job_id="j", run_id="r", gen=0, worker_id="w1",
                         sender=sender)


@pytest.mark.parametrize(("started_by", "event", "rule"), [
    ("w1", ev.RunFinished(job_id="j", run_id="r", status="completed", sender="w2"),
     "from identity w2, but w1 holds"),
    ("w1", ev.RunFinished(job_id="j", run_id="r", status="completed"),
     "from an unbound publisher, but w1 holds"),
    ("w1", ev.CheckpointSaved(job_id="j", run_id="r", step=1, file_id="f", sender="w2"),
     "w1 holds"),
    ("w1", ev.ArtifactUploaded(job_id="j", run_id="r", file_id="f", path="p"), "w1 holds"),
    ("w1", ev.JobRequeued(job_id="j", run_id="r", reason="x", sender="w2"), "w1 holds"),
    ("w1", ev.RunFinished(job_id="j", run_id="r", status="completed", sender="w1"), None),
    ("w1", ev.JobRequeued(job_id="j", run_id="r", reason="lost"), None),  # the operator
    ("", ev.RunFinished(job_id="j", run_id="r", status="completed", sender="w2"), None),
    ("", ev.RunFinished(job_id="j", run_id="r", status="completed"), None),  # as before
])
def test_a_bound_runs_events_count_only_from_its_claim_holder(started_by, event, rule):
    anomaly = check(fold_all([JOB, _started(started_by)]), event)
    assert (anomaly.rule if anomaly else None) == rule or rule in anomaly.rule


def test_a_run_started_under_another_workers_identity_is_rejected():
    anomaly = check(fold_all([JOB]), _started("w2"))
    assert anomaly is not None
    assert "as worker w1 by identity w2" in anomaly.rule
