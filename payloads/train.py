"""Fine-tuning payload: SFT, token-weighted SFT, DPO and ORPO with LoRA (or full fine-tuning).

Entrypoint (what `fine_tuning` / `weighted_sft` jobs run in their working directory):

    python -m payloads.train '<validated params as JSON>'
    python -m payloads.train --weighted '<validated params as JSON>'

On a GPU the model comes from unsloth's FastLanguageModel (4-bit optional); on a CPU from
transformers + peft. SFT runs trl's SFTTrainer on conversations tokenized here (so
`train_on_responses_only` masks everything but assistant turns), DPO/ORPO run trl's trainers
on preference rows, weighted SFT runs a Trainer whose loss weights each token by its block's
weight. Each step logs loss and learning rate with "step"; checkpoints are published every
`save_steps`; a requeued run resumes from the job's last checkpoint. The run ends by logging
`{"model", "adapter_file", ...}` — the job's outputs. A NaN loss or OOM exits 1 with the cause.

Imports: stdlib, pydantic params, sibling payload modules; torch/transformers/peft/trl lazily.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from payloads._data import encode_conversation, read_jsonl, to_preference_row
from payloads._reporter import Reporter, fail, make_reporter, pack, read_params, unpack
from payloads.params import TrainingParams, WeightedSFTParams, fill_finetuned_model_id

__all__ = ["main", "merged", "run_training"]


def run_training(
    params: TrainingParams, reporter: Reporter, workdir: str | Path, *, weighted: bool = False
) -> dict[str, Any]:
    """Train as `params` say, publish checkpoints and the final adapter; return the outputs."""
    from payloads._models import has_gpu, load_for_training

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if "{" in params.finetuned_model_id:  # run outside a submitted job: name it here
        job_id = os.environ.get("OW_JOB_ID") or "local"
        params = params.model_copy(
            update={"finetuned_model_id": fill_finetuned_model_id(params, job_id)}
        )
    lora = _lora_settings(params) if params.is_peft else None
    loaded = load_for_training(
        params.model, max_seq_length=params.max_seq_length, load_in_4bit=params.load_in_4bit,
        lora=lora, seed=params.seed, reporter=reporter,
    )
    if params.chat_template != "default":
        loaded.tokenizer.chat_template = params.chat_template
    print(f"training {params.loss}{' (weighted)' if weighted else ''} on {params.model} "
          f"with {loaded.backend}, gpu={has_gpu()}", flush=True)
    if params.packing and params.loss == "sft":
        print("packing=True asked for: rows are pre-tokenized with per-token weights, so "
              "they train unpacked (as unsloth does when it turns packing off)", flush=True)
    trainer = _build_trainer(params, loaded, reporter, workdir, weighted)
    resume = _resume_point(params, reporter, workdir / "resume")
    result = trainer.train(resume_from_checkpoint=resume)
    outputs = _finish(params, trainer, loaded, reporter, workdir)
    outputs["train_loss"] = float(result.training_loss)
    reporter.log(outputs)
    return outputs


def _lora_settings(p: TrainingParams) -> dict[str, Any]:
    return {
        "r": p.r, "lora_alpha": p.lora_alpha, "lora_dropout": p.lora_dropout,
        "bias": p.lora_bias, "use_rslora": p.use_rslora, "target_modules": p.target_modules,
    }


def _fetch_rows(reporter: Reporter, ref: str, workdir: Path) -> list[dict[str, Any]]:
    safe = ref.replace("/", "_").replace(":", "_")
    return read_jsonl(reporter.fetch(ref, workdir / "data" / safe))


def _common_args(p: TrainingParams, workdir: Path, has_eval: bool) -> dict[str, Any]:
    """TrainingArguments shared by every trainer; CPU runs swap GPU-only choices out."""
    import torch

    gpu = torch.cuda.is_available()
    optim = p.optim if gpu or "8bit" not in p.optim else "adamw_torch"
    strategy = (p.test_file_eval_strategy or "no") if has_eval else "no"
    return {
        "output_dir": str(workdir / p.output_dir),
        "num_train_epochs": p.epochs,
        "max_steps": p.max_steps or -1,
        "per_device_train_batch_size": p.per_device_train_batch_size,
        "per_device_eval_batch_size": p.eval_batch_size,
        "gradient_accumulation_steps": p.gradient_accumulation_steps,
        "learning_rate": p.learning_rate,
        "warmup_steps": p.warmup_steps,
        "weight_decay": p.weight_decay,
        "lr_scheduler_type": p.lr_scheduler_type,
        "logging_steps": p.logging_steps,
        "logging_nan_inf_filter": False,  # a NaN loss must reach MetricsCallback, not be averaged
        "seed": p.seed,
        "optim": optim,
        "save_strategy": "steps" if p.save_steps else "no",
        "save_steps": p.save_steps or 500,
        "eval_strategy": strategy,
        "eval_steps": p.test_file_eval_steps,
        "bf16": gpu and torch.cuda.is_bf16_supported(),
        "fp16": False,
        "use_cpu": not gpu,
        # unsloth checkpoints on GPU; tiny CPU runs need none (TRL's configs default to on)
        _checkpointing_arg(): False,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def _checkpointing_arg() -> str:
    """transformers 5 renamed `gradient_checkpointing` (the old name warns, and goes in v6)."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else (
        "gradient_checkpointing")


