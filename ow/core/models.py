"""`OW_MODEL_ALIASES`: the one mapping from a model name to a local model that replaces it.

`OW_MODEL_ALIASES="unsloth/Qwen3-4B=/models/tiny,meta-llama/Llama-3.1-8B=/models/llama"`
makes every payload that loads `unsloth/Qwen3-4B` load `/models/tiny` instead (the run's
log says so). It is set where the workers run (the `ow up` environment, a pod's env): the
agent passes it to jobs and lets sandboxed jobs read the aliased directories.

Imports: stdlib and `ow.core.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping

from ow.core.errors import ConfigError

__all__ = ["ALIASES_ENV", "alias_targets", "parse_aliases", "substitute"]

ALIASES_ENV = "OW_MODEL_ALIASES"


def parse_aliases(text: str) -> dict[str, str]:
    """`NAME=PATH,NAME=PATH` as a dict; a malformed entry is a `ConfigError` naming it."""
    aliases: dict[str, str] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, sep, target = (part.strip() for part in entry.partition("="))
        if not sep or not name or not target:
            raise ConfigError(
                f"{ALIASES_ENV}: entry {entry!r} is not NAME=PATH; write it as "
                f'{ALIASES_ENV}="unsloth/Qwen3-4B=/path/to/model,other/name=/path"'
            )
        aliases[name] = target
    return aliases


def substitute(ref: str, env: Mapping[str, str]) -> str | None:
    """The local model that stands for `ref` under `env`'s aliases, or None."""
    return parse_aliases(env.get(ALIASES_ENV, "")).get(ref)


def alias_targets(env: Mapping[str, str]) -> list[str]:
    """The aliased paths (what a sandboxed job must be able to read)."""
    return list(parse_aliases(env.get(ALIASES_ENV, "")).values())
