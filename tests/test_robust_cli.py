"""Command-line mistakes end with a message and exit status 2, never a traceback, and before any work."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from examples.shop.generate import generate
from tests.serving import ROOT

SHOP = str(ROOT / "examples" / "shop")


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("cli") / "shop.duckdb", orders=500)


def test_out_into_a_missing_folder_is_refused_before_computing(shop_file: Path, tmp_path: Path) -> None:
    spine = tmp_path / "spine.csv"
    spine.write_text("customer_id,event_timestamp\n1,2024-01-01\n")
    started = time.monotonic()
    done = cli("features", SHOP, "--entity", "customer", "--spine", str(spine), "--out",
               str(tmp_path / "missing" / "out.parquet"), "--warehouse", "duckdb:////nonexistent/never-opened.db")
    assert done.returncode == 2, done.stderr
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr
    assert "never-opened" not in done.stderr  # refused before the warehouse was even opened
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(("args", "env", "words"), [
    (("query", SHOP, "--metric", "order.revenue"), {"SEMANTIC_QUERY_TIMEOUT": "abc"}, "SEMANTIC_QUERY_TIMEOUT"),
    (("serve", SHOP, "--port", "99999"), {}, "99999"),
    (("serve", SHOP, "--max-keys", "many"), {}, "--max-keys"),
    (("serve", SHOP, "--port", "8000"), {"SEMANTIC_DUCKDB_MEMORY_LIMIT": "lots"}, "SEMANTIC_DUCKDB_MEMORY_LIMIT"),
])
def test_bad_settings_exit_2_with_the_name(shop_file: Path, args: tuple[str, ...], env: dict[str, str],
                                           words: str) -> None:
    done = cli(*args, "--warehouse", f"duckdb:///{shop_file}", env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert words in done.stderr and "Traceback" not in done.stderr


def test_a_port_in_use_is_refused_before_serving(shop_file: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("serve", SHOP, "--port", str(port), "--warehouse", f"duckdb:///{shop_file}")
    assert done.returncode == 2, done.stderr
    assert "cannot listen" in done.stderr and "Traceback" not in done.stderr
    assert f"at http://127.0.0.1:{port}" not in done.stderr  # never "serving ... at" for a port it cannot have
