"""A real `semantic serve` process on a free port, for tests that talk HTTP (and the benchmarks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from examples.shop.generate import generate

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(model: Path, warehouse: str, log: Path, env: dict[str, str] | None = None,
            args: tuple[str, ...] = (), ready: str = "/healthz") -> Iterator[str]:
    """Start the server, wait until `ready` answers 200 (or 503 for a warehouse that is down on purpose), yield
    its URL; stop it afterwards and fail on any traceback in its output."""
    with server_process(model, warehouse, log, env, args, ready) as (url, _):
        yield url


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a live process in MB, from /proc (`field="VmHWM"`: its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@contextmanager
def server_process(model: Path, warehouse: str, log: Path, env: dict[str, str] | None = None,
                   args: tuple[str, ...] = (), ready: str = "/healthz") -> Iterator[tuple[str, int]]:
    """As `serving`, yielding the URL and the server's process id."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli.main", "serve", str(model), "--port", str(port), "--warehouse",
             warehouse, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()}")
            try:
                if httpx.get(f"{url}{ready}", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"server did not start: {log.read_text()}")
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "Traceback" not in log.read_text(), log.read_text()


@contextmanager
def shop_server(orders: int, env: dict[str, str] | None = None,
                args: tuple[str, ...] = ()) -> Iterator[tuple[str, int]]:
    """The example model served over a fresh example DuckDB file of `orders` orders in a temporary folder; yields
    as `server_process` does (the benchmarks and the tests that watch the server's memory use it)."""
    with tempfile.TemporaryDirectory() as folder:
        path = generate(Path(folder) / "shop.duckdb", orders=orders)
        with server_process(ROOT / "examples" / "shop", f"duckdb:///{path}", Path(folder) / "log", env,
                            args) as found:
            yield found
