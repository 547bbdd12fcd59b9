"""The fuzz of `bench/fuzz.py` at CI size (about a thousand cases, SEMANTIC_FUZZ_CASES to change) against a running
server: no 500, no INTERNAL, no traceback, and the server's memory stays bounded."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bench.fuzz import Fuzz
from tests.serving import rss_mb, shop_server


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    with shop_server(orders=1000) as found:
        yield found


def test_no_input_breaks_the_server(server: tuple[str, int]) -> None:
    url, pid = server
    cases = int(os.environ.get("SEMANTIC_FUZZ_CASES", "1000"))
    with Fuzz(url) as fuzz:
        fuzz.run(cases=100, seed_value=2)  # warm up: caches and pools fill to their working size
        before = rss_mb(pid)
        outcomes = fuzz.run(cases=cases, seed_value=1)
        after = rss_mb(pid)
    assert sum(sum(c.values()) for c in outcomes.values()) >= 0.9 * cases
    assert set(outcomes) == {"graphql", "filter", "route", "spine"}
    assert after < before + 300, (before, after)  # bounded: caches are bounded, nothing accumulates per request
