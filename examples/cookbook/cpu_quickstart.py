"""The cookbook's flow on a CPU: fine-tune a tiny local model, then sample from the adapter.

Run `ow up` first. The model is built here (random weights, a tokenizer trained on a few
sentences), so nothing is downloaded and the outputs are nonsense: this checks the pipeline,
not the model. Usage: python examples/cookbook/cpu_quickstart.py
"""

import json
import os
import tempfile

from ow import OpenWeights
from payloads.tiny import build_tiny_model

HERE = os.path.dirname(os.path.abspath(__file__))

ow = OpenWeights()
model = str(build_tiny_model(os.path.join(tempfile.gettempdir(), "ow-tiny-model")))

training_file = ow.files.upload(os.path.join(HERE, "sft/data/train.jsonl"), purpose="conversations")["id"]
job = ow.fine_tuning.create(
    model=model,
    training_file=training_file,
    loss="sft",
    epochs=1,
    max_steps=6,
    learning_rate=1e-3,
    r=8,
    save_steps=3,
    per_device_train_batch_size=4,
    gradient_accumulation_steps=1,
    max_seq_length=128,
    train_on_responses_only=True,
)
print("fine-tuning", job.id)
job = job.wait()
print("outputs:", job.outputs)
for event in ow.events.list(job_id=job.id):
    if "loss" in event["data"]:
        print("step", event["data"]["step"], "loss", round(event["data"]["loss"], 3))

prompts = ow.files.upload(os.path.join(HERE, "inference/prompts.jsonl"), purpose="conversations")["id"]
inference = ow.inference.create(
    model=job.outputs["adapter_file"],  # a packed LoRA adapter; its base is the tiny model
    input_file_id=prompts,
    max_tokens=12,
    temperature=0,
    requires_vram_gb=0,
).wait()
for line in ow.files.content(inference.outputs["file"]).decode().splitlines()[:3]:
    row = json.loads(line)
    print(repr(row["messages"][-1]["content"]), "->", repr(row["completion"]))
