"""`genai-ops cost`: the platform's monthly cost from live AWS prices or a saved snapshot, never invented ones.

- `prices`: Price List items parsed into prices with their source, or the reason one is missing.
- `live`: the Price List, Spot price history and DescribeInstanceTypes calls.
- `snapshot`: the offline file (capture date and the source of every price).
- `capacity`: which instance types the configuration's pods need, and how many.
- `estimate`: the monthly arithmetic at minimum and maximum scale; `tokens`: cost per 1M output tokens.
- `command`: the typer command and its output.
"""

from ops.cost.command import cost

__all__ = ["cost"]
