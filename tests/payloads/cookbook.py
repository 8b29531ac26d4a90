"""Helpers for test_cookbook: run the cookbook's scripts unchanged against a test `ow up`.

- `hub_cache` writes the tiny model into a Hugging Face cache layout, so a hub id such as
  `unsloth/Qwen3-4B` loads offline through transformers' real hub code (HF_HUB_OFFLINE=1).
- `ow_up` runs `ow up --detach` in a temporary home with that cache, plus one extra agent
  process with a large `--vram-gb`: the stand-in for a GPU worker (hardware filtering only).
- `run_example` copies an example's folder and runs the script there, as `python <file>`;
  `start_example` starts one that serves until stopped (gradio_ui.py), `wait_until` polls.
- `gradio_env` keeps a gradio app local: a fixed port, no analytics or version check, no
  share link, no Hugging Face telemetry.

Imports: stdlib, pytest, `ow` (cli.up, core).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ow.cli.up import down, start_detached
from ow.core.config import from_env
from ow.core.server import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_REVISION = "0" * 40  # any commit hash: `refs/main` names the snapshot to load
#: what the stand-in GPU worker offers: enough for the largest model an example trains here
#: (llama-3-8b: about 26 GB by the size in its name), not enough for a 70B one
STAND_IN_VRAM_GB = 40


def hub_cache(model_dir: Path, hf_home: Path, model_ids: list[str]) -> Path:
    """`hf_home` with each of `model_ids` cached as a copy of `model_dir`; returns hf_home."""
    for model_id in model_ids:
        repo = hf_home / "hub" / ("models--" + model_id.replace("/", "--"))
        shutil.copytree(model_dir, repo / "snapshots" / _REVISION)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(_REVISION)
    return hf_home


def _offline_env(root: Path, hf_home: Path) -> dict[str, str]:
    """Our environment without the developer's OW_* settings, offline, with HF_HOME set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OW_")}
    (root / "tmp").mkdir(exist_ok=True)
    env.update(
        OW_HOME=str(root / "home"), HF_HOME=str(hf_home), HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
        MPLBACKEND="Agg", TMPDIR=str(root / "tmp"),
        # the operator shares the examples' local model dir with sandboxed jobs
        OW_SANDBOX_RO=str(root / "tmp" / "ow-tiny-model"),
    )
    return env


@contextmanager
def ow_up(root: Path, hf_home: Path) -> Iterator[dict[str, str]]:
    """A real `ow up` plus a stand-in GPU agent; yields the environment for the examples."""
    env = _offline_env(root, hf_home)
    with pytest.MonkeyPatch.context() as mp:  # start_detached hands os.environ to `ow up`
        for key in [k for k in os.environ if k.startswith("OW_")]:
            mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        url = start_detached(free_port(), env["OW_HOME"])
    env["OW_URL"] = url
    env["OW_ORG"] = from_env(env).org
    # `ow up`'s agent is a CPU worker (0 GB); the hub ids' names imply 12-26 GB, so this agent
    # claims to have a GPU's VRAM. It only passes the hardware filter: it still runs on the CPU.
    log = open(root / "gpu-stand-in.log", "wb")  # noqa: SIM115 - the child holds its own copy
    agent = subprocess.Popen(
        [sys.executable, "-m", "ow.agent", "--worker-id", "gpu-stand-in", "--image", "*",
         "--vram-gb", str(STAND_IN_VRAM_GB), "--workdir", str(root / "gpu-stand-in")],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    log.close()
    try:
        yield env
    finally:
        os.killpg(agent.pid, signal.SIGTERM)
        agent.wait(30)
        down(env["OW_HOME"])


def _copy_folder(script: Path, tmp: Path) -> Path:
    """A copy of the script's folder in `tmp`: its relative data paths hold and its
    `outputs/` land in `tmp`, not in the repository."""
    folder = tmp / script.parent.name
    shutil.copytree(
        script.parent, folder, ignore=shutil.ignore_patterns("outputs", ".*", "__pycache__")
    )
    return folder


def run_example(
    script: Path, env: dict[str, str], tmp: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `script` unchanged, with cwd = a copy of its folder."""
    return subprocess.run(
        [sys.executable, script.name], cwd=_copy_folder(script, tmp), env=env,
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def start_example(
    script: Path, env: dict[str, str], tmp: Path, *args: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start `script args` unchanged in a copy of its folder, in its own session; returns the
    process and the file that gets its stdout and stderr."""
    folder = _copy_folder(script, tmp)
    output = tmp / f"{script.stem}.log"
    with open(output, "wb") as log:  # the child holds its own copy
        proc = subprocess.Popen(
            [sys.executable, script.name, *args], cwd=folder, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    return proc, output


def wait_until(check: Callable[[], object], timeout: float, what: str) -> object:
    """Poll `check()` until it returns something truthy (returned), or fail saying `what`."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)
    return result


def answers(url: str) -> bool:
    """Whether an HTTP GET of `url` succeeds now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - a local test server
            return resp.status == 200
    except OSError:
        return False


def gradio_env(env: dict[str, str], port: int) -> dict[str, str]:
    """`env` for a gradio app serving on 127.0.0.1:`port` that reaches nothing outside."""
    return {
        **env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SHARE": "False", "GRADIO_SSR_MODE": "False",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def job_id(stdout: str) -> str:
    """The id in the `print(job)` line of an example that only submits."""
    found = re.search(r"Job\(id='([^']+)'", stdout)
    assert found, f"no job printed in:\n{stdout}"
    return found.group(1)


def failure(proc: subprocess.CompletedProcess[str]) -> str:
    """What to show when an example did not do what the test expects."""
    out, err = proc.stdout[-4000:], proc.stderr[-4000:]
    return f"exit {proc.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"
