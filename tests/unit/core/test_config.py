"""Config precedence (argument, then OW_* variable, then defaults) and its errors."""

from __future__ import annotations

import warnings

import pytest

from ow.core import defaults
from ow.core.config import from_env
from ow.core.errors import ConfigError


def test_defaults_apply_without_variables():
    config = from_env({})
    assert (config.url, config.org, config.max_workers) == (
        defaults.DEFAULT_URL, defaults.DEFAULT_ORG, defaults.MAX_WORKERS_PER_ORG)


@pytest.mark.parametrize(("env", "overrides", "url"), [
    ({}, {}, defaults.DEFAULT_URL),
    ({"OW_URL": "nats://env:1"}, {}, "nats://env:1"),
    ({"OW_URL": "nats://env:1"}, {"url": "nats://arg:2"}, "nats://arg:2"),
    ({}, {"url": "nats://arg:2"}, "nats://arg:2"),
    ({"OW_URL": "nats://env:1"}, {"url": None}, "nats://env:1"),
])
def test_argument_beats_variable_beats_default(env, overrides, url):
    assert from_env(env, **overrides).url == url


def test_variables_are_converted_to_the_field_type():
    config = from_env({"OW_MAX_WORKERS": "3", "OW_HEARTBEAT_S": "0.5"})
    assert (config.max_workers, config.heartbeat_s) == (3, 0.5)


@pytest.mark.parametrize(("env", "overrides", "var"), [
    ({"OW_MAX_WORKERS": "many"}, {}, "OW_MAX_WORKERS"),
    ({"OW_LOST_AFTER_S": "2 minutes"}, {}, "OW_LOST_AFTER_S"),
    ({}, {"idle_timeout_s": "soon"}, "OW_IDLE_TIMEOUT_S"),
])
def test_a_wrong_type_fails_with_the_variable_name(env, overrides, var):
    with pytest.raises(ConfigError, match=var):
        from_env(env, **overrides)


def test_an_unknown_ow_variable_warns():
    with pytest.warns(UserWarning, match="OW_URLL"):
        config = from_env({"OW_URLL": "nats://typo:1"})
    assert config.url == defaults.DEFAULT_URL


def test_known_and_foreign_variables_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_env({"OW_DEBUG": "1", "OW_PORT": "4333", "HOME": "/root", "NOT_OW_X": "1"})


def test_home_path_expands_the_user():
    assert "~" not in str(from_env({"OW_HOME": "~/owhome"}).home_path)
