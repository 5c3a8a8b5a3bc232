"""`genai-ops loadtest`: streamed chat completions against LiteLLM or vLLM, every latency from its scheduled time.

- schedule.py: rate shapes (constant, ramp, step, spike) and open-loop arrival times (constant, Poisson);
- prompts.py: synthetic prompts of a set length, or a JSONL file checked line by line;
- client.py: one streamed request on aiohttp, timed from its schedule (`RequestRecord`);
- runner.py: the run loop (open or closed loop) and the `RunObserver` seam for watching other things while it runs;
- results.py: HdrHistogram percentiles, rates, goodput, the timeline, JSON and CSV; plots.py: the PNG;
- options.py: option checks; command.py: the typer command.
"""

from ops.loadtest.command import loadtest

__all__ = ["loadtest"]
