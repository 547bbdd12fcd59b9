"""About a thousand generated GraphQL documents and filter strings under policies (`bench/fuzz_access.py` runs
10,000+): never a 500, a traceback, an INTERNAL error, another tenant's row or a statement that is not a SELECT."""

from __future__ import annotations

from pathlib import Path

from bench.fuzz_access import fuzz, run


def test_fuzz_under_policies(tmp_path: Path) -> None:
    target = fuzz(tmp_path, orders=300)
    try:
        run(target, 1000, random_seed=20261201)
    finally:
        target.warehouse.close()
    outcomes = target.outcomes
    assert sum(outcomes.values()) >= 1000
    # The cases reach every kind of answer: rows, refusals of each kind, and 401s.
    for expected in ("200 ok", "200 FORBIDDEN", "200 UNKNOWN_FIELD", "200 BAD_QUERY", "401 UNAUTHENTICATED"):
        assert outcomes[expected] > 0, outcomes
