"""The Lua scripts of webhook ingestion, loaded as package data and called with group commit.

Scripts live in ``server/platforms/webhooks/lua/`` (one file per operation, each opening with its contract)
and are registered once per client with ``register_script``; no text is built at run time.

``BatchedScript`` is how they are called: every call that arrives while a call to Redis is in flight
joins the next one, a pipeline of EVALSHA. Each call keeps its own atomic script run and its own
answer; what the calls share is the round trip and redis-py's per-command cost (pool checkout,
timeouts, a socket write), which is most of the CPU a webhook costs on the server. A lone call goes
out at once, so an idle server adds no latency. (The stock engine's ``ReserveBatcher`` does the same
for reservations.)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from broadcast.scripts import lua_source

Arg = str | bytes | int
_Pending = tuple[Sequence[str], Sequence[Arg], "asyncio.Future[Any]"]


def script_source(name: str) -> str:
    """The text of ``server/platforms/webhooks/lua/<name>.lua``."""
    return lua_source("server.platforms.webhooks", name)


class BatchedScript:
    """One script on one client, its concurrent calls sent together (see the module docstring)."""

    def __init__(self, redis: Any, name: str, max_batch: int = 256, *, source: str | None = None) -> None:
        """``name`` is a file of ``server/platforms/webhooks/lua/``, unless ``source`` gives the text."""
        self.redis = redis
        self.name = name
        self.max_batch = max_batch
        self._script: AsyncScript = redis.register_script(script_source(name) if source is None else source)
        self._cluster = isinstance(redis, RedisCluster)
        self._queue: deque[_Pending] = deque()
        self._drain: asyncio.Task[None] | None = None
        self.calls = 0
        """Round trips made so far (fewer than the calls answered when batching helps)."""

    async def __call__(self, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """Run the script; the same contract as an EVALSHA of it. If the caller is cancelled,
        the call may still run: every script here is safe to repeat."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((keys, args, future))
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_queue(), name=f"script:{self.name}")
        return await future

    async def _drain_queue(self) -> None:
        try:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                try:
                    results = await self._call(batch)
                except asyncio.CancelledError:
                    for _, _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:  # every waiter of this batch learns it; the next batch runs
                    results = [exc] * len(batch)
                for (_, _, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue  # its caller went away
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._drain = None

    async def _call(self, batch: list[_Pending]) -> list[Any]:
        self.calls += 1
        if len(batch) == 1:
            keys, args, _ = batch[0]
            return [await self._script(keys=keys, args=args)]
        if self._cluster:
            # redis-py refuses EVALSHA in a cluster pipeline: the calls go out side by side.
            return list(
                await asyncio.gather(*(self._script(keys=k, args=a) for k, a, _ in batch), return_exceptions=True)
            )
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                pipe.evalsha(self._script.sha, len(keys), *keys, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        for i, result in enumerate(results):
            if isinstance(result, NoScriptError):  # Redis restarted or was flushed: load it again
                keys, args, _ = batch[i]
                results[i] = await self._script(keys=keys, args=args)
        return results

    @property
    def sha(self) -> str:
        return str(self._script.sha)

    async def aclose(self) -> None:
        """Wait for the calls in flight."""
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)


class BatchingClient:
    """A Redis client whose registered scripts are ``BatchedScript``s; everything else is passed
    through to the client it wraps.

    Give it to a ``StockEngine`` (which only registers scripts and calls them by keyword, besides
    plain reads) so that the stock calls of many deliveries applied at once share round trips:
    each one stays one atomic script run with its own answer. redis-py costs about 100 µs of CPU
    per command sent alone and 10-20 µs per command in a pipeline, here and in DESIGN §9's trial.
    """

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self._scripts: list[BatchedScript] = []

    def register_script(self, source: str) -> BatchedScript:
        script = BatchedScript(self._redis, f"engine-{len(self._scripts)}", source=source)
        self._scripts.append(script)
        return script

    @property
    def round_trips(self) -> int:
        """Calls to Redis its scripts have made so far."""
        return sum(script.calls for script in self._scripts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._redis, name)

    async def aclose(self) -> None:
        """Wait for the script calls in flight (the wrapped client is not closed)."""
        for script in self._scripts:
            await script.aclose()
