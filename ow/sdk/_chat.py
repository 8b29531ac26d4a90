"""`ow.chat.completions.create(...)`: chat with a model deployed through `ow.api.deploy`.

Requests go to the deployment serving the model, at most `max_concurrency` at once (the rest
wait: backpressure, not errors). A request that carries a `seed` is cached on disk (under
`<ow home>/cache/chat/`): the same request and seed gives the cached answer without a call.

Imports: stdlib, anyio, `ow.core`.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anyio

from ow.core.errors import ApiError, ValidationError
from ow.core.ids import canonical_json

__all__ = ["AsyncChat", "Response"]


class Response(dict):
    """A JSON response with attribute access (`completion.choices[0].message.content`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return _wrap(self[name])
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: Any) -> Any:
        return _wrap(super().__getitem__(key))


def _wrap(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, Response):
        return Response(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class _Completions:
    def __init__(self, chat: AsyncChat):
        self.chat = chat

    async def create(self, *, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        """An OpenAI-style chat completion from the deployment that serves `model`."""
        return await self.chat.complete(model, messages, **kwargs)


class AsyncChat:
    """`ow.chat`: bounded-concurrency chat client with an on-disk cache for seeded requests."""

    def __init__(self, client: Any, max_concurrency: int = 32):
        self.client = client
        self.limiter = anyio.CapacityLimiter(max_concurrency)
        self.completions = _Completions(self)

    @property
    def cache_dir(self) -> Path:
        return self.client.config.home_path / "cache" / "chat"

    async def complete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        api = self.client._deployments.get(model)
        if api is None:
            raise ValidationError(
                f"no deployment serves {model!r}: "
                f"wrap the calls in `with ow.api.deploy({model!r}):`"
            )
        body = {"model": model, "messages": messages, **kwargs}
        cache = self._cache_path(body) if "seed" in kwargs else None
        if cache is not None and cache.exists():
            return Response(json.loads(cache.read_text()))
        async with self.limiter:
            data = await anyio.to_thread.run_sync(_post, api.base_url, api.api_key, body)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(cache)
        return Response(data)

    def _cache_path(self, body: dict[str, Any]) -> Path:
        key = hashlib.sha256(canonical_json(body)).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.json"


def _post(base_url: str, api_key: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(  # noqa: S310 - the deployment we started
        f"{base_url}/chat/completions", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:  # noqa: S310
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise ApiError(f"chat completion failed (HTTP {exc.code}): {detail}") from exc
    except urllib.error.URLError as exc:
        raise ApiError(f"the API at {base_url} is unreachable: {exc.reason}") from exc
