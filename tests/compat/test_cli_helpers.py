"""The pure helpers of openweights' CLI spellings: .env parsing, masking, ids from stdin."""

import io

import pytest

from ow.cli.compat import ids_from, mask, parse_dotenv
from ow.core.errors import ValidationError


def test_dotenv_lines_as_shells_write_them():
    text = ("# comment\n\nexport A=1\nB = 'two words'\nC=\"x#y\"\nD=plain # note\nE=\n")
    assert parse_dotenv(text) == {"A": "1", "B": "two words", "C": "x#y", "D": "plain", "E": ""}


def test_a_bad_dotenv_line_names_file_and_line_but_not_its_value():
    with pytest.raises(ValidationError, match=r"prod\.env:2: not a NAME=value line") as info:
        parse_dotenv("A=1\nsk-secret-without-name\n", "prod.env")
    assert "sk-secret" not in str(info.value)


def test_mask_tells_the_length_only():
    assert mask("hf_abcdefghijkl") == "******** (15 chars)"
    assert mask("ab") == "** (2 chars)"
    assert "abc" not in mask("abc")


@pytest.mark.parametrize(("args", "stdin", "ids"), [
    (["a", "b"], "", ["a", "b"]),
    (["-"], "a\nb c\n", ["a", "b", "c"]),
    ([], "a\n", ["a"]),
])
def test_cancel_ids_from_arguments_or_stdin(args, stdin, ids):
    assert ids_from(args, io.StringIO(stdin)) == ids
