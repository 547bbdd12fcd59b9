"""bench/graphql.py runs end to end at a small size, also without its large case (`--big 0`), and finds the typed,
plain and generic answers identical."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.run
from bench.graphql import main


def test_the_bench_runs_without_its_large_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench.run, "DATA", tmp_path)  # its data file is built here, not in bench/data
    main(["--orders", "2000", "--repeat", "3", "--big", "0"])
    out = capsys.readouterr().out
    assert "typed 1000 x 5, HTTP" in out and "x 5, HTTP" not in out.replace("1000 x 5, HTTP", "")
    assert "1000 rows (1000 answered, identical on all three paths)" in out
