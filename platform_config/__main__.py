"""Print the resolved configuration, or one value of it, without synthesizing anything.

python -m platform_config                       # dev, as JSON
python -m platform_config -c env=prod            # prod
python -m platform_config cluster.kubernetes_version -c env=prod
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from platform_config.loader import ConfigError, cdk_json_context, load_config
from platform_config.reference import render_reference, update_readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_config", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("key", nargs="?", help="dotted key to print alone, e.g. cluster.kubernetes_version")
    parser.add_argument(
        "-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="context override, as with cdk -c"
    )
    parser.add_argument("--reference", action="store_true", help="print the README's configuration reference")
    parser.add_argument("--update-readme", metavar="PATH", help="rewrite the configuration reference in PATH")
    args = parser.parse_args(argv)
    if args.reference:
        print(render_reference())
        return 0
    if args.update_readme:
        update_readme(Path(args.update_readme))
        return 0
    context = cdk_json_context()
    for item in args.context:
        key, _, raw = item.partition("=")
        context[key] = raw
    try:
        config = load_config(context)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    value: Any = config.model_dump(mode="json")
    if args.key:
        for part in args.key.split("."):
            if not isinstance(value, dict) or part not in value:
                print(f"error: {args.key}: no such key", file=sys.stderr)
                return 1
            value = value[part]
    print(value if isinstance(value, str) else json.dumps(value, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
