from ow import OpenWeights

ow = OpenWeights()

training_file = ow.files.upload("preferences.jsonl", purpose="preference")["id"]

job = ow.fine_tuning.create(
    model="unsloth/llama-3-8b-Instruct",
    training_file=training_file,
    loss="dpo",
    beta=0.1,
    epochs=1,
    learning_rate=1e-5,
    r=16,
)
print(job)
print(
    f"The model will be pushed to: {job.params['validated_params']['finetuned_model_id']}"
)
