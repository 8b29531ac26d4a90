"""Log-prob evaluation payload: how likely a model finds the assistant turns of a dataset.

Entrypoint (what a `logprob_eval` job runs in its working directory):

    python -m payloads.logprobs '<validated params as JSON>'

Input: a conversations file, plain or block-formatted (blocks may carry a `tag`). For every
row the output file has the row plus `logp` (mean log-prob over its assistant tokens, or its
weighted blocks) and `logp_by_tag`; the run logs one record per tag (`{"tag", "logp",
"tokens"}`, tag "all" over everything) and ends with `{"file": <id>, "logp": <overall>}`.
The same measurement as the training log-prob callback (`payloads._callbacks`).

Imports: stdlib, pydantic params, sibling payload modules; torch/transformers lazily.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from payloads._data import read_jsonl
from payloads._reporter import Reporter, make_reporter, read_params
from payloads.params import LogprobParams

__all__ = ["main", "run_logprobs"]


def run_logprobs(p: LogprobParams, reporter: Reporter, workdir: str | Path) -> dict[str, Any]:
    """Measure, write and upload per-row log-probs; log per-tag means; return the outputs."""
    from payloads._callbacks import sequence_logps, tag_means
    from payloads._data import encode_conversation
    from payloads._models import load_for_inference

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = read_jsonl(reporter.fetch(p.input_file_id, workdir / "input.jsonl"))
    model, tokenizer = load_for_inference(p.model, reporter, p.load_in_4bit)
    if p.chat_template != "default":
        tokenizer.chat_template = p.chat_template
    examples = [
        encode_conversation(tokenizer, row["messages"], mode="weighted",
                            max_len=p.max_seq_length)
        for row in rows
    ]
    logps = sequence_logps(model, examples)
    out_path = workdir / "logprobs.jsonl"
    with open(out_path, "w", encoding="utf-8") as f:
        for row, ex, lp in zip(rows, examples, logps, strict=True):
            per_tag = {r["tag"]: r["logp"] for r in tag_means([ex], [lp], "all")}
            f.write(json.dumps({**row, "logp": per_tag.get("all"), "logp_by_tag": per_tag}) + "\n")
    overall = None
    for record in tag_means(examples, logps, "all"):
        reporter.log(record)
        if record["tag"] == "all":
            overall = record["logp"]
    outputs = {"file": reporter.upload(out_path), "logp": overall}
    reporter.log(outputs)
    return outputs


def main(argv: list[str] | None = None) -> None:
    data = read_params(list(sys.argv[1:] if argv is None else argv), "payloads.logprobs")
    reporter = make_reporter()
    try:
        run_logprobs(LogprobParams.model_validate(data), reporter, Path.cwd() / "work")
    finally:
        if hasattr(reporter, "close"):
            reporter.close()


if __name__ == "__main__":
    main()
