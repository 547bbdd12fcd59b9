"""The dashboard workload at a small size: roll-ups cut warehouse statements at least 5x against exact-match
caching, and every cached answer equals the warehouse's."""

from __future__ import annotations

from pathlib import Path

from bench.dashboard import ROOT, play, same, sessions
from semantic.execute import SqlWarehouse


def test_rollups_cut_statements_and_every_answer_is_the_warehouses(duckdb_path: Path) -> None:
    work = sessions(users=3, clicks=5, seed=3)
    warehouse = SqlWarehouse(f"duckdb:///{duckdb_path}", read_only=True)
    try:
        off, exact, rolled = (play(mode, warehouse, ROOT / "examples" / "shop", work, threads=2)
                              for mode in ("off", "exact", "rollup"))
    finally:
        warehouse.close()
    assert off.statements == sum(len(w) for w in work)
    assert exact.statements == len({q for w in work for q in w})
    assert exact.statements >= 5 * rolled.statements
    assert rolled.sources.get("ROLLUP", 0) > 0
    for run in (exact, rolled):
        assert run.answers.keys() == off.answers.keys()
        assert all(same(q, a, off.answers[q]) for q, a in run.answers.items())
