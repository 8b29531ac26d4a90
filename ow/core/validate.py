"""Dataset validators: pure functions from lines to every `Problem` found (no I/O).

`validate(purpose, lines, filename)` checks JSONL datasets before anything is uploaded:

- `conversations`: each row `{"messages": [message, ...]}` (non-empty);
- `preference`: each row `{"prompt": [...], "chosen": [...], "rejected": [...]}`, each a
  non-empty list of messages;
- `inference`: like `conversations`; ending with an assistant message is allowed (it is a
  prefix the model continues).

A message is `{"role": "system"|"user"|"assistant", "content": str | [block, ...]}`; a block
is `{"type": "text", "text": str}` with optional `weight` (a number, token-weighted SFT) and
`tag` (a string); other keys are ignored. Empty lines are skipped (but counted, so line
numbers match an editor's); a file without any row is a problem. Other purposes are not
validated. Every problem is reported, up to `MAX_PROBLEMS`.

`job_problems(spec)` checks a `JobSubmitted` against the event schema before it is published:
a wrong type, NaN/inf anywhere, a negative VRAM or timeout, `allowed_hardware` that is not a
list of labels, a mounted file's place outside the work dir. An event that fails here would
be published undecodable, and every reader would have to skip it.

Imports: stdlib, msgspec and `ow.core` (errors, events, files).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import msgspec

from ow.core import events as ev
from ow.core.errors import Problem, ValidationError

__all__ = ["MAX_PROBLEMS", "ROLES", "VALIDATED_PURPOSES", "job_problems", "validate",
           "validate_row"]

ROLES = ("system", "user", "assistant")
VALIDATED_PURPOSES = frozenset({"conversations", "preference", "inference"})
#: stop collecting after this many (a wrong file would otherwise list one problem per line)
MAX_PROBLEMS = 1000

_ROLES_TEXT = "|".join(ROLES)
_PREFERENCE_KEYS = ("prompt", "chosen", "rejected")
_decoder = msgspec.json.Decoder()


def _kind(value: Any) -> str:
    """A JSON-ish type name for messages: object, array, string, number, boolean, null."""
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case dict():
            return "object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _block_problems(block: Any, where: str) -> list[str]:
    if not isinstance(block, dict):
        return [f"{where} is a {_kind(block)}; expected an object {{type, text}}"]
    out = []
    if block.get("type") != "text":
        out.append(f"{where} has type {block.get('type')!r}; expected 'text'")
    if not isinstance(block.get("text"), str):
        got = "is missing" if "text" not in block else f"is a {_kind(block['text'])}"
        out.append(f"{where} 'text' {got}; expected a string")
    if "weight" in block and not _is_number(block["weight"]):
        out.append(f"{where} 'weight' is a {_kind(block['weight'])}; expected a number")
    if "tag" in block and not isinstance(block["tag"], str):
        out.append(f"{where} 'tag' is a {_kind(block['tag'])}; expected a string")
    return out


def _message_problems(message: Any, where: str) -> list[str]:
    if not isinstance(message, dict):
        return [f"{where} is a {_kind(message)}; expected an object {{role, content}}"]
    out = []
    if "role" not in message:
        out.append(f"{where} has no 'role'; expected {_ROLES_TEXT}")
    elif message["role"] not in ROLES:
        out.append(f"{where} has role {message['role']!r}; expected {_ROLES_TEXT}")
    if "content" not in message:
        out.append(f"{where} has no 'content'")
        return out
    content = message["content"]
    if isinstance(content, list):
        if not content:
            out.append(f"{where} content is an empty list of blocks")
        for j, block in enumerate(content, 1):
            out.extend(_block_problems(block, f"{where} block {j}"))
    elif not isinstance(content, str):
        out.append(
            f"{where} content is a {_kind(content)}; expected a string or a list of text blocks"
        )
    return out


def _messages_problems(messages: Any, field: str, label: str) -> list[str]:
    """Problems of one list of messages; `label` prefixes each message ('', 'chosen ')."""
    if not isinstance(messages, list):
        return [f"'{field}' is a {_kind(messages)}; expected a list of messages"]
    if not messages:
        return [f"'{field}' is empty; expected at least one message"]
    out = []
    for i, message in enumerate(messages, 1):
        out.extend(_message_problems(message, f"{label}message {i}"))
    return out


def validate_row(purpose: str, row: Any) -> list[str]:
    """The rules one decoded row breaks (empty if it is fine)."""
    if not isinstance(row, dict):
        return [f"row is a JSON {_kind(row)}; expected a JSON object"]
    if purpose == "preference":
        out = []
        for key in _PREFERENCE_KEYS:
            if key not in row:
                out.append(f"missing '{key}'; a preference row has prompt, chosen and rejected")
            else:
                out.extend(_messages_problems(row[key], key, f"{key} "))
        return out
    if "messages" not in row:
        return ["missing 'messages'; expected {\"messages\": [{role, content}, ...]}"]
    return _messages_problems(row["messages"], "messages", "")


def _decode_line(raw: bytes | str) -> tuple[Any, str | None]:
    """The decoded JSON value of one line, or the reason it is not JSON."""
    try:
        return _decoder.decode(raw), None
    except UnicodeDecodeError:
        return None, "not valid UTF-8"
    except msgspec.DecodeError as exc:
        return None, f"not valid JSON ({exc})"


def validate(purpose: str, lines: Iterable[bytes | str], filename: str = "") -> list[Problem]:
    """Every problem of a JSONL dataset for `purpose` (an empty list if it is valid)."""
    if purpose not in VALIDATED_PURPOSES:
        return []
    problems: list[Problem] = []
    rows = 0
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        rows += 1
        row, error = _decode_line(raw)
        rules = [error] if error else validate_row(purpose, row)
        problems.extend(Problem(filename, number, rule) for rule in rules)
        if len(problems) >= MAX_PROBLEMS:
            problems = problems[:MAX_PROBLEMS]
            problems.append(
                Problem(filename, 0, f"stopped after {MAX_PROBLEMS} problems (line {number})")
            )
            return problems
    if rows == 0:
        problems.append(Problem(filename, 0, f"no rows: a {purpose} file needs one JSON per line"))
    return problems


# --- a job's spec, before it is published ------------------------------------------------

_NON_NEGATIVE = ("requires_vram_gb", "timeout_s")


def _non_finite(value: Any, where: str) -> list[str]:
    if isinstance(value, float) and not math.isfinite(value):
        return [where]
    if isinstance(value, dict):
        return [w for k, v in value.items() for w in _non_finite(v, f"{where}.{k}")]
    if isinstance(value, list | tuple):
        return [w for i, v in enumerate(value) for w in _non_finite(v, f"{where}[{i}]")]
    return []


def job_problems(spec: ev.JobSubmitted) -> list[Problem]:
    """Every reason `spec` must not be published, each naming its field."""
    from ow.core.files import relative_path

    label = spec.job_id or "job"
    out: list[str] = []
    try:  # a Struct does not check types when built: the round trip is what readers do
        msgspec.convert(msgspec.to_builtins(spec), ev.JobSubmitted)
    except (msgspec.ValidationError, TypeError) as exc:
        out.append(f"{exc} (wrong type)")
    for name in ("requires_vram_gb", "timeout_s", "params"):
        out += [f"{w}: {getattr(spec, name)!r} is not a finite number"
                if w == name else f"{w}: NaN/inf is not a value JSON can carry"
                for w in _non_finite(getattr(spec, name), name)]
    for name in _NON_NEGATIVE:
        value = getattr(spec, name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            out.append(f"{name}: {value!r} is negative (use 0 for none)")
    hw = spec.allowed_hardware
    # TODO(hardware): check each label with ow/core/hardware.py's normaliser once it lands
    if not isinstance(hw, list) or not all(isinstance(h, str) and h.strip() for h in hw):
        out.append(f"allowed_hardware: {hw!r} is not a list of hardware labels "
                   "(e.g. ['1x H100'])")
    for dest in spec.mounted_files:
        try:
            relative_path(dest, "mounted file")
        except ValidationError as exc:
            out.append(f"mounted_files: {exc}")
    return [Problem(label, 0, text) for text in out]
