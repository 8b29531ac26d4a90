"""Dataset validators: every rule, line numbers, and a file with many bad lines."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ow.core.errors import Problem, ValidationError
from ow.core.validate import MAX_PROBLEMS, validate, validate_row

USER = {"role": "user", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "hello"}


def conv(*messages):
    return {"messages": list(messages)}


def pref(prompt=None, chosen=None, rejected=None):
    return {
        "prompt": [USER] if prompt is None else prompt,
        "chosen": [ASSISTANT] if chosen is None else chosen,
        "rejected": [ASSISTANT] if rejected is None else rejected,
    }


BLOCKS = {"role": "assistant", "content": [{"type": "text", "text": "a"}]}

VALID = [
    ("conversations", conv(USER, ASSISTANT)),
    ("conversations", conv({"role": "system", "content": "be brief"}, USER, ASSISTANT)),
    ("conversations", conv(USER, BLOCKS)),
    (
        "conversations",
        conv(USER, {"role": "assistant", "content": [
            {"type": "text", "text": "a", "weight": 0.5, "tag": "x", "extra": [1]},
            {"type": "text", "text": "b", "weight": 1},
        ]}),
    ),
    ("conversations", conv({"role": "user", "content": "", "name": "bob"})),
    ("inference", conv(USER)),
    ("inference", conv(USER, ASSISTANT)),
    ("preference", pref()),
    ("preference", pref(prompt=[{"role": "system", "content": "s"}, USER])),
]


@pytest.mark.parametrize(("purpose", "row"), VALID)
def test_valid_rows_have_no_problems(purpose, row):
    assert validate_row(purpose, row) == []
    assert validate(purpose, [json.dumps(row)], "f.jsonl") == []


INVALID = [
    ("conversations", [1], "row is a JSON array; expected a JSON object"),
    ("conversations", {}, "missing 'messages'"),
    ("conversations", {"messages": "hi"}, "'messages' is a string; expected a list of messages"),
    ("conversations", conv(), "'messages' is empty"),
    ("conversations", conv("hi"), "message 1 is a string; expected an object"),
    ("conversations", conv(USER, {"role": "bot", "content": "x"}),
     "message 2 has role 'bot'; expected system|user|assistant"),
    ("conversations", conv({"content": "x"}), "message 1 has no 'role'"),
    ("conversations", conv({"role": "user"}), "message 1 has no 'content'"),
    ("conversations", conv({"role": "user", "content": 3}),
     "message 1 content is a number; expected a string or a list of text blocks"),
    ("conversations", conv({"role": "user", "content": None}), "message 1 content is a null"),
    ("conversations", conv({"role": "user", "content": []}), "message 1 content is an empty list"),
    ("conversations", conv({"role": "user", "content": ["x"]}), "message 1 block 1 is a string"),
    ("conversations", conv({"role": "user", "content": [{"type": "image", "text": "x"}]}),
     "message 1 block 1 has type 'image'; expected 'text'"),
    ("conversations", conv({"role": "user", "content": [{"type": "text"}]}),
     "message 1 block 1 'text' is missing; expected a string"),
    ("conversations", conv({"role": "user", "content": [{"type": "text", "text": 1}]}),
     "message 1 block 1 'text' is a number"),
    ("conversations", conv({"role": "user", "content": [{"type": "text", "text": "a",
                                                           "weight": "1"}]}),
     "message 1 block 1 'weight' is a string; expected a number"),
    ("conversations", conv({"role": "user", "content": [{"type": "text", "text": "a",
                                                           "weight": True}]}),
     "'weight' is a boolean"),
    ("conversations", conv({"role": "user", "content": [{"type": "text", "text": "a",
                                                           "tag": 2}]}),
     "message 1 block 1 'tag' is a number; expected a string"),
    ("inference", conv(), "'messages' is empty"),
    ("preference", {"prompt": [USER], "chosen": [ASSISTANT]}, "missing 'rejected'"),
    ("preference", pref(chosen=[]), "'chosen' is empty"),
    ("preference", pref(rejected="no"), "'rejected' is a string"),
    ("preference", pref(chosen=[USER, {"role": "robot", "content": "x"}]),
     "chosen message 2 has role 'robot'"),
    ("preference", conv(USER), "missing 'prompt'"),
]


@pytest.mark.parametrize(("purpose", "row", "expected"), INVALID)
def test_invalid_rows_name_the_rule(purpose, row, expected):
    rules = validate_row(purpose, row)
    assert any(expected in r for r in rules), rules


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"messages": [}', "not valid JSON"),
        (b'{"messages": "\xff"}', "not valid UTF-8"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_undecodable_lines(line, expected):
    problems = validate("conversations", [line], "d.jsonl")
    assert len(problems) == 1
    assert problems[0].line == 1
    assert expected in problems[0].rule


def test_several_bad_lines_are_all_reported_with_line_numbers():
    lines = [
        json.dumps(conv(USER, ASSISTANT)),                          # 1 ok
        "",                                                          # 2 empty, skipped
        json.dumps(conv(USER, {"role": "bot", "content": "x"})),     # 3
        "{oops",                                                     # 4
        json.dumps(conv(USER, ASSISTANT)),                          # 5 ok
        json.dumps({"msgs": []}),                                    # 6
        json.dumps(conv({"role": "user", "content": 1}, {"role": "x", "content": "y"})),  # 7
    ]
    problems = validate("conversations", lines, "train.jsonl")
    assert [p.line for p in problems] == [3, 4, 6, 7, 7]
    assert all(p.file == "train.jsonl" for p in problems)
    assert str(problems[0]) == (
        "train.jsonl: line 3: message 2 has role 'bot'; expected system|user|assistant"
    )
    message = str(ValidationError(problems))
    for n in (3, 4, 6, 7):
        assert f"line {n}:" in message


def test_bytes_lines_with_newlines_and_blank_lines():
    data = (json.dumps(conv(USER)) + "\n\n   \n" + json.dumps(conv(ASSISTANT)) + "\n").encode()
    assert validate("conversations", data.splitlines(keepends=True), "x") == []


@pytest.mark.parametrize("purpose", ["conversations", "preference", "inference"])
@pytest.mark.parametrize("lines", [[], [""], ["\n", "  \n"]])
def test_a_file_without_rows_is_a_problem(purpose, lines):
    problems = validate(purpose, lines, "empty.jsonl")
    assert len(problems) == 1
    assert "no rows" in problems[0].rule


@pytest.mark.parametrize("purpose", ["custom_job_file", "result", "log", "fine-tune"])
def test_other_purposes_are_not_validated(purpose):
    assert validate(purpose, ["not json at all"], "x") == []


def test_problems_are_capped():
    problems = validate("conversations", ["{bad"] * (MAX_PROBLEMS + 50), "big.jsonl")
    assert len(problems) == MAX_PROBLEMS + 1
    assert "stopped after" in problems[-1].rule


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["role", "content", "type", "text", "messages",
                                       "weight", "tag", "prompt", "chosen", "rejected"]),
                      children, max_size=5),
    max_leaves=20,
)


@given(row=_json, purpose=st.sampled_from(["conversations", "preference", "inference"]))
def test_any_json_value_gives_problems_not_exceptions(row, purpose):
    problems = validate(purpose, [json.dumps(row)], "h.jsonl")
    assert all(isinstance(p, Problem) and p.line == 1 for p in problems)
    assert (problems == []) == (validate_row(purpose, row) == [])
