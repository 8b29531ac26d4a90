"""`ow.mmlu_pro` on the tiny model with a small MMLU-Pro-shaped data set written here (the
real one loads from the hub through `datasets`, then takes the same path)."""

import json
import uuid

import pytest

from payloads._reporter import LocalReporter
from payloads.mmlu_pro import extract_answer, prompt_for, run_mmlu_pro
from payloads.params import MMLUProParams

pytestmark = pytest.mark.slow


def _row(qid, category, answer):
    options = ["1", "2", "3", "4", "N/A"]
    return {"question_id": qid, "question": f"What is {qid} + 0?", "options": options,
            "answer": answer, "answer_index": "ABCD".index(answer), "category": category,
            "cot_content": f"A: Let's think step by step. It is {qid}. The answer is ({answer}).",
            "src": "stand-in"}


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "mmlu-pro"
    root.mkdir()
    val = [_row(1, "math", "A"), _row(2, "law", "B")]
    test = [_row(3, "math", "C"), _row(4, "math", "D"), _row(5, "law", "A")]
    for name, rows in (("validation", val), ("test", test)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.mark.parametrize(("text", "letter"), [
    ("so the answer is (C).", "C"), ("the answer is D", "D"), ("Answer: B because", "B"),
    ("maybe A or maybe J", "J"), ("no idea", None),
])
def test_the_answer_letter_is_read_as_openweights_reads_it(text, letter):
    assert extract_answer(text) == letter


def test_a_prompt_has_worked_examples_of_its_category_only(dataset):
    from payloads.mmlu_pro import load_splits

    val, test = load_splits(str(dataset))
    prompt = prompt_for(test[0], val, k=5)
    assert "What is 1 + 0?" in prompt
    assert "What is 2 + 0?" not in prompt
    assert "N/A" not in prompt
    assert prompt.endswith("Answer: Let's think step by step.")


def test_mmlu_pro_on_the_tiny_model_writes_results_and_logs_accuracy(tiny_model, dataset,
                                                                      tmp_path):
    p = MMLUProParams(model=str(tiny_model), dataset=str(dataset), ntrain=1, max_tokens=6,
                      selected_subjects="math")
    rep = LocalReporter(tmp_path / "out")
    out = run_mmlu_pro(p, rep, tmp_path / "work")
    assert set(out["subjects"]) == {"math"}
    assert 0.0 <= out["accuracy"] <= 1.0
    results = json.loads((tmp_path / "work" / "uploads" / "math.json").read_text())
    assert [r["question_id"] for r in results] == [3, 4]
    assert all("pred" in r and "model_output" in r for r in results)
    assert (tmp_path / "work" / "uploads" / "eval_record_collection.csv").exists()
    assert {"subject": "math", "accuracy": out["accuracy"], "correct": sum(
        r["pred"] == r["answer"] for r in results), "total": 2} in rep.logs


@pytest.mark.anyio
@pytest.mark.timeout(180)
async def test_ow_mmlu_pro_runs_as_a_job(nats, tiny_model, dataset, tmp_path):
    import payloads.jobs  # noqa: F401
    from ow import AsyncOpenWeights
    from tests.integration.agents import running_agents

    org = f"t{uuid.uuid4().hex[:10]}"
    async with running_agents(nats.url, org, 1, tmp_path,  # local dirs the job may read
                              sandbox_ro=f"{tiny_model}:{dataset}"), AsyncOpenWeights(
        url=nats.url, org=org, home=str(tmp_path / "h"), env={}
    ) as ow:
        job = await ow.mmlu_pro.create(model=str(tiny_model), dataset=str(dataset), ntrain=1,
                                       max_tokens=4)
        done = await ow.jobs.wait(job.id, timeout=150)
        assert "accuracy" in await ow.events.latest(["accuracy"], job_id=job.id)
        assert {"math.json", "law.json", "summary.json"} <= set(done.runs[-1].artifacts)
