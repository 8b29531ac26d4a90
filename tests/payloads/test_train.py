"""Fine-tuning payload on the tiny model: SFT, resume, weighted SFT, DPO, ORPO, crashes."""

import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from payloads._reporter import LocalReporter
from payloads.params import TrainingParams, WeightedSFTParams, hf_org
from payloads.train import run_training
from tests.payloads import data

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _params(cls, model, **kw):
    base = dict(
        model=str(model), learning_rate=1e-3, r=8, lora_alpha=16, warmup_steps=0,
        per_device_train_batch_size=4, gradient_accumulation_steps=1, max_seq_length=64,
        save_steps=0, max_steps=2,
    )
    return cls(**{**base, **kw})


def _losses(reporter):
    return [r["loss"] for r in reporter.logs if "loss" in r and "step" in r]


def test_sft_lowers_loss_checkpoints_and_uploads_the_adapter(tiny_model, tmp_path):
    train = data.conversations(tmp_path / "train.jsonl")
    p = _params(TrainingParams, tiny_model, training_file=str(train), max_steps=8, save_steps=4,
                train_on_responses_only=True)
    rep = LocalReporter(tmp_path / "out")
    out = run_training(p, rep, tmp_path / "work")

    losses = _losses(rep)
    assert len(losses) == 8
    assert losses[-1] < losses[0]
    steps = [r["step"] for r in rep.logs if "loss" in r and "learning_rate" in r]
    assert steps == list(range(1, 9))
    assert [s for s, _ in rep.checkpoints] == [4, 8]
    assert rep.logs[-1] == out
    assert out["model"] == f"{hf_org()}/{tiny_model.name}-local"  # the template, outside a job
    with tarfile.open(out["adapter_file"]) as tar:
        names = tar.getnames()
    assert "./adapter_config.json" in names
    assert "./adapter_model.safetensors" in names


def test_sft_resumes_from_the_last_checkpoint(tiny_model, tmp_path):
    train = data.conversations(tmp_path / "train.jsonl")
    first = LocalReporter(tmp_path / "first")
    run_training(_params(TrainingParams, tiny_model, training_file=str(train), max_steps=2,
                         save_steps=2), first, tmp_path / "w1")
    again = LocalReporter(tmp_path / "again")
    again.checkpoints = list(first.checkpoints)  # what ow.run.last_checkpoint() would return
    run_training(_params(TrainingParams, tiny_model, training_file=str(train), max_steps=4,
                         save_steps=2), again, tmp_path / "w2")
    steps = [r["step"] for r in again.logs if "learning_rate" in r]
    assert steps == [3, 4]


def test_weighted_sft_pushes_negative_blocks_down(tiny_model, tmp_path):
    train = data.weighted(tmp_path / "w.jsonl")
    p = _params(WeightedSFTParams, tiny_model, training_file=str(train), max_steps=3,
                logp_callback_datasets={"in-distribution": str(train)}, eval_every_n_steps=3)
    rep = LocalReporter(tmp_path / "out")
    run_training(p, rep, tmp_path / "work", weighted=True)
    logp = {(r["step"], r["tag"]): r["logp"] for r in rep.logs if r.get("type") == "logp"}
    assert logp[(3, "minimize")] < logp[(0, "minimize")]
    assert logp[(3, "maximize")] > logp[(0, "maximize")]
    assert (0, "in-distribution") in logp


@pytest.mark.parametrize("loss", ["dpo", "orpo"])
def test_preference_losses_run(tiny_model, tmp_path, loss):
    prefs = data.preferences(tmp_path / "prefs.jsonl")
    rep = LocalReporter(tmp_path / "out")
    out = run_training(_params(TrainingParams, tiny_model, training_file=str(prefs), loss=loss,
                               per_device_train_batch_size=2), rep, tmp_path / "work")
    assert all(math.isfinite(x) for x in _losses(rep))
    assert len(_losses(rep)) == 2
    assert Path(out["adapter_file"]).exists()


