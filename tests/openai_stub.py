"""A streaming OpenAI-compatible server on 127.0.0.1 with a set time to first token and token pacing.

`OpenAIStub` stands in for vLLM under load: `POST /v1/chat/completions` with `"stream": true` answers with
HTTP headers at once, its first token `ttft_s` after the request arrived, then one token every `itl_s`
seconds until `max_tokens` (each token at a deadline counted from the first, so timer lateness does not
accumulate), then `finish_reason`, a usage chunk when `stream_options.include_usage` is asked for (and
`honour_usage` is on) and `data: [DONE]`. `stall(seconds)` pauses every response, in flight or new, for
that long from now, like a server that stops answering for a moment. `GET /v1/models` lists `model`,
`GET /health` answers 200 as vLLM's does; `GET /stub/stats` gives the requests received, the most streams
open at once, and how late the first tokens went out.

Timers: asyncio's wake up to a millisecond late (epoll's timeout is whole milliseconds, rounded up);
`precise` (the default) sleeps to a millisecond before each deadline and yields to the loop for the
rest, so injected times are met within a fraction of a millisecond at light load, at the price of a busy
loop near deadlines (`--coarse` in its own process turns it off).

It runs on aiohttp's server: on the caller's event loop (`async with stub.serving()`, for timing tests),
in a thread with its own loop (`with stub:`, when the client is another process), or as its own process
(`python -m tests.openai_stub`, for benchmarks: the stub then has a core of its own).

tests/litellm_harness.py's `StubBackend` is a different tool: a stdlib thread-per-connection server that
answers at once with three chunks and can be killed and restarted on the same port for failover tests; it
has no token pacing, and a thread per stream would not carry hundreds of paced streams a second on two
cores. Its users are left as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from aiohttp import web

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
HEALTH_PATH = "/health"
STATS_PATH = "/stub/stats"
DEFAULT_TOKENS = 16
_KEPT_BODIES = 1000
_SPIN_S = 0.001


class OpenAIStub:
    """See the module docstring. Use as a context manager, or `start()` / `stop()`."""

    def __init__(
        self,
        *,
        ttft_s: float = 0.02,
        itl_s: float = 0.005,
        model: str = "stub-model",
        honour_usage: bool = True,
        default_tokens: int = DEFAULT_TOKENS,
        port: int = 0,
        precise: bool = True,
    ) -> None:
        self.ttft_s = ttft_s
        self.itl_s = itl_s
        self.model = model
        self.honour_usage = honour_usage
        self.default_tokens = default_tokens
        self.precise = precise
        self._port = port
        self._resume_at = 0.0  # loop.time() before which nothing is written
        self._bodies: list[dict[str, Any]] = []
        self._first_token_lateness: list[float] = []  # seconds past arrival + ttft_s, per request
        self._requests = 0
        self._open_streams = 0
        self._most_open_streams = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- addresses and records
    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("OpenAIStub has no port yet: start it first")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> int:
        """Chat completion requests received."""
        with self._lock:
            return self._requests

    @property
    def most_open_streams(self) -> int:
        """The most responses that were being streamed at the same time."""
        with self._lock:
            return self._most_open_streams

    def bodies(self) -> list[dict[str, Any]]:
        """The last request bodies received (up to 1000), oldest first."""
        with self._lock:
            return list(self._bodies)

    def first_token_lateness(self) -> list[float]:
        """Per request, how much later than arrival + ttft_s the stub wrote its first token (seconds)."""
        with self._lock:
            return list(self._first_token_lateness)

    def stall(self, seconds: float) -> None:
        """Hold every response, in flight or arriving, for `seconds` from now."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("OpenAIStub is not running")
        loop.call_soon_threadsafe(self._stall_now, seconds)

    def _stall_now(self, seconds: float) -> None:
        assert self._loop is not None
        self._resume_at = max(self._resume_at, self._loop.time() + seconds)

    # -- the app
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(CHAT_PATH, self._chat)
        app.router.add_get(MODELS_PATH, self._models)
        app.router.add_get(HEALTH_PATH, self._health)
        app.router.add_get(STATS_PATH, self._stats)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response()  # vLLM's /health: 200, empty body (benchmark tools check it before a run)

    async def _models(self, request: web.Request) -> web.Response:
        model = {"id": self.model, "object": "model", "created": int(time.time()), "owned_by": "stub"}
        return web.json_response({"object": "list", "data": [model]})

    async def _stats(self, request: web.Request) -> web.Response:
        lateness = self.first_token_lateness()
        return web.json_response(
            {
                "requests": self.requests,
                "most_open_streams": self.most_open_streams,
                "first_token_lateness_p50_ms": statistics.median(lateness) * 1000 if lateness else None,
            }
        )

    async def _wait_until(self, deadline: float) -> float:
        """Sleep until `deadline` (loop time) and past any stall; the time it is then.

        Precise mode sleeps to a millisecond before and yields to the loop for the rest, since asyncio's
        timers wake up to a millisecond late (epoll's timeout is whole milliseconds, rounded up).
        """
        loop = asyncio.get_running_loop()
        spin = _SPIN_S if self.precise else 0.0
        while True:
            target = max(deadline, self._resume_at)
            delay = target - loop.time()
            if delay <= 0:
                return loop.time()
            await asyncio.sleep(delay - spin if delay > spin else 0)

    def _chunk(self, completion_id: str, created: int, delta: dict[str, Any], finish: str | None) -> bytes:
        chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        try:
            body = await request.json()
        except ConnectionError:  # the client went away before its body arrived
            return web.Response(status=499)
        except ValueError:
            return web.json_response({"error": {"message": "body is not JSON", "type": "invalid_request"}}, status=400)
        with self._lock:
            self._requests += 1
            self._bodies.append(body)
            del self._bodies[:-_KEPT_BODIES]
        if not body.get("stream"):
            return web.json_response(
                {"error": {"message": "this stub only streams", "type": "invalid_request"}}, status=400
            )
        with self._lock:
            self._open_streams += 1
            self._most_open_streams = max(self._most_open_streams, self._open_streams)
        try:
            return await self._stream(request, body, arrived)
        except ConnectionError:  # the client went away mid-stream (a tool ending its run): nothing to answer
            return web.Response(status=499)
        finally:
            with self._lock:
                self._open_streams -= 1

    async def _stream(self, request: web.Request, body: dict[str, Any], arrived: float) -> web.StreamResponse:
        tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or self.default_tokens)
        prompt_tokens = max(1, len(json.dumps(body.get("messages", []))) // 4)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:16]}"
        created = int(time.time())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)  # headers now, as vLLM sends them before the first token
        deadline = arrived + self.ttft_s
        for k in range(tokens):
            now = await self._wait_until(deadline)
            if k == 0:
                with self._lock:
                    self._first_token_lateness.append(now - arrived - self.ttft_s)
                delta = {"role": "assistant", "content": "tok "}
            else:
                delta = {"content": "tok "}
            await response.write(self._chunk(completion_id, created, delta, None))
            # The next token one interval after this one's deadline; after a stall (or a loop running more
            # than an interval late), one interval after now, so held tokens do not come out in a burst.
            deadline = (now if now - deadline > self.itl_s else deadline) + self.itl_s
        tail = self._chunk(completion_id, created, {}, "stop")
        if self.honour_usage and (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": tokens,
                "total_tokens": prompt_tokens + tokens,
            }
            last = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": self.model}
            tail += b"data: " + json.dumps({**last, "choices": [], "usage": usage}).encode() + b"\n\n"
        await response.write(tail + b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # -- lifecycle: on the caller's event loop, or in a thread of its own
    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[OpenAIStub]:
        """Serve on the running event loop for as long as the block runs.

        For timing tests on a shared machine: a stub in another thread or process needs the OS (or the
        interpreter lock) to hand over at every request and token, and on busy cores each handover can add
        milliseconds; on the load generator's own loop there is none.
        """
        self._loop = asyncio.get_running_loop()
        runner = await self._listen()
        try:
            yield self
        finally:
            await runner.cleanup()
            self._loop = None

    def start(self) -> OpenAIStub:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._runner = loop.run_until_complete(self._listen())
            except BaseException as error:  # reported to start() below
                failure.append(error)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name=f"openai-stub-{self._port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    async def _listen(self) -> web.AppRunner:
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port, backlog=1024, reuse_address=True)
        await site.start()
        self._port = int(runner.addresses[0][1])
        return runner

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve in this process until stdin closes; print {"port": N} when listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    parser.add_argument("--itl-ms", type=float, default=5.0)
    parser.add_argument("--model", default="stub-model")
    parser.add_argument("--coarse", action="store_true", help="plain asyncio timers (up to 1 ms late), less CPU")
    args = parser.parse_args(argv)
    stub = OpenAIStub(
        ttft_s=args.ttft_ms / 1000, itl_s=args.itl_ms / 1000, model=args.model, port=args.port, precise=not args.coarse
    )
    with stub:
        print(json.dumps({"port": stub.port}), flush=True)
        sys.stdin.read()  # until the parent closes our stdin


if __name__ == "__main__":
    main()
