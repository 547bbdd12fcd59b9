"""The result cache's counters in Prometheus form, on the default registry, so `/metrics`
(`prometheus_client.generate_latest()`) shows them beside the API's. Each process counts its own. Only the cache
knows where an answer came from (another process's computation, a roll-up), so it counts for itself.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CACHE_HITS = Counter("semantic_cache_hits", "Results answered without a warehouse statement of their own, by source.",
                     ["source"])  # exact, rollup, inflight
CACHE_MISSES = Counter("semantic_cache_misses", "Results computed by the warehouse.")
CACHE_ROLLUP_HITS = Counter("semantic_cache_rollup_hits", "Results rolled up in process from a finer cached result.")
CACHE_INFLIGHT_JOINS = Counter(
    "semantic_cache_inflight_joins", "Requests that waited for the same computation already running (here or in "
                                     "another process) instead of starting their own.")
CACHE_EVICTIONS = Counter("semantic_cache_evictions", "Entries the in-process store dropped to stay within its bytes.")
CACHE_BYTES = Gauge("semantic_cache_bytes", "Bytes of results held by the in-process store.")
CACHE_STORE_ERRORS = Counter(
    "semantic_cache_store_errors", "Cache store operations that failed (e.g. Redis unreachable); the request was "
                                   "answered from the warehouse instead.")
CACHE_INVALIDATIONS = Counter("semantic_cache_invalidations", "Entries dropped by a clear or a changed refresh key.")
