"""One streamed chat completion against an OpenAI-compatible endpoint (LiteLLM or vLLM), timed from its schedule.

Times are `time.perf_counter()` values (CLOCK_MONOTONIC on Linux). `RequestRecord.scheduled` is when the
request was due: the arrival schedule's time in an open-loop run, the moment its slot became free in a
closed-loop run. Time to first token and end-to-end latency are measured from it, not from when the request
left the client, so a request that waited (for a connection, for the event loop, for the server) shows
the wait. `sent` (when its headers were written, from aiohttp's tracing signal) is kept beside it so the
two can be compared.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp

from ops.loadtest.prompts import Prompt

ERROR_TEXT_CHARS = 200


@dataclass(slots=True)
class RequestRecord:
    """What happened to one request (perf_counter seconds; None where it never got that far)."""

    index: int
    scheduled: float
    sent: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    end: float | None = None
    content_chunks: int = 0
    usage_tokens: int | None = None
    prompt_tokens: int | None = None
    max_itl: float = 0.0
    status: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.first_token is not None

    @property
    def output_tokens(self) -> int:
        """Completion tokens from the stream's usage when the server sent it, else the content chunks counted."""
        return self.usage_tokens if self.usage_tokens is not None else self.content_chunks

    @property
    def tokens_from_usage(self) -> bool:
        return self.usage_tokens is not None

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.scheduled

    @property
    def e2e(self) -> float | None:
        return None if self.end is None else self.end - self.scheduled

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first: (last token - first token) / (tokens - 1)."""
        if self.first_token is None or self.last_token is None or self.output_tokens < 2:
            return None
        return (self.last_token - self.first_token) / (self.output_tokens - 1)

    @property
    def send_lag(self) -> float | None:
        """How late the request left the client against its schedule (connection wait, event-loop lag)."""
        return None if self.sent is None else self.sent - self.scheduled


@dataclass(frozen=True)
class Endpoint:
    """Where and how requests go."""

    chat_url: str
    model: str
    headers: dict[str, str]
    run_id: str
    user: str
    tag_metadata: bool
    ignore_eos: bool
    timeout_s: float


def request_body(endpoint: Endpoint, prompt: Prompt) -> dict[str, Any]:
    """The chat completion request: streamed, with usage, tagged with the run id."""
    body: dict[str, Any] = {
        "model": endpoint.model,
        "messages": list(prompt.messages),
        "max_tokens": prompt.max_tokens,
        "stream": True,
        # The final chunk then carries `usage` (OpenAI API; vLLM's StreamOptions, LiteLLM passes it on).
        "stream_options": {"include_usage": True},
        # OpenAI's end-user field; LiteLLM maps it to the trace's user (README "Tracing").
        "user": endpoint.user,
    }
    if endpoint.ignore_eos:
        # vLLM sampling extensions (ChatCompletionRequest `ignore_eos`, `min_tokens` in
        # vllm/entrypoints/openai/protocol.py, "Extra Parameters" in vLLM's OpenAI server docs), so every
        # request generates exactly max_tokens. LiteLLM 1.102.1 forwards parameters it does not know to a
        # hosted_vllm deployment in `extra_body` (litellm/utils.py add_provider_specific_params_to_optional_params).
        body["ignore_eos"] = True
        body["min_tokens"] = prompt.max_tokens
    if endpoint.tag_metadata:
        # LiteLLM turns these into LangFuse trace tags and metadata (README "Tracing", metadata mapping), so a
        # run's traces can be filtered by its id.
        body["metadata"] = {"tags": [endpoint.run_id], "trace_metadata": {"run_id": endpoint.run_id}}
    return body


def trace_config() -> aiohttp.TraceConfig:
    """Notes when each request's headers are written (the record rides in trace_request_ctx)."""
    config = aiohttp.TraceConfig()

    async def headers_sent(
        session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestHeadersSentParams
    ) -> None:
        record = context.trace_request_ctx
        if isinstance(record, RequestRecord) and record.sent is None:
            record.sent = time.perf_counter()

    config.on_request_headers_sent.append(headers_sent)
    return config


