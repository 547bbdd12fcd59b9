"""Nothing depends on the process's own time zone (docs/time.md): the time-zone suites give the same answers with
the process in zones west and east of UTC. Each runs in a subprocess whose TZ is set before Python (and DuckDB)
start; the suites' expected values are hand-computed, so passing there is answering the same as here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SUITES = ("test_sound_time_model.py", "test_sound_timezones.py", "test_sound_fill_filters.py")
NESTED = "SEMANTIC_PROCESS_ZONE_RUN"

MODEL = "version: 1\nname: unused\nentities: []\n"  # this module runs no query of its own
TABLES: dict[str, object] = {}


@pytest.mark.skipif(os.environ.get(NESTED) == "1", reason="already inside a process-zone run")
@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/Los_Angeles"])
def test_time_suites_pass_in_another_process_zone(zone: str) -> None:
    env = {**os.environ, "TZ": zone, NESTED: "1"}
    suites = [str(HERE / s) for s in SUITES if (HERE / s).exists()]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suites],
                          env=env, capture_output=True, text=True, timeout=600, cwd=HERE.parent.parent)
    assert done.returncode == 0, f"under TZ={zone}:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
