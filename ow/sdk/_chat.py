"""`ow.chat.completions.create(...)`: chat with a model as openweights' chat client does.

A model that no deployment of this client serves is deployed on first use: requests that
arrive together are gathered for a moment and deployed with `multi_deploy` (one server per
base model, its LoRA adapters beside it), with the client's `deploy_kwargs`; those
deployments live until the client closes. A model whose name looks like OpenAI's (`gpt-*`,
`o1*`, `o3*`, `o4*`, `chatgpt-*`) goes to the OpenAI-compatible endpoint the `openai` package
finds in `OPENAI_BASE_URL`/`OPENAI_API_KEY`. Requests go through the `openai` package's
client, so answers are its objects (`ChatCompletion`, or a stream with `stream=True`), at
most `max_concurrency` at once (the rest wait: backpressure, not errors). A request that
carries a `seed` (and does not stream) is cached on disk under `<ow home>/cache/chat/`.

Imports: stdlib, anyio, `ow.core`, sibling sdk modules; the `openai` package lazily.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ow.core.errors import ApiError, ConfigError
from ow.core.ids import canonical_json
from ow.sdk._resource import AsyncResource

if TYPE_CHECKING:
    from ow.sdk._client import AsyncOpenWeights

__all__ = ["AsyncChat", "looks_like_openai"]

log = logging.getLogger(__name__)

_OPENAI_NAMES = re.compile(r"^(gpt-|o\d|chatgpt-|ft:gpt-)", re.IGNORECASE)
#: how long requests for models not yet deployed are gathered into one multi_deploy
GATHER_S = 0.5


def looks_like_openai(model: str) -> bool:
    """A model name that OpenAI serves (`gpt-4o`, `o3-mini`, …), not an open-weight one."""
    return bool(_OPENAI_NAMES.match(model))


class _Completions:
    def __init__(self, chat: AsyncChat):
        self.chat = chat

    async def create(self, *, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        """An OpenAI chat completion (a `ChatCompletion`, or a stream with `stream=True`)."""
        return await self.chat.complete(model, messages, **kwargs)


class AsyncChat(AsyncResource):
    """`ow.chat`: deploy-on-first-use chat client with an on-disk cache for seeded requests."""

    def __init__(self, client: AsyncOpenWeights, max_concurrency: int = 32):
        super().__init__(client)
        self.limiter = anyio.CapacityLimiter(max_concurrency)
        self.completions = _Completions(self)
        self._queue: list[str] = []  # models waiting to be deployed together
        self._ready: dict[str, anyio.Event] = {}
        self._failed: dict[str, BaseException] = {}
        self._started: list[Any] = []  # deployments this chat started (closed with it)
        self._keepers: list[Any] = []  # their lease renewals, where the client can run them
        self._openai: Any = None

    @property
    def cache_dir(self) -> Path:
        return self.client.config.home_path / "cache" / "chat"

    async def complete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        from openai.types.chat import ChatCompletion

        body = {"model": model, "messages": messages, **kwargs}
        cache = self._cache_path(body) if "seed" in kwargs and not kwargs.get("stream") else None
        if cache is not None and cache.exists():
            return ChatCompletion.model_validate(json.loads(cache.read_text()))
        target = await self._client_for(model)
        async with self.limiter:
            answer = await target.chat.completions.create(model=model, messages=messages,
                                                           **kwargs)
        if kwargs.get("stream"):
            return answer
        data = answer.model_dump(mode="json")
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(cache)
        return ChatCompletion.model_validate(data)

    async def _client_for(self, model: str) -> Any:
        """The openai client that reaches `model`: its deployment, OpenAI, or a new one."""
        api = self.client.deployments.get(model)
        if api is not None:
            await api.renew_if_due()
            return api.async_client
        if looks_like_openai(model):
            return self._openai_client()
        await self._deploy(model)
        return self.client.deployments[model].async_client

    def _openai_client(self) -> Any:
        if self._openai is None:
            import openai

            try:
                self._openai = openai.AsyncOpenAI()  # OPENAI_BASE_URL / OPENAI_API_KEY
            except openai.OpenAIError as exc:
                raise ConfigError(
                    f"{exc} — OpenAI model names go to the endpoint in OPENAI_BASE_URL "
                    "(default api.openai.com) with OPENAI_API_KEY; set them"
                ) from exc
        return self._openai

    async def _deploy(self, model: str) -> None:
        """Deploy `model` (gathered with others that arrive meanwhile); wait until it serves."""
        if model not in self._ready:
            self._ready[model] = anyio.Event()
            self._queue.append(model)
            if len(self._queue) == 1:
                await anyio.sleep(GATHER_S)  # let the other models of this burst join
                await self._deploy_queued()
        await self._ready[model].wait()
        failed = self._failed.get(model)
        if failed is not None:
            raise ApiError(f"deploying {model!r} for chat failed: {failed}") from failed

    async def _deploy_queued(self) -> None:
        models, self._queue = list(self._queue), []
        log.info("deploying %s for chat (first use)", models)
        apis = self.client.api.multi_deploy(models, **self.client.deploy_kwargs)
        unique = {id(a): a for a in apis.values()}.values()

        async def up(api: Any) -> None:
            try:
                await api.up()
                self._started.append(api)
                spawn = self.client.spawn  # the sync facade's loop, if there is one
                if spawn is not None:
                    self._keepers.append(spawn(api.keep_alive))
            except Exception as exc:  # noqa: BLE001 - reported to each waiting request
                for m in (api.model, *api.lora_adapters):
                    self._failed[m] = exc
            for m in models:
                if apis[m] is api:
                    self._ready[m].set()

        async with anyio.create_task_group() as tg:
            for api in unique:
                tg.start_soon(up, api)
        for m in models:  # a failure is reported once; the next request tries again
            if m in self._failed:
                del self._ready[m]

    async def close(self) -> None:
        """Stop the deployments started on first use. Idempotent."""
        if self._openai is not None:
            openai_client, self._openai = self._openai, None
            await openai_client.close()
        started, self._started = self._started, []
        for keeper in self._keepers:
            keeper.cancel()
        self._keepers = []
        for api in started:
            with anyio.CancelScope(shield=True):
                await api.down()

    def _cache_path(self, body: dict[str, Any]) -> Path:
        key = hashlib.sha256(canonical_json(body)).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.json"
