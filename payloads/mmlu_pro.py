"""MMLU-Pro payload: chain-of-thought multiple choice over the MMLU-Pro data set.

Entrypoint (what an `mmlu_pro` job runs in its working directory):

    python -m payloads.mmlu_pro '<validated params as JSON>'

The data set is `dataset`: a hub id (`TIGER-Lab/MMLU-Pro`, loaded with `datasets`) or a local
directory holding `validation.jsonl` (the few-shot examples) and `test.jsonl` (the questions),
rows shaped as MMLU-Pro's (`question`, `options`, `answer`, `cot_content`, `category`, …).
Both go through the same code from there on. Each question is asked with `ntrain` worked
examples of its category before it; the answer letter is read from "the answer is (X)" (or,
failing that, "Answer: X", or the last lone letter A-J). Per-subject results (one JSON each),
a summary and a CSV row land under `save_dir` (uploaded with the job), and the run logs
`{"subject", "accuracy", "correct", "total"}` per subject and the overall `accuracy`.

Imports: stdlib, pydantic params, sibling payload modules; `datasets` for hub ids only.
"""

from __future__ import annotations

import csv
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from payloads._data import read_jsonl
from payloads._reporter import Reporter, make_reporter, read_params
from payloads.params import InferenceParams, MMLUProParams

__all__ = ["extract_answer", "load_splits", "main", "prompt_for", "run_mmlu_pro"]

LETTERS = "ABCDEFGHIJ"


def load_splits(dataset: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(validation rows, test rows) of MMLU-Pro from a local directory or the hub."""
    local = Path(dataset).expanduser()
    if local.is_dir():
        val, test = local / "validation.jsonl", local / "test.jsonl"
        for path in (val, test):
            if not path.is_file():
                raise ValueError(f"{dataset}: missing {path.name}; a local MMLU-Pro copy has "
                                 "validation.jsonl and test.jsonl")
        return read_jsonl(val), read_jsonl(test)
    from datasets import load_dataset  # pragma: no cover - the hub

    loaded = load_dataset(dataset)  # pragma: no cover
    return list(loaded["validation"]), list(loaded["test"])  # pragma: no cover


def _options(row: dict[str, Any]) -> list[str]:
    return [o for o in row["options"] if o != "N/A"]


def _question(row: dict[str, Any], worked: bool) -> str:
    lines = ["Question:", row["question"], "Options:"]
    lines += [f"{LETTERS[i]}. {opt}" for i, opt in enumerate(_options(row))]
    if worked:
        cot = row.get("cot_content", "").replace("A: Let's think step by step.",
                                                 "Answer: Let's think step by step.")
        return "\n".join(lines) + "\n" + cot + "\n\n"
    return "\n".join(lines) + "\nAnswer: Let's think step by step."


def prompt_for(row: dict[str, Any], examples: list[dict[str, Any]], k: int) -> str:
    """The question with `k` worked examples of its category before it."""
    subject = row["category"]
    head = (f"The following are multiple choice questions (with answers) about {subject}. "
            "Think step by step and then finish your answer with \"the answer is (X)\" where X "
            "is the correct letter choice.\n\n")
    shots = [e for e in examples if e["category"] == subject][:k]
    return head + "".join(_question(e, worked=True) for e in shots) + _question(row, False)


def extract_answer(text: str) -> str | None:
    """The chosen letter: "the answer is (X)", else "Answer: X", else the last lone A-J."""
    for pattern, flags in ((r"answer is \(?([A-J])\)?", 0), (r".*[aA]nswer:\s*([A-J])", 0),
                           (r"\b([A-J])\b(?!.*\b[A-J]\b)", re.DOTALL)):
        match = re.search(pattern, text, flags)
        if match:
            return match.group(1)
    return None


def _subjects(test: list[dict[str, Any]], selected: str) -> list[str]:
    every = sorted({r["category"] for r in test})
    if selected == "all":
        return every
    wanted = [w.strip().replace(" ", "_") for w in selected.split(",") if w.strip()]
    chosen = [s for s in every if any(w in s.replace(" ", "_") for w in wanted)]
    if not chosen:
        raise ValueError(f"selected_subjects {selected!r} matches none of {every}")
    return chosen


def run_mmlu_pro(p: MMLUProParams, reporter: Reporter, workdir: Path) -> dict[str, Any]:
    """Evaluate, write the results under `save_dir`, log and return the outputs."""
    from payloads.infer import complete

    val, test = load_splits(p.dataset)
    out_dir = workdir / p.save_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = InferenceParams(model=p.model, input_file_id="mmlu-pro", max_tokens=p.max_tokens,
                          temperature=0.0, stop=["Question:"], max_model_len=p.max_model_len)
    totals, per_subject = [0, 0], {}
    for subject in _subjects(test, p.selected_subjects):
        rows = [r for r in test if r["category"] == subject]
        prompts = [[{"role": "user", "content": prompt_for(r, val, p.ntrain)}] for r in rows]
        answers = [res[0]["completion"] for res in complete(gen, prompts, reporter)]
        results = [{**r, "model_output": a, "pred": extract_answer(a)}
                   for r, a in zip(rows, answers, strict=True)]
        correct = sum(1 for r in results if r["pred"] == r["answer"])
        (out_dir / f"{subject}.json").write_text(json.dumps(results))
        per_subject[subject] = correct / len(rows)
        totals[0], totals[1] = totals[0] + correct, totals[1] + len(rows)
        reporter.log({"subject": subject, "accuracy": per_subject[subject],
                      "correct": correct, "total": len(rows)})
    accuracy = totals[0] / totals[1] if totals[1] else 0.0
    (out_dir / "summary.json").write_text(json.dumps({"subjects": per_subject,
                                                      "accuracy": accuracy}))
    with open(out_dir / p.global_record_file, "a", newline="") as f:
        csv.writer(f).writerow([Path(p.model).name, "CoT", p.selected_subjects,
                                time.strftime("%Y-%m-%d_%H-%M-%S"), accuracy])
    outputs = {"accuracy": accuracy, "subjects": per_subject}
    reporter.log(outputs)
    return outputs


def main(argv: list[str] | None = None) -> None:
    data = read_params(list(sys.argv[1:] if argv is None else argv), "payloads.mmlu_pro")
    reporter = make_reporter()
    try:
        run_mmlu_pro(MMLUProParams.model_validate(data), reporter, Path.cwd())
    finally:
        if hasattr(reporter, "close"):
            reporter.close()


if __name__ == "__main__":
    main()
