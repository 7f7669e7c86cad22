"""Packed array parameters read back by PostgreSQL as the lists they were made from."""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import psycopg

from askue.headend.storage import pgarrays


def test_packed_arrays_round_trip(pg_dsn: str) -> None:
    ids = [0, 1, -1, 2**62, -(2**63), 7]
    floats = [0.0, -0.5, 1e300, -math.inf, 123.456, 2.5e-310]
    msk = timezone(timedelta(hours=3))
    times = [datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC), datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
             datetime(2026, 3, 1, 0, 0, tzinfo=msk), datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC)]
    texts = ["1.0.1.8.0.255", "", "Счётчик №1", "1.0.1.8.0.255", "a" * 300]
    with psycopg.connect(pg_dsn) as conn:
        pgarrays.enable(conn)
        got = conn.execute("SELECT %b::bigint[], %b::float8[], %b::timestamptz[], %b::text[], "
                           "cardinality(%b::bigint[])",
                           (pgarrays.int8(ids), pgarrays.float8(floats), pgarrays.timestamptz(times),
                            pgarrays.text(texts), pgarrays.int8([]))).fetchone()
    assert got[0] == ids
    assert got[1] == floats
    assert got[2] == times
    assert got[3] == texts
    assert got[4] == 0


def test_packed_arrays_with_nulls_and_booleans(pg_dsn: str) -> None:
    """A meter's status arrays: an error text, a drift or an OK flag the message did not carry."""
    t = datetime(2026, 12, 3, 21, 0, tzinfo=UTC)
    with psycopg.connect(pg_dsn) as conn:
        pgarrays.enable(conn)
        got = conn.execute("SELECT %b::bigint[], %b::float8[], %b::timestamptz[], %b::text[], %b::bool[], %b::bool[]",
                           (pgarrays.int8([None, 5]), pgarrays.float8([1.5, None, -2.0]),
                            pgarrays.timestamptz([None, t, t]), pgarrays.text(["нет связи", None, ""]),
                            pgarrays.boolean([True, None, False]), pgarrays.boolean([False, True]))).fetchone()
    assert got == ([None, 5], [1.5, None, -2.0], [None, t, t], ["нет связи", None, ""], [True, None, False],
                   [False, True])