def _sft_rows(p: TrainingParams, tokenizer: Any, rows: list[dict], mode: str) -> list[dict]:
    """Tokenized examples; those with nothing to train on are dropped (with a note)."""
    out = []
    for row in rows:
        enc = encode_conversation(
            tokenizer, row["messages"], mode=mode,
            train_on_responses_only=p.train_on_responses_only, max_len=p.max_seq_length,
        )
        if mode == "weighted":
            if any(w != 0 for w in enc.weights[1:]):
                out.append({"input_ids": enc.input_ids, "weights": enc.weights})
        elif any(lab != -100 for lab in enc.labels[1:]):
            out.append({"input_ids": enc.input_ids, "labels": enc.labels})
    if len(out) < len(rows):
        print(f"note: {len(rows) - len(out)} of {len(rows)} examples have no trained tokens "
              f"(within max_seq_length={p.max_seq_length}) and are skipped", flush=True)
    if not out:
        raise ValueError("no example has any token to train on")
    return out


def _build_trainer(
    p: TrainingParams, loaded: Any, reporter: Reporter, workdir: Path, weighted: bool
) -> Any:
    from datasets import Dataset

    tok = loaded.tokenizer
    train_rows = _fetch_rows(reporter, p.training_file, workdir)
    test_rows = _fetch_rows(reporter, p.test_file, workdir) if p.test_file else None
    common = _common_args(p, workdir, has_eval=test_rows is not None)
    callbacks = _callbacks(p, loaded, reporter, workdir)
    if p.loss in ("dpo", "orpo"):
        return _preference_trainer(p, loaded, common, callbacks, train_rows, test_rows)
    mode = "weighted" if weighted else "sft"
    train = Dataset.from_list(_sft_rows(p, tok, train_rows, mode))
    test = Dataset.from_list(_sft_rows(p, tok, test_rows, mode)) if test_rows else None
    if weighted:
        from payloads._weighted import WeightedTrainer, weighted_args

        return WeightedTrainer(
            model=loaded.model, args=weighted_args(common), train_dataset=train,
            eval_dataset=test, processing_class=tok, callbacks=callbacks,
        )
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(**common, max_length=p.max_seq_length, packing=False)
    return SFTTrainer(
        model=loaded.model, args=args, train_dataset=train, eval_dataset=test,
        processing_class=tok, callbacks=callbacks,
    )


def _preference_trainer(p, loaded, common, callbacks, train_rows, test_rows) -> Any:
    from datasets import Dataset

    train = Dataset.from_list([to_preference_row(r) for r in train_rows])
    test = Dataset.from_list([to_preference_row(r) for r in test_rows]) if test_rows else None
    if p.loss == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**common, beta=p.beta, max_length=p.max_seq_length)
        trainer_cls = DPOTrainer
    else:
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        args = ORPOConfig(**common, beta=p.beta, max_length=p.max_seq_length)
        trainer_cls = ORPOTrainer
    return trainer_cls(
        model=loaded.model, args=args, train_dataset=train, eval_dataset=test,
        processing_class=loaded.tokenizer, callbacks=callbacks,
    )


