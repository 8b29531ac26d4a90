"""payloads: what runs inside built-in jobs (training, inference, serving, evals).

Each payload is a module with a `main()` run by a job's entrypoint (`python -m payloads.train`,
`payloads.infer`, `payloads.serve`, `payloads.inspect_eval`) and a core function that takes
plain arguments and a `Reporter`, so it runs with or without an ow server. `payloads.jobs`
registers the built-in job types (`fine_tuning`, `weighted_sft`, `inference`, `api`,
`inspect_ai`) for the client. On a GPU the payloads use unsloth and vLLM; on a CPU
transformers + peft + trl (see `payloads.tiny` for the local test model).

Imports: `ow.sdk` and ML libraries, the heavy ones lazily; `import payloads` imports nothing.
"""

import logging

# bitsandbytes (imported by peft whenever it is installed) warns on every CPU import that it
# could not fetch an optional kernel from the hub; its plain-torch fallback is what runs here.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
