"""Trainer callbacks: metrics to `ow.run.log`, checkpoints, log-prob tracking, sampling.

Every record carries "step". A NaN or infinite loss stops training with `TrainingCrash`
(the entrypoint prints it and exits non-zero). Checkpoints are the trainer's own
`checkpoint-N` directories (adapter, optimizer, scheduler, trainer state), packed and
published through `reporter.checkpoint`, so a requeued run resumes from them.

Imports: stdlib, torch, transformers and sibling payload modules.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from payloads._data import Encoded
from payloads._generate import Sampling, generate
from payloads._reporter import Reporter

__all__ = [
    "CheckpointCallback",
    "LogpCallback",
    "MetricsCallback",
    "SamplingCallback",
    "TrainingCrash",
    "sequence_logps",
]


class TrainingCrash(RuntimeError):
    """Training cannot go on (NaN loss, …); the message says why."""


class MetricsCallback(TrainerCallback):
    """Every trainer log line (loss, learning_rate, grad_norm, eval_loss…) as one record."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        for key in ("loss", "eval_loss"):
            value = logs.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                raise TrainingCrash(
                    f"{key} became {value} at step {state.global_step}; lower the learning_rate "
                    "or check the data (empty or all-masked examples)"
                )
        data = {k: v for k, v in logs.items() if isinstance(v, int | float | str)}
        self.reporter.log({"step": state.global_step, **data})


class CheckpointCallback(TrainerCallback):
    """Publish each saved `checkpoint-N` directory as the job's checkpoint for step N."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter

    def on_save(self, args, state, control, **kwargs):
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if path.is_dir():
            file_id = self.reporter.checkpoint(state.global_step, path)
            print(f"checkpoint step={state.global_step} file={file_id}", flush=True)


def sequence_logps(model: Any, examples: list[Encoded]) -> list[list[float]]:
    """Per-token log-probs (token t given tokens < t; the first token gets 0.0)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for ex in examples:
                ids = torch.tensor([ex.input_ids], device=device)
                logits = model(input_ids=ids).logits[0, :-1].float()
                logp = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None])[:, 0]
                out.append([0.0, *logp.tolist()])
    finally:
        model.train(was_training)
    return out


def tag_means(examples: list[Encoded], logps: list[list[float]], name: str) -> list[dict[str, Any]]:
    """Mean log-prob per block tag, and over all trained or tagged tokens as tag `name`."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for ex, lp in zip(examples, logps, strict=True):
        for i in range(1, len(ex.input_ids)):
            if ex.tags[i] is not None:
                sums[ex.tags[i]][0] += lp[i]
                sums[ex.tags[i]][1] += 1
            if ex.tags[i] is not None or ex.weights[i] != 0:
                sums[name][0] += lp[i]
                sums[name][1] += 1
    return [
        {"dataset": name, "tag": tag, "logp": total / n, "tokens": n}
        for tag, (total, n) in sums.items() if n
    ]


class LogpCallback(TrainerCallback):
    """Every `every` steps (and before the first), log each dataset's per-tag mean log-prob."""

    def __init__(self, reporter: Reporter, datasets: dict[str, list[Encoded]], every: int):
        self.reporter, self.datasets, self.every = reporter, datasets, max(1, every)

    def _measure(self, model: Any, step: int) -> None:
        for name, examples in self.datasets.items():
            for record in tag_means(examples, sequence_logps(model, examples), name):
                self.reporter.log({"step": step, "type": "logp", **record})

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0:
            self._measure(model, 0)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0:
            self._measure(model, state.global_step)


class SamplingCallback(TrainerCallback):
    """Every `eval_steps`, sample completions for a prompts file, upload them, log the file."""

    def __init__(
        self,
        reporter: Reporter,
        tokenizer: Any,
        prompts: list[list[dict[str, Any]]],
        rows: list[dict[str, Any]],
        every: int,
        tag: str,
        sampling: Sampling,
    ):
        self.reporter, self.tokenizer = reporter, tokenizer
        self.prompts, self.rows, self.every, self.tag = prompts, rows, max(1, every), tag
        self.sampling = sampling

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every:
            return
        was_training = model.training
        model.eval()
        try:
            results = generate(model, self.tokenizer, self.prompts, self.sampling)
        finally:
            model.train(was_training)
        path = Path(tempfile.mkdtemp()) / f"samples-{self.tag}-step{state.global_step}.jsonl"
        with open(path, "w") as f:
            for row, res in zip(self.rows, results, strict=True):
                f.write(json.dumps({**row, "completion": res["completion"]}) + "\n")
        file_id = self.reporter.upload(path)
        self.reporter.log({"step": state.global_step, "tag": self.tag, "file": file_id})
