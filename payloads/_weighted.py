"""Token-weighted SFT: a Trainer whose loss weights each target token by its block's weight.

loss = -Σ w_t · log p(x_t | x_<t) / Σ |w_t|. A positive weight trains as usual, zero ignores the
token, a negative weight pushes its likelihood down. Weights come from `_data.encode_conversation`
(mode "weighted"); the collator pads ids with the pad token and weights with 0.

Imports: torch, transformers.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer, TrainingArguments

__all__ = ["WeightedTrainer", "collate", "weighted_args", "weighted_loss"]


def weighted_args(common: dict[str, Any]) -> TrainingArguments:
    """The shared arguments, keeping the `weights` column the model's forward does not take."""
    return TrainingArguments(**common, remove_unused_columns=False, label_names=["weights"])


def collate(pad_id: int, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Right-pad a batch: input_ids, attention_mask and weights (0 on padding)."""
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    weights = torch.zeros((len(features), width), dtype=torch.float32)
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        ids[i, :n] = torch.tensor(f["input_ids"])
        mask[i, :n] = 1
        weights[i, :n] = torch.tensor(f["weights"], dtype=torch.float32)
    return {"input_ids": ids, "attention_mask": mask, "weights": weights}


def weighted_loss(logits: torch.Tensor, input_ids: torch.Tensor, weights: torch.Tensor):
    """Weighted next-token NLL over a batch (logits [B, T, V], ids and weights [B, T])."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    target = logp.gather(-1, input_ids[:, 1:, None])[..., 0]
    w = weights[:, 1:].to(target.dtype)
    return -(w * target).sum() / w.abs().sum().clamp(min=1.0)


class WeightedTrainer(Trainer):
    """A Trainer computing `weighted_loss`; the batch carries `weights` beside the ids."""

    def __init__(self, *args: Any, processing_class: Any = None, **kwargs: Any):
        pad_id = processing_class.pad_token_id
        super().__init__(
            *args, processing_class=processing_class,
            data_collator=lambda feats: collate(pad_id, feats), **kwargs,
        )
        # the loss is a mean per micro-batch: let the Trainer average over accumulation steps
        self.model_accepts_loss_kwargs = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weights = inputs.pop("weights")
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        loss = weighted_loss(outputs.logits, inputs["input_ids"], weights)
        return (loss, outputs) if return_outputs else loss
