"""Prometheus metrics of the head-end process (served at `/metrics`).

Module-level metrics in prometheus_client's default registry: one head-end process,
one set of figures, whatever parts of it run (ingest, API, background tasks).
"""
from __future__ import annotations

from prometheus_client import Counter, Histogram

# Seconds: from a few milliseconds (a small batch) to tens of seconds (a backlog batch).
_SLOW = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HOOK_SECONDS = Histogram("askue_headend_hook_seconds", "Time spent in an after-insert hook per write.",
                         ["hook"], buckets=_SLOW)
HOOK_FAILURES = Counter("askue_headend_hook_failures", "After-insert hook runs that failed (values kept).",
                        ["hook"])
