"""A local Spark Connect server for tests and benchmarks: started from the pyspark package on 127.0.0.1 and a free
port, stopped (by its own process id) when done."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from tests.serving import free_port

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


@contextmanager
def spark_connect_server(work: Path, startup: float = 180.0) -> Iterator[str]:
    """Yield `sc://127.0.0.1:PORT` of a local server (2 cores, UTC, tables under `work`)."""
    import pyspark

    home = Path(pyspark.__file__).parent
    port = free_port()
    conf = {"spark.connect.grpc.binding.address": "127.0.0.1", "spark.connect.grpc.binding.port": str(port),
            "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1", "spark.ui.enabled": "false",
            "spark.sql.session.timeZone": "UTC", "spark.sql.shuffle.partitions": "2",
            "spark.sql.warehouse.dir": str(work / "warehouse"), "spark.driver.memory": "2g"}
    command = [str(home / "bin" / "spark-submit"), "--class", SERVER_CLASS, "--master", "local[2]",
               "--name", "semantic-tests"]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    log = (work / "spark-connect.log").open("w")
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1"}
    process = subprocess.Popen([*command, "spark-internal"], stdout=log, stderr=subprocess.STDOUT, env=env,
                               cwd=work, start_new_session=True)
    try:
        deadline = time.monotonic() + startup
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the Spark Connect server exited ({process.returncode}); see "
                                   f"{work / 'spark-connect.log'}")
            if "Spark Connect server started" in (work / "spark-connect.log").read_text(errors="replace"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Spark Connect server did not start in {startup:g} s")
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the group we started: spark-submit and its JVM
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def load_tables(url: str, duckdb_path: Path, tables: tuple[str, ...]) -> None:
    """Copy DuckDB tables into Spark tables of the same names, as Arrow."""
    from pyspark.sql import SparkSession

    session = SparkSession.builder.remote(url).create()
    try:
        with duckdb.connect(str(duckdb_path), read_only=True) as source:
            for table in tables:
                arrow = source.sql(f"SELECT * FROM {table}").to_arrow_table()
                session.createDataFrame(arrow).write.mode("overwrite").saveAsTable(table)
    finally:
        session.stop()