def connect_failure(error: aiohttp.ClientConnectorError) -> str:
    """`connection refused` rather than asyncio's `Connect call failed ('10.0.0.1', 4000)`."""
    cause = error.os_error
    if isinstance(cause, socket.gaierror):
        return f"host name not resolved: {cause.strerror}"
    return os.strerror(cause.errno).lower() if cause.errno and cause.errno > 0 else str(cause)


def _has_output(chunk: dict[str, Any]) -> bool:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning") or delta.get("tool_calls"):
            return True
    return False


def _read_event(record: RequestRecord, data: bytes, now: float, record_itl: Callable[[float], None]) -> None:
    chunk = json.loads(data)
    if not isinstance(chunk, dict):
        return
    if chunk.get("error"):
        error = chunk["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        record.error = f"error event: {str(message)[:ERROR_TEXT_CHARS]}"
        return
    if _has_output(chunk):
        if record.first_token is None:
            record.first_token = now
        else:
            gap = now - (record.last_token or now)
            record_itl(gap)
            record.max_itl = max(record.max_itl, gap)
        record.last_token = now
        record.content_chunks += 1
    usage = chunk.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        record.usage_tokens = usage["completion_tokens"]
        if isinstance(usage.get("prompt_tokens"), int):
            record.prompt_tokens = usage["prompt_tokens"]


async def _read_stream(
    response: aiohttp.ClientResponse, record: RequestRecord, record_itl: Callable[[float], None]
) -> bool:
    """Read server-sent events until `data: [DONE]` (True) or the stream ends or errs (False).

    Reads whatever bytes have arrived and splits them into lines itself: one wake-up per network read rather
    than per line. Events that arrived in the same read get the same time, which is when the client saw them.
    """
    pending = b""
    now = time.perf_counter()
    async for received in response.content.iter_any():
        now = time.perf_counter()
        lines = (pending + received).split(b"\n")
        pending = lines.pop()  # an incomplete line waits for the next read
        for line in lines:
            finished = _read_line(record, line, now, record_itl)
            if finished is not None:
                return finished
    return _read_line(record, pending, now, record_itl) or False


def _read_line(record: RequestRecord, line: bytes, now: float, record_itl: Callable[[float], None]) -> bool | None:
    """True at `data: [DONE]`, False after an error event, None to read on."""
    if not line.startswith(b"data:"):
        return None  # blank separators, comments, `event:` lines
    data = line[5:].strip()
    if data == b"[DONE]":
        return True
    _read_event(record, data, now, record_itl)
    return False if record.error is not None else None


async def stream_chat(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    prompt: Prompt,
    record: RequestRecord,
    record_itl: Callable[[float], None],
) -> RequestRecord:
    """Send one streamed request and fill `record`; failures are recorded, never raised."""
    payload = json.dumps(request_body(endpoint, prompt)).encode()
    done = False
    try:
        async with session.post(
            endpoint.chat_url,
            data=payload,
            headers=endpoint.headers,
            timeout=aiohttp.ClientTimeout(total=endpoint.timeout_s),
            trace_request_ctx=record,
        ) as response:
            record.status = response.status
            if response.status != 200:
                text = (await response.text(errors="replace"))[:ERROR_TEXT_CHARS]
                record.error = f"HTTP {response.status}: {' '.join(text.split())}"
                return record
            done = await _read_stream(response, record, record_itl)
    except TimeoutError:
        record.error = f"timeout after {endpoint.timeout_s:g} s"
    except aiohttp.ClientConnectorError as error:
        record.error = f"cannot connect: {connect_failure(error)}"
    except (aiohttp.ClientError, ValueError) as error:
        record.error = f"{type(error).__name__}: {str(error)[:ERROR_TEXT_CHARS]}"
    finally:
        record.end = time.perf_counter()
    if record.error is None and not done:
        record.error = "stream ended before [DONE]"
    elif record.error is None and record.first_token is None:
        record.error = "stream had no output token"
    return record
