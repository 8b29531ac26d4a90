"""Content ids and the subject token encoder."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ow.core import ids

keys = st.text(max_size=8)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
params = st.dictionaries(keys, json_value, max_size=6)
TOKEN = re.compile(r"[-_=A-Za-z0-9]+")


def reorder(value):
    """The same value with every dict's keys inserted in reverse order."""
    if isinstance(value, dict):
        return {k: reorder(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reorder(v) for v in value]
    return value


@settings(max_examples=200, deadline=None)
@given(params)
def test_job_ids_do_not_depend_on_key_order(p):
    assert ids.job_id("sft", reorder(p), "img", "acme") == ids.job_id("sft", p, "img", "acme")


def test_job_ids_depend_on_params_image_and_org():
    base = ids.job_id("sft", {"lr": 1}, "img", "acme")
    assert re.fullmatch(r"sft-[0-9a-f]{12}", base)
    assert base != ids.job_id("sft", {"lr": 2}, "img", "acme")
    assert base != ids.job_id("sft", {"lr": 1}, "img2", "acme")
    assert base != ids.job_id("sft", {"lr": 1}, "img", "other")


def test_file_ids_look_like_openweights():
    fid = ids.file_id("conversations", "ab" * 32, "acme")
    assert re.fullmatch(r"conversations:file-[0-9a-f]{12}", fid)
    assert fid != ids.file_id("conversations", "ab" * 32, "other")


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1))
def test_encode_token_round_trips_any_text(value):
    token = ids.encode_token(value)
    assert TOKEN.fullmatch(token)
    assert ids.decode_token(token) == value


@pytest.mark.parametrize(("value", "token"), [
    ("conversations:file-abc123", "conversations=3Afile-abc123"),
    ("a=b", "a=3Db"),
    ("a.b", "a=2Eb"),
    ("é", "=C3=A9"),
    ("plain-Token_1", "plain-Token_1"),
])
def test_encode_token_examples(value, token):
    assert ids.encode_token(value) == token


def test_an_empty_token_is_refused():
    with pytest.raises(ValueError, match="empty"):
        ids.encode_token("")


def test_uuid7_is_time_ordered_and_versioned():
    a, b = ids.uuid7(), ids.uuid7()
    assert len(a) == 32
    assert a[12] == "7"
    assert a[:12] <= b[:12]
