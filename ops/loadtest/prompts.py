"""What each request asks: synthetic prompts of a set length, or prompts read from a JSONL file.

Synthetic prompts are built from common English words that are one token each with their leading space
in `cl100k_base` (checked with tiktoken; Llama 3's tokenizer extends that vocabulary, so on Llama models the
length is close but not exact, and the chat template adds its own few tokens). Each prompt starts with a
number unique to the request, so a server's prefix cache cannot answer one request from another's work.

A prompt file has one JSON object per line (blank lines are skipped):

    {"prompt": "Summarise the plot of Hamlet."}
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "max_tokens": 32}

`max_tokens` on a line overrides --output-tokens for that prompt. The file is read and checked in full
before the run starts; a bad line is reported as `file:line: what is wrong`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.errors import BadInputError

# One cl100k_base token each with a leading space (tiktoken, every word checked).
# fmt: off
FILLER_WORDS = (
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "as", "with", "by", "at", "from", "his", "her", "that",
    "this", "which", "are", "be", "or", "it", "an", "not", "had", "have", "one", "all", "were", "when", "there",
    "can", "more", "time", "some", "would", "other", "into", "its", "only", "two", "first", "new", "also", "after",
    "most", "may", "many", "over", "such", "well", "these", "could", "any", "made", "then", "like", "back", "years",
    "three", "used", "work", "way", "them", "before", "where", "much", "just", "people", "world", "between", "both",
    "under", "long", "very", "state",
)
# fmt: on
ROLES = ("system", "developer", "user", "assistant", "tool")


@dataclass(frozen=True)
class Prompt:
    """The messages of one request and how many tokens to ask for."""

    messages: tuple[dict[str, Any], ...]
    max_tokens: int


def synthetic_prompt(index: int, *, input_tokens: int, output_tokens: int, seed: int = 1) -> Prompt:
    """A user message of about `input_tokens` tokens asking for a long answer, unique to request `index`."""
    head = f"Request {index}.".split()
    instruction = f"Write at least {output_tokens} words about the words below, and do not stop early.".split()
    words = head + instruction if input_tokens >= len(head) + len(instruction) else head
    draw = random.Random(seed * 1_000_003 + index)
    words = words + [draw.choice(FILLER_WORDS) for _ in range(max(0, input_tokens - len(words)))]
    return Prompt(messages=({"role": "user", "content": " ".join(words)},), max_tokens=output_tokens)


def synthetic_prompts(*, input_tokens: int, output_tokens: int, seed: int = 1) -> Iterator[Prompt]:
    index = 0
    while True:
        yield synthetic_prompt(index, input_tokens=input_tokens, output_tokens=output_tokens, seed=seed)
        index += 1


def cycled(prompts: tuple[Prompt, ...]) -> Iterator[Prompt]:
    """The file's prompts in order, again from the top when they run out."""
    while True:
        yield from prompts


def _messages(value: Any, where: str) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list) or not value:
        raise BadInputError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    for position, message in enumerate(value, start=1):
        if not isinstance(message, dict):
            raise BadInputError(f"{where}: message {position} is not an object")
        if message.get("role") not in ROLES:
            raise BadInputError(
                f"{where}: message {position} has role {message.get('role')!r}; allowed: {', '.join(ROLES)}"
            )
        if not isinstance(message.get("content"), (str, list)):
            raise BadInputError(f"{where}: message {position} needs 'content' as a string or a list of parts")
    return tuple(value)


def _prompt(entry: Any, where: str, output_tokens: int) -> Prompt:
    if not isinstance(entry, dict):
        raise BadInputError(f"{where}: each line must be a JSON object, not {type(entry).__name__}")
    if "messages" in entry:
        messages = _messages(entry["messages"], where)
    elif isinstance(entry.get("prompt"), str) and entry["prompt"]:
        messages = ({"role": "user", "content": entry["prompt"]},)
    else:
        raise BadInputError(f"{where}: needs a non-empty 'prompt' string or a 'messages' list")
    max_tokens = entry.get("max_tokens", output_tokens)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadInputError(f"{where}: 'max_tokens' is {max_tokens!r}; give a whole number of at least 1")
    return Prompt(messages=messages, max_tokens=max_tokens)


def read_prompt_file(path: Path, *, output_tokens: int) -> tuple[Prompt, ...]:
    """Every prompt of a JSONL file, or BadInputError naming the file and line of the first bad one."""
    if not path.is_file():
        raise BadInputError(f"--prompts {path} is not a readable file: give a JSONL file of prompts")
    prompts: list[Prompt] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"--prompts {path} cannot be read as UTF-8 text: {error}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            entry = json.loads(line)
        except ValueError as error:
            raise BadInputError(f"{where}: not JSON ({error})") from None
        prompts.append(_prompt(entry, where, output_tokens))
    if not prompts:
        raise BadInputError(f"--prompts {path} holds no prompt: give one JSON object per line")
    return tuple(prompts)
