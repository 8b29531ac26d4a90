"""Inspect-AI payload: `inspect eval` against a model; the logs are the job's artifacts.

Entrypoint (what an `inspect_ai` job runs):

    python -m payloads.inspect_eval '<validated params as JSON>'

The model is served by vLLM on a GPU (`vllm/<model>`) or by transformers elsewhere
(`hf/<model>`, which loads a hub id or a local directory; tests/payloads/test_inspect.py runs
it on the tiny model). `eval_name` is what `inspect eval` takes: a registered eval
(`inspect_evals/gpqa_diamond`) or a task file the worker can read (`/path/task.py@name`).
`options` are passed to `inspect eval` unchecked, as in openweights. Logs go to
`uploads/logs`, which the agent uploads; the run ends by logging
`{"log_dir", "logs", "exit_code"}`, `logs` being the artifact paths of the eval logs.
Needs the `inspect-ai` package (the `evals` extra; `inspect-evals` for its evals) in the
job's environment.

Imports: stdlib and sibling payload modules.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from payloads._models import has_gpu
from payloads._reporter import Reporter, fail, make_reporter, read_params
from payloads.params import InspectAiParams

__all__ = ["command", "main", "run_eval"]


def command(p: InspectAiParams, log_dir: Path, gpu: bool) -> list[str]:
    """The `inspect eval` command line for these params."""
    provider = "vllm" if gpu else "hf"
    model_args = ["-M", f"max_model_len={p.max_model_len}"] if gpu else []  # vLLM's argument
    return ["inspect", "eval", p.eval_name, "--model", f"{provider}/{p.model}", *model_args,
            "--log-dir", str(log_dir), *shlex.split(p.options)]


def run_eval(p: InspectAiParams, reporter: Reporter, workdir: Path) -> int:
    if shutil.which("inspect") is None:
        fail("the `inspect` command is missing: install inspect-ai (`pip install 'ow[evals]'`, "
             "and inspect-evals for its evals) in the job's image")
    log_dir = workdir / "uploads" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    cmd = command(p, log_dir, has_gpu())
    print("running:", shlex.join(cmd), flush=True)
    code = subprocess.call(cmd)
    logs = sorted(f"logs/{f.name}" for f in log_dir.iterdir() if f.is_file())
    reporter.log({"log_dir": "uploads/logs", "logs": logs, "exit_code": code})
    return code


def main(argv: list[str] | None = None) -> None:
    data = read_params(list(sys.argv[1:] if argv is None else argv), "payloads.inspect_eval")
    reporter = make_reporter()
    try:
        code = run_eval(InspectAiParams.model_validate(data), reporter, Path.cwd())
    finally:
        if hasattr(reporter, "close"):
            reporter.close()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
