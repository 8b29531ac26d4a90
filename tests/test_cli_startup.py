"""What `ow <command>` loads before it runs: only the module of its command, and typer
without pydantic for plain parameters (`ow.cli.MODULES`, `ow.cli._typer`).

Each case that looks at `sys.modules` runs in a fresh interpreter.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest
import typer

from ow.cli import MODULES, build_app, command_name


def _names(app: typer.Typer) -> set[str]:
    return ({c.name or c.callback.__name__ for c in app.registered_commands}
            | {g.name for g in app.registered_groups})


@pytest.mark.parametrize("module", sorted(MODULES))
def test_the_table_names_exactly_what_each_module_registers(module):
    app = typer.Typer()
    importlib.import_module(f"ow.cli.{module}").register(app)
    assert _names(app) == set(MODULES[module])


def test_every_command_module_is_in_the_table():
    import pkgutil

    import ow.cli

    registering = {m.name for m in pkgutil.iter_modules(ow.cli.__path__)
                   if hasattr(importlib.import_module(f"ow.cli.{m.name}"), "register")}
    assert registering == set(MODULES)


def test_a_name_not_in_the_table_loads_every_command():
    every = {n for names in MODULES.values() for n in names}
    assert _names(build_app("no-such-command")) == every
    assert _names(build_app(None)) == every
    assert _names(build_app("ls")) == set(MODULES["jobs"])


@pytest.mark.parametrize(("argv", "name"), [
    (["ls", "--limit", "3"], "ls"),
    (["--org", "a", "--url=nats://x", "--debug", "show", "j1"], "show"),
    (["--db", "p.duckdb", "workers"], "workers"),
    (["--help"], None),
    ([], None),
])
def test_the_command_is_found_after_the_global_options(argv, name):
    assert command_name(argv) == name


_PLAIN = """
import json, sys
import typer
from ow.cli import command

app = typer.Typer()

@app.command()
def go(n: int = typer.Option(1), x: float = typer.Option(0.5), tag: list[str] = typer.Option([]),
       flag: bool = typer.Option(False, "--flag"), name: str = typer.Argument("-")) -> None:
    print(json.dumps([n, x, tag, flag, name]))

@app.command()
def other() -> None:
    pass

try:
    command(app)(args=sys.argv[1:], standalone_mode=True)
finally:
    print(json.dumps("pydantic" in sys.modules), file=sys.stderr)
"""


def _plain(*args: str) -> tuple[int, str, str]:
    out = subprocess.run([sys.executable, "-c", _PLAIN, *args], capture_output=True, text=True,
                         timeout=60)
    return out.returncode, out.stdout, out.stderr


def test_plain_parameters_convert_without_pydantic():
    code, out, err = _plain("go", "--n", "3", "--x", "2", "--tag", "a", "--tag", "b", "--flag",
                            "it")
    assert code == 0, err
    assert json.loads(out) == [3, 2.0, ["a", "b"], True, "it"]
    assert json.loads(err.splitlines()[-1]) is False
    code, out, err = _plain("go")
    assert json.loads(out) == [1, 0.5, [], False, "-"]


def test_a_bad_plain_value_is_a_usage_error_naming_the_option():
    code, _, err = _plain("go", "--n", "three")
    assert code == 2
    assert "Invalid value for '--n'" in err
    assert "'three' is not a valid integer" in err
