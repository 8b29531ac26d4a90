"""Serving payload: an OpenAI-compatible HTTP API for a model and its LoRA adapters.

Entrypoint (what an `api` job runs; it serves until the job is canceled or times out):

    python -m payloads.serve '<validated params as JSON>'

On a GPU with vLLM installed (or with `PAYLOADS_INFERENCE_BACKEND=vllm`) this runs vLLM's
own OpenAI server as a child process. Elsewhere a small stdlib server answers over
transformers: `GET /health`, `GET /v1/models`, `POST /v1/chat/completions` and
`POST /v1/completions`, with `stream: true` sent token by token as server-sent events,
`usage` counted, and `logprobs` (chat: `logprobs: true` + `top_logprobs`) answered without
streaming. Requests are generated one at a time. It listens on 127.0.0.1 unless `host` says
otherwise (0.0.0.0 on a RunPod pod, whose proxy must reach it). When it listens, the run
logs `{"status": "ready", "base_url", "models"}` so
the client (`ow.api.deploy`) knows where to connect. With `api_key` set, requests need
`Authorization: Bearer <api_key>`.

Imports: stdlib, pydantic params, sibling payload modules; torch/transformers/peft lazily.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from payloads._generate import Sampling
from payloads._reporter import Reporter, make_reporter, read_params
from payloads.params import ApiParams

__all__ = ["Engine", "main", "make_server", "serve"]


class Engine:
    """A loaded base model with named adapters; one generation at a time."""

    def __init__(self, model: str, lora_adapters: list[str], reporter: Reporter | None = None):
        from payloads._models import load_for_inference, resolve

        self.lock = threading.Lock()
        self.model, self.tokenizer = load_for_inference(model, reporter)
        self.names: dict[str, str | None] = {model: "default" if resolve(model).adapter else None}
        for i, ref in enumerate(lora_adapters):
            where = resolve(ref, reporter)
            if where.adapter is None:
                raise ValueError(f"lora adapter {ref!r} is not an adapter directory or file")
            self._add_adapter(where.adapter, f"lora{i}")
            self.names[ref] = f"lora{i}"

    def _add_adapter(self, path: str, name: str) -> None:
        if hasattr(self.model, "load_adapter") and hasattr(self.model, "peft_config"):
            self.model.load_adapter(path, adapter_name=name)
        else:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
        self.model.eval()

    @contextmanager
    def using(self, name: str) -> Iterator[None]:
        """Hold the model with `name`'s adapter active (KeyError for a name not served)."""
        if name not in self.names:
            raise KeyError(name)
        adapter = self.names[name]
        with self.lock:
            if adapter is not None:
                self.model.set_adapter(adapter)
                ctx: Any = nullcontext()
            else:
                ctx = self.model.disable_adapter() if hasattr(self.model, "peft_config") \
                    else nullcontext()
            with ctx:
                yield

    def complete(self, name: str, conversations: list[list[dict]], sampling: Sampling):
        from payloads._generate import generate

        with self.using(name):
            return generate(self.model, self.tokenizer, conversations, sampling)

    def stream(self, name: str, conversation: list[dict], sampling: Sampling):
        """Pieces of one completion as generated (see `payloads._generate.stream`)."""
        from payloads._generate import stream

        with self.using(name):
            yield from stream(self.model, self.tokenizer, conversation, sampling)


def _sampling(body: dict[str, Any]) -> Sampling:
    stop = body.get("stop") or []
    return Sampling(
        max_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or 256),
        temperature=float(body.get("temperature", 1.0)),
        top_p=float(body.get("top_p", 1.0)),
        min_tokens=int(body.get("min_tokens", 1)),
        stop=[stop] if isinstance(stop, str) else list(stop),
        seed=body.get("seed"),
        logprobs=_top_k(body),
    )


def _top_k(body: dict[str, Any]) -> int | None:
    """How many log-probs a request asks for per token: chat's `logprobs: true` with
    `top_logprobs: k`, or the completions API's `logprobs: k`; None when it asks for none."""
    asked = body.get("logprobs")
    if asked is None or asked is False:
        return None
    if asked is True:
        return int(body.get("top_logprobs") or 0)
    return int(asked)


def _openai_logprobs(result: dict[str, Any], k: int) -> dict[str, Any]:
    """Our per-position log-probs as OpenAI's chat `choice.logprobs` (top `k` per token)."""
    def entry(e: dict[str, Any]) -> dict[str, Any]:
        token = e["decoded_token"]
        return {"token": token, "logprob": e["logprob"], "bytes": list(token.encode())}

    content = []
    for chosen, position in zip(result["token_ids"], result["logprobs"], strict=True):
        mine = next(e for e in position if e["logprob_key"] == chosen)
        top = sorted((e for e in position if e["rank"] <= k), key=lambda e: e["rank"])
        content.append({**entry(mine), "top_logprobs": [entry(e) for e in top]})
    return {"content": content}


