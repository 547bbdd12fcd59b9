"""The OSI compliance harness's adapter for this project: `osi_adapter.py sql --model M --query-file Q --dialect D`
is `semantic compile M --query-file Q --dialect D` (SQL on stdout; the OSI error code on stderr, exit non-zero).

Format conversion only, as the harness's adapter contract asks: every rule lives in semantic/interop/.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The harness runs this file as a script, which puts bench/ first on the path, where bench/graphql.py would shadow
# graphql-core: the project's root takes its place.
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.cli.main import cli


def main(argv: list[str]) -> None:
    if not argv or argv[0] != "sql":
        sys.exit("usage: osi_adapter.py sql --model MODEL --query-file QUERY.json --dialect DIALECT")
    args = argv[1:]
    model = args[args.index("--model") + 1]
    rest = [a for i, a in enumerate(args) if a != "--model" and (i == 0 or args[i - 1] != "--model")]
    cli.main(["compile", model, *rest], prog_name="semantic")


if __name__ == "__main__":
    main(sys.argv[1:])
