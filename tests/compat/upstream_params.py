"""openweights' job parameters: names and defaults, as read in its code (not copied from it).

Read from longtermrisk/openweights at commit 64c3de0 (`openweights/jobs/unsloth/validate.py`,
`weighted_sft/validate.py`, `inference/validate.py`, `vllm/validate.py`, `inspect_ai.py`, the
`create(...)`/`deploy(...)` signatures and `OpenWeights.__init__`). `test_params.py` turns each
row into a test: ow accepts the parameter with this default (or refuses it with a message
naming the ow equivalent, for the rows in REFUSED).

Each job: the ow job type that takes it, the params a call needs, and {name: default}.
`REQUIRED` marks a parameter openweights requires (ow must accept it; ow may default it).
"""

REQUIRED = object()

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

_TRAINING_COMMON = {
    "model": REQUIRED,
    "training_file": REQUIRED,
    "test_file": None,
    "chat_template": "default",
    "finetuned_model_id": "{org_id}/{model_name}-{job_id}",
    "job_id_suffix": None,
    "max_seq_length": 2048,
    "load_in_4bit": False,
    "is_peft": True,
    "target_modules": TARGET_MODULES,
    "lora_bias": "none",
    "r": 16,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "use_rslora": True,
    "merge_before_push": True,
    "push_to_private": True,
    "epochs": 1,
    "max_steps": None,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 8,
    "warmup_steps": 5,
    "learning_rate": 1e-4,
    "logging_steps": 1,
    "weight_decay": 0.01,
    "lr_scheduler_type": "linear",
    "seed": 3407,
    "save_steps": 5000,
    "output_dir": "./tmp",
    "train_on_responses_only": True,
    "logp_callback_datasets": {},
    "sampling_callbacks": None,
    "eval_batch_size": 8,
    "meta": None,
}

JOBS = {
    # ow.fine_tuning.create(...): unsloth's TrainingConfig
    "fine_tuning": {
        "ow": "fine_tuning",
        "needs": {"model": "org/Model-0.5B", "training_file": "conversations:file-abc"},
        "params": {
            **_TRAINING_COMMON,
            "loss": REQUIRED,
            "model_naming_extra_parameters": None,
            "optim": "adamw_8bit",
            "beta": 0.1,
            "packing": True,
            "eval_every_n_steps": 5000,
            "test_file_eval_steps": None,
            "test_file_eval_strategy": "epoch",
        },
    },
    # ow.weighted_sft.create(...): weighted_sft's SFTConfig
    "weighted_sft": {
        "ow": "weighted_sft",
        "needs": {"model": "org/Model-0.5B", "training_file": "conversations:file-abc"},
        "params": {
            **_TRAINING_COMMON,
            "loss": "sft",
            "ft_id_suffix": None,
            "optim": "adamw_torch",
            "eval_every_n_steps": "log",
        },
    },
    # ow.inference.create(...): InferenceConfig
    "inference": {
        "ow": "inference",
        "needs": {"model": "org/Model-0.5B", "input_file_id": "conversations:file-abc"},
        "params": {
            "model": REQUIRED,
            "input_file_id": REQUIRED,
            "chat_template": "default",
            "job_id_suffix": None,
            "use_batch": True,
            "max_tokens": 600,
            "temperature": 1.0,
            "top_p": 1.0,
            "stop": [],
            "prefill": "",
            "min_tokens": 1,
            "max_model_len": 8196,
            "logprobs": None,
            "n_completions_per_prompt": 1,
            "quantization": None,
            "load_format": None,
        },
    },
    # the api job behind ow.api.deploy(...): ApiConfig (after its validator: max_loras -1
    # becomes the number of adapters, 0 here)
    "api": {
        "ow": "api",
        "needs": {"model": "org/Model-0.5B"},
        "params": {
            "model": REQUIRED,
            "lora_adapters": [],
            "max_lora_rank": 16,
            "max_loras": 0,
            "max_model_len": 2048,
            "max_num_seqs": 16,
            "quantization": None,
            "kv_cache_dtype": None,
        },
    },
    # ow.inspect_ai.create(...): InspectAiConfig
    "inspect_ai": {
        "ow": "inspect_ai",
        "needs": {"model": "org/Model-0.5B", "eval_name": "inspect_evals/gpqa_diamond"},
        "params": {"model": REQUIRED, "eval_name": REQUIRED, "max_model_len": 8192,
                   "options": " "},
    },
    # ow.logprob.create(...): LogProbJobModel (ow's job is `logprob_eval`; `dataset` is its
    # input_file_id)
    "logprob": {
        "ow": "logprob_eval",
        "needs": {"model": "org/Model-0.5B", "dataset": "conversations:file-abc"},
        "params": {"model": REQUIRED, "dataset": REQUIRED, "batch_size": 8,
                   "chat_template": "default"},
    },
    # ow.mmlu_pro.create(...): MMLUProArgs (its requires_vram_gb is a create keyword in ow)
    "mmlu_pro": {
        "ow": "mmlu_pro",
        "needs": {"model": "org/Model-0.5B"},
        "params": {"model": REQUIRED, "ntrain": 5, "selected_subjects": "all",
                   "save_dir": "uploads", "global_record_file": "eval_record_collection.csv",
                   "gpu_util": "0.9"},
    },
}

#: SamplingCallbackModel, one entry of `sampling_callbacks` (unsloth's; weighted_sft's
#: defaults eval_steps to "log")
SAMPLING_CALLBACK = {
    "needs": {"dataset": "conversations:file-abc"},
    "params": {"dataset": REQUIRED, "eval_steps": 10, "batch_size": 8, "tag": "samples",
               "temperature": 0, "max_tokens": 600},
}

#: keyword arguments of every built-in job's `create(...)`, beside its params
CREATE_KWARGS = {"requires_vram_gb": "guess", "allowed_hardware": None, "docker_image": None}

#: keyword arguments of `OpenWeights(...)`
CLIENT_KWARGS = {
    "auth_token": None,  # else $OPENWEIGHTS_API_KEY
    "organization_id": None,
    "use_async": False,
    "deploy_kwargs": {"max_model_len": 2048},
    "supabase_url": "https://<project>.supabase.co",
    "supabase_key": "<anon key>",
}

#: parameters ow refuses, with a word its message must contain (the ow equivalent)
REFUSED = {
    ("client", "supabase_url"): "OW_URL",
    ("client", "supabase_key"): "OW_TOKEN",
}