def test_sampling_callback_uploads_completions(tiny_model, tmp_path):
    train = data.conversations(tmp_path / "train.jsonl", n=4)
    prompts = data.prompts(tmp_path / "prompts.jsonl")
    spec = {"dataset": str(prompts), "eval_steps": 1, "tag": "samples", "max_tokens": 4}
    rep = LocalReporter(tmp_path / "out")
    run_training(_params(TrainingParams, tiny_model, training_file=str(train), max_steps=1,
                         sampling_callbacks=[spec]), rep, tmp_path / "work")
    samples = [r for r in rep.logs if r.get("tag") == "samples"]
    assert [r["step"] for r in samples] == [1]
    assert Path(samples[0]["file"]).read_text().count("completion") == 2


def test_nan_loss_exits_nonzero_with_the_cause(tiny_model, tmp_path):
    train = data.conversations(tmp_path / "train.jsonl", n=4)
    p = _params(TrainingParams, tiny_model, training_file=str(train), learning_rate=1e30,
                max_steps=4, per_device_train_batch_size=1)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    env.pop("OW_RUN_ID", None)
    proc = subprocess.run(
        [sys.executable, "-m", "payloads.train", p.model_dump_json()],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "ERROR: training crashed: loss became nan" in proc.stderr


def test_qlora_4bit_trains_infers_and_merges_on_cpu(tiny_model, tmp_path):
    """load_in_4bit: NF4 base weights (bitsandbytes, which runs on CPU too) + a LoRA adapter."""
    pytest.importorskip("bitsandbytes")
    import torch
    from bitsandbytes.nn import Linear4bit

    from payloads._models import load_for_inference
    from payloads.train import merged

    train = data.conversations(tmp_path / "train.jsonl")
    p = _params(TrainingParams, tiny_model, training_file=str(train), load_in_4bit=True,
                max_steps=6)
    rep = LocalReporter(tmp_path / "out")
    out = run_training(p, rep, tmp_path / "work")
    losses = _losses(rep)
    assert len(losses) == 6
    assert losses[-1] < losses[0]
    with tarfile.open(out["adapter_file"]) as tar:
        assert "./adapter_model.safetensors" in tar.getnames()

    final = tmp_path / "work" / "final"
    quantized, tok = load_for_inference(str(final), load_in_4bit=True)
    assert any(isinstance(m, Linear4bit) for m in quantized.modules())
    ids = tok(["hello there"], return_tensors="pt")["input_ids"]
    full = merged(final)  # what merge_before_push pushes: unquantized base + the adapter
    assert not any(isinstance(m, Linear4bit) for m in full.modules())
    with torch.no_grad():
        a = quantized(input_ids=ids).logits.flatten()
        b = full(input_ids=ids).logits.flatten()
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.95  # NF4 rounding only
    generated = quantized.generate(ids, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] == ids.shape[1] + 4


def test_merged_adapter_equals_the_adapter_on_its_base(tiny_model, tmp_path):
    import torch

    from payloads._models import load_for_inference
    from payloads.train import merged

    train = data.conversations(tmp_path / "train.jsonl", n=4)
    run_training(_params(TrainingParams, tiny_model, training_file=str(train), learning_rate=1e-2),
                 LocalReporter(tmp_path / "out"), tmp_path / "work")
    final = tmp_path / "work" / "final"
    adapted, tok = load_for_inference(str(final))
    base, _ = load_for_inference(str(tiny_model))
    ids = tok(["hello there"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a, b, c = (m(input_ids=ids).logits for m in (adapted, merged(final), base))
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, c, atol=1e-4)  # the adapter did change the model


def test_4bit_needs_lora_and_bitsandbytes(tiny_model, tmp_path, monkeypatch):
    train = data.conversations(tmp_path / "train.jsonl", n=2)
    full = _params(TrainingParams, tiny_model, training_file=str(train), load_in_4bit=True,
                   is_peft=False)
    with pytest.raises(ValueError, match="load_in_4bit trains LoRA adapters only"):
        run_training(full, LocalReporter(tmp_path / "o"), tmp_path / "w")
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    p = _params(TrainingParams, tiny_model, training_file=str(train), load_in_4bit=True)
    with pytest.raises(RuntimeError, match=r"load_in_4bit needs bitsandbytes.*pip install"):
        run_training(p, LocalReporter(tmp_path / "o"), tmp_path / "w")
