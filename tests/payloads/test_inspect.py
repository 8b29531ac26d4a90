"""The `inspect_ai` job on the tiny model: a local task file through the SDK, a real agent and
`inspect eval --model hf/<model dir>` on the CPU; and the error when `inspect` is missing."""

import uuid
from pathlib import Path

import pytest

from payloads.inspect_eval import run_eval
from payloads.params import InspectAiParams
from tests.integration.agents import client, running_agents

TASK_FILE = Path(__file__).with_name("inspect_task.py")


@pytest.mark.anyio
@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_local_task_runs_and_its_eval_log_is_an_artifact(nats, tiny_model, tmp_path):
    pytest.importorskip("inspect_ai", reason="needs the `evals` extra")
    from inspect_ai.log import read_eval_log

    import payloads.jobs  # noqa: F401  (registers the built-in job types)
    from tests.payloads.inspect_task import SAMPLES

    url, org = nats.url, f"t{uuid.uuid4().hex[:10]}"
    async with client(url, org) as ow, running_agents(url, org, 1, tmp_path):
        job = await ow.inspect_ai.create(
            model=str(tiny_model), eval_name=f"{TASK_FILE}@colors",
            options="--max-tokens 4 --seed 0",
        )
        done = await ow.jobs.wait(job.id, timeout=150)
        assert done.outputs["exit_code"] == 0
        (log_path,) = done.outputs["logs"]
        await ow.jobs.download(job.id, str(tmp_path / "output"))
    (eval_file,) = (tmp_path / "output").rglob(log_path)
    log = read_eval_log(str(eval_file))
    assert log.status == "success"
    assert log.eval.model == f"hf/{tiny_model}"
    assert log.results is not None
    assert log.results.completed_samples == len(SAMPLES)
    assert [s.target for s in log.samples or []] == [a for _, a in SAMPLES]


def test_a_missing_inspect_fails_with_what_to_install(tmp_path, monkeypatch, capsys):
    from payloads._reporter import LocalReporter

    monkeypatch.setenv("PATH", str(tmp_path))  # no `inspect` here
    params = InspectAiParams(model="m", eval_name="inspect_evals/gpqa_diamond")
    with pytest.raises(SystemExit) as exited:
        run_eval(params, LocalReporter(tmp_path / "r"), tmp_path)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "ERROR: the `inspect` command is missing" in err
    assert "pip install 'ow[evals]'" in err
