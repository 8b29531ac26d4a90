"""`OW_MODEL_ALIASES`: parsing, lookup, and the error for a malformed entry."""

import pytest

from ow.core.errors import ConfigError
from ow.core.models import alias_targets, parse_aliases, substitute


@pytest.mark.parametrize(("text", "got"), [
    ("", {}),
    ("unsloth/Qwen3-4B=/m/tiny", {"unsloth/Qwen3-4B": "/m/tiny"}),
    (" a/b = /x , c/d=/y,", {"a/b": "/x", "c/d": "/y"}),
    ("a=/p=q", {"a": "/p=q"}),  # only the first `=` separates
])
def test_parse(text, got):
    assert parse_aliases(text) == got


@pytest.mark.parametrize("bad", ["unsloth/Qwen3-4B", "=/path", "name="])
def test_a_malformed_entry_names_itself_and_the_form(bad):
    with pytest.raises(ConfigError, match=r"is not NAME=PATH") as info:
        parse_aliases(f"ok/x=/p,{bad}")
    assert repr(bad) in str(info.value)


def test_substitute_and_targets():
    env = {"OW_MODEL_ALIASES": "unsloth/Qwen3-4B=/m/tiny,meta-llama/L=/m/l"}
    assert substitute("unsloth/Qwen3-4B", env) == "/m/tiny"
    assert substitute("other/model", env) is None
    assert substitute("unsloth/Qwen3-4B", {}) is None
    assert alias_targets(env) == ["/m/tiny", "/m/l"]


def test_the_variable_is_known_to_the_config(recwarn):
    from ow.core.config import from_env

    from_env({"OW_MODEL_ALIASES": "a/b=/m"})
    assert not [w for w in recwarn if "OW_MODEL_ALIASES" in str(w.message)]