def _chat_response(name: str, results: list[dict], kind: str, k: int | None = None
                   ) -> dict[str, Any]:
    choices = []
    for i, r in enumerate(results):
        choice: dict[str, Any] = {"index": i, "finish_reason": r["finish_reason"]}
        if kind == "chat":
            choice["message"] = {"role": "assistant", "content": r["completion"]}
        else:
            choice["text"] = r["completion"]
        if "logprobs" in r:
            choice["logprobs"] = _openai_logprobs(r, k or 0)
        choices.append(choice)
    tokens = sum(r["tokens"] for r in results)
    prompt = results[0].get("prompt_tokens", 0) if results else 0
    return {
        "id": f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion" if kind == "chat" else "text_completion",
        "created": int(time.time()),
        "model": name,
        "choices": choices,
        "usage": {"prompt_tokens": prompt, "completion_tokens": tokens,
                  "total_tokens": prompt + tokens},
    }


class _Handler(BaseHTTPRequestHandler):
    engine: Engine
    api_key: str | None
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        print(f"{self.address_string()} {fmt % args}", flush=True)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": status}})

    def _authorized(self) -> bool:
        if not self.api_key or self.path == "/health":
            return True
        if self.headers.get("Authorization", "") == f"Bearer {self.api_key}":
            return True
        self._error(401, "missing or wrong API key (Authorization: Bearer …)", "auth_error")
        return False

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if not self._authorized():
            return
        if self.path == "/health":
            self._send(200, {"status": "ok"})
        elif self.path == "/v1/models":
            data = [{"id": n, "object": "model", "owned_by": "ow"} for n in self.engine.names]
            self._send(200, {"object": "list", "data": data})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        kinds = {"/v1/chat/completions": "chat", "/v1/completions": "text"}
        if self.path not in kinds:
            self._error(404, f"no route {self.path}")
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        except json.JSONDecodeError:
            self._error(400, "body is not JSON")
            return
        self._complete(body, kinds[self.path])

    def _complete(self, body: dict[str, Any], kind: str) -> None:
        name = body.get("model") or next(iter(self.engine.names))
        if kind == "chat":
            conv = body.get("messages")
        else:
            conv = [{"role": "user", "content": str(body.get("prompt", ""))}]
        if not isinstance(conv, list) or not conv:
            self._error(400, "messages must be a non-empty list")
            return
        sampling = _sampling(body)
        if body.get("stream"):
            if sampling.logprobs is not None or int(body.get("n", 1)) != 1:
                self._error(400, "this server streams one choice without logprobs: drop "
                                 "`stream`, or `logprobs`/`n` (vLLM's server, on a GPU, "
                                 "streams them)")
                return
            self._stream(name, conv, sampling, kind, body)
            return
        try:
            results = self.engine.complete(name, [conv] * int(body.get("n", 1)), sampling)
        except KeyError:
            self._error(404, f"model {name!r} is not served here; see /v1/models", "not_found")
            return
        self._send(200, _chat_response(name, results, kind, sampling.logprobs))

    def _stream(self, name: str, conv: list[dict], sampling: Sampling, kind: str,
                body: dict[str, Any]) -> None:
        """Server-sent events, one per decoded piece as it is generated, then [DONE]."""
        if name not in self.engine.names:
            self._error(404, f"model {name!r} is not served here; see /v1/models", "not_found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        head = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()),
                "model": name,
                "object": "chat.completion.chunk" if kind == "chat" else "text_completion"}

        def choice(text: str, reason: str | None, first: bool = False) -> dict[str, Any]:
            if kind != "chat":
                return {"index": 0, "text": text, "finish_reason": reason}
            delta = {"role": "assistant", "content": text} if first else {"content": text}
            return {"index": 0, "delta": delta if text or first else {}, "finish_reason": reason}

        self._event({**head, "choices": [choice("", None, first=True)]})
        for piece, end in self.engine.stream(name, conv, sampling):
            if piece:
                self._event({**head, "choices": [choice(piece, None)]})
            if end:
                self._event({**head, "choices": [choice("", end["finish_reason"])]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    usage = {"prompt_tokens": end["prompt_tokens"],
                             "completion_tokens": end["tokens"],
                             "total_tokens": end["prompt_tokens"] + end["tokens"]}
                    self._event({**head, "choices": [], "usage": usage})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _event(self, data: dict[str, Any]) -> None:
        self._chunk(f"data: {json.dumps(data)}\n\n".encode())

    def _chunk(self, raw: bytes) -> None:
        """One piece of a chunked body, sent now (an empty one ends the body)."""
        self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()


def make_server(engine: Engine, host: str, port: int, api_key: str | None) -> ThreadingHTTPServer:
    """A bound (not yet serving) HTTP server; port 0 picks a free port."""
    handler = type("Handler", (_Handler,), {"engine": engine, "api_key": api_key})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def public_base_url(host: str, port: int) -> str:
    """Where clients reach the server: the RunPod proxy on a pod, else the bound address."""
    pod = os.environ.get("RUNPOD_POD_ID")
    if pod:
        return f"https://{pod}-{port}.proxy.runpod.net/v1"
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://{shown}:{port}/v1"


def bind_host(host: str | None) -> str:
    """The address to listen on: as asked, else loopback — except on a RunPod pod, whose
    proxy reaches the server from outside the pod (the pod is the sandbox there)."""
    if host:
        return host
    return "0.0.0.0" if os.environ.get("RUNPOD_POD_ID") else "127.0.0.1"  # noqa: S104


def serve(p: ApiParams, reporter: Reporter) -> None:
    """Serve until SIGTERM/SIGINT (the job is canceled or timed out)."""
    p = p.model_copy(update={"host": bind_host(p.host)})
    from payloads._models import use_vllm, vllm_fits

    if use_vllm():
        if vllm_fits(p.model, False):
            _run_vllm(p, reporter)
        print("4-bit: this vLLM has no bitsandbytes quantization; serving with transformers "
              "instead", flush=True)
    engine = Engine(p.model, p.lora_adapters, reporter)
    server = make_server(engine, p.host, p.port, p.api_key)
    port = server.server_address[1]
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    reporter.log({"status": "ready", "base_url": public_base_url(p.host, port), "port": port,
                  "models": list(engine.names)})
    print(f"serving {list(engine.names)} on {p.host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _run_vllm(p: ApiParams, reporter: Reporter) -> None:  # pragma: no cover - tests/vllm
    """Run vLLM's OpenAI server as a child; announce it once healthy; stop it on SIGTERM."""
    import subprocess
    import urllib.request

    from payloads._models import resolve, vllm_lora_rank

    where = resolve(p.model, reporter)
    if p.port == 0:  # a free port chosen here: the child is polled and announced on it
        p = p.model_copy(update={"port": _free_port(p.host)})
    # an adapter as the model: its base serves under the base's own name (vLLM refuses a LoRA
    # that shares a served model's name), the adapter under the name the client asked for
    served = where.base if where.adapter else p.model
    args = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", where.base,
            "--served-model-name", served, "--max-model-len", str(p.max_model_len),
            "--max-num-seqs", str(p.max_num_seqs), "--host", p.host, "--port", str(p.port)]
    adapters = ([(p.model, where.adapter)] if where.adapter else []) + [
        (ref, resolve(ref, reporter).adapter) for ref in p.lora_adapters
    ]
    for ref, path in adapters:
        if path is None:
            raise ValueError(f"lora adapter {ref!r} is not an adapter directory or file")
    if adapters:
        rank = max(p.max_lora_rank, vllm_lora_rank([str(path) for _, path in adapters]))
        loras = max(p.max_loras, len(adapters))
        args += ["--enable-lora", "--max-lora-rank", str(rank), "--max-loras", str(loras),
                 "--lora-modules", *(f"{n}={a}" for n, a in adapters)]
    if p.quantization:
        args += ["--quantization", p.quantization]
    if p.kv_cache_dtype:
        args += ["--kv-cache-dtype", p.kv_cache_dtype]
    if p.api_key:
        args += ["--api-key", p.api_key]
    child = subprocess.Popen(args)
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    while child.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{p.port}/health", timeout=2):
                break
        except OSError:
            time.sleep(2)
    else:
        raise SystemExit(f"vLLM exited with code {child.returncode} before it was ready")
    reporter.log({"status": "ready", "base_url": public_base_url(p.host, p.port),
                  "port": p.port, "models": [p.model, *p.lora_adapters]})
    raise SystemExit(child.wait())


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    data = read_params(list(sys.argv[1:] if argv is None else argv), "payloads.serve")
    reporter = make_reporter()
    try:
        serve(ApiParams.model_validate(data), reporter)
    finally:
        if hasattr(reporter, "close"):
            reporter.close()


if __name__ == "__main__":
    main()