def _callbacks(p: TrainingParams, loaded: Any, reporter: Reporter, workdir: Path) -> list[Any]:
    from payloads._callbacks import (
        CheckpointCallback,
        LogpCallback,
        MetricsCallback,
        SamplingCallback,
    )
    from payloads._generate import Sampling

    out: list[Any] = [MetricsCallback(reporter), CheckpointCallback(reporter)]
    if p.logp_callback_datasets:
        datasets = {
            name: [
                encode_conversation(loaded.tokenizer, r["messages"], mode="weighted",
                                    max_len=p.max_seq_length)
                for r in _fetch_rows(reporter, ref, workdir)
            ]
            for name, ref in p.logp_callback_datasets.items()
        }
        out.append(LogpCallback(reporter, datasets, _every(p.eval_every_n_steps, p)))
    for spec in p.sampling_callbacks or []:
        rows = _fetch_rows(reporter, spec.dataset, workdir)
        sampling = Sampling(max_tokens=spec.max_tokens, temperature=spec.temperature,
                            top_p=spec.top_p, seed=p.seed)
        out.append(SamplingCallback(reporter, loaded.tokenizer, [r["messages"] for r in rows],
                                    rows, _every(spec.eval_steps, p), spec.tag, sampling))
    return out


def _every(steps: int | str, p: TrainingParams) -> int:
    """A callback's cadence in steps: "log" is every logging step (openweights' meaning)."""
    return p.logging_steps if steps == "log" else max(1, int(steps))


def _resume_point(p: TrainingParams, reporter: Reporter, dest: Path) -> str | None:
    """A local checkpoint directory to resume from: explicit, or the job's last one."""
    ref, step = p.resume_from_checkpoint, None
    if ref is None:
        last = reporter.last_checkpoint()
        if last is None:
            return None
        step, ref = last
    local = Path(ref).expanduser()
    if local.is_dir():
        return str(local)
    archive = reporter.fetch(ref, Path(tempfile.mkdtemp()) / "checkpoint.tar")
    path = unpack(archive, dest / f"checkpoint-{step if step is not None else 'given'}")
    print(f"resuming from checkpoint {ref} (step {step})", flush=True)
    return str(path)


def _finish(p: TrainingParams, trainer: Any, loaded: Any, reporter: Reporter, workdir: Path):
    """Save and upload the final adapter (or model); push to the hub when a token is set."""
    final = workdir / "final"
    trainer.save_model(str(final))
    loaded.tokenizer.save_pretrained(str(final))
    key = "adapter_file" if p.is_peft else "model_file"
    file_id = reporter.upload(pack(final, workdir / f"{key.removesuffix('_file')}.tar"))
    outputs: dict[str, Any] = {"model": p.finetuned_model_id, key: file_id}
    pushed = bool(os.environ.get("HF_TOKEN")) and _push(p, trainer.model, loaded.tokenizer, final)
    outputs["pushed"] = pushed
    return outputs


def merged(final: Path) -> Any:
    """The adapter saved in `final` merged into its base, reloaded unquantized in its own
    dtype into CPU memory (merging into a 4-bit base would round the adapter's update away,
    and the GPU still holds the trained model)."""
    from peft import AutoPeftModelForCausalLM

    model = AutoPeftModelForCausalLM.from_pretrained(str(final), dtype="auto", device_map="cpu")
    return model.merge_and_unload()


def _push(
    p: TrainingParams, model: Any, tokenizer: Any, final: Path
) -> bool:  # pragma: no cover - hub
    """Push to `finetuned_model_id` on the hub (merged into the base if asked)."""
    if p.is_peft and p.merge_before_push:
        model = merged(final) if p.load_in_4bit else model.merge_and_unload()
    model.push_to_hub(p.finetuned_model_id, private=p.push_to_private)
    tokenizer.push_to_hub(p.finetuned_model_id, private=p.push_to_private)
    return True


def main(argv: list[str] | None = None) -> None:
    import torch

    from payloads._callbacks import TrainingCrash

    args = list(sys.argv[1:] if argv is None else argv)
    weighted = "--weighted" in args
    data = read_params([a for a in args if a != "--weighted"], "payloads.train [--weighted]")
    params = (WeightedSFTParams if weighted else TrainingParams).model_validate(data)
    reporter = make_reporter()
    try:
        run_training(params, reporter, Path.cwd() / "work", weighted=weighted)
    except TrainingCrash as exc:
        fail(f"training crashed: {exc}")
    except torch.OutOfMemoryError as exc:
        fail(f"out of memory: {exc}; lower per_device_train_batch_size or max_seq_length, "
             "or use load_in_4bit")
    finally:
        if hasattr(reporter, "close"):
            reporter.close()


if __name__ == "__main__":
    main()
