"""Servers of a test's own, on free ports of 127.0.0.1, stopped by the test (never the shared ones at 5432 and 6379):
a PostgreSQL cluster made by initdb in a temporary folder and run by pg_ctl on that folder only (run as root, the
cluster belongs to the `postgres` user, as PostgreSQL refuses to run as root), and a Redis without persistence."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import psycopg

from tests.serving import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
PG_TYPES = {"VARCHAR": "TEXT", "DOUBLE": "DOUBLE PRECISION"}  # other DuckDB types (INTEGER, TIMESTAMP,
# DECIMAL(12,2), ...) are spelled the same in PostgreSQL


class PostgresServer:
    """One cluster: `start()`, `stop()` (fast shutdown: sessions are cut, as an operator's restart cuts them)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.log = folder / "postgres.log"

    def _run(self, *command: str) -> None:
        runner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*runner, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=120)

    def init(self) -> None:
        self._run(str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c max_connections=60 -c shared_buffers=32MB")
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started cluster, stopped and deleted afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="semantic-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    server = PostgresServer(folder)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


def copy_tables(source: Path, url: str, tables: tuple[str, ...]) -> None:
    """Create `tables` of the DuckDB file `source` in the PostgreSQL database `url` with matching column types and
    COPY their rows across."""
    with psycopg.connect(url, autocommit=True) as target, duckdb.connect(str(source), read_only=True) as duck:
        for table in tables:
            columns = duck.execute("SELECT column_name, data_type FROM information_schema.columns "
                                   "WHERE table_name = ? ORDER BY ordinal_position", [table]).fetchall()
            definitions = ", ".join(f"{name} {PG_TYPES.get(kind, kind)}" for name, kind in columns)
            target.execute(f"CREATE TABLE {table} ({definitions})")
            names = ", ".join(name for name, _ in columns)
            with target.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in duck.execute(f"SELECT {names} FROM {table}").fetchall():
                    copy.write_row(row)
            target.execute(f"ANALYZE {table}")


def start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """A Redis on `port` (no snapshots, no append-only file, its folder `folder`), answering when this returns."""
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed (.ci/run installs it)"
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError("redis-server did not start")
