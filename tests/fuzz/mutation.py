"""Mutation fuzzing for hypothesis: start from a valid sample and damage it.

Two layers, because real bad input comes in both shapes: a structured mutation
(a JSON/YAML tree with a field replaced, removed, added, duplicated or retyped:
what a buggy or hostile sender produces) and a byte mutation (flip, cut, insert,
delete, splice: what a broken line or a truncated upload produces).

Hypothesis draws one 64-bit seed per case and the mutations are made by a
`random.Random(seed)`: on this shared 2-core machine a rich hypothesis strategy
costs ~15 ms a case, a seed well under 1 ms, and 10,000 cases must fit in a minute.
A failing case is reproduced from the seed hypothesis prints.
"""
from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Seeded (derandomize) and bounded: 10,000 cases, no per-example deadline on a noisy machine.
FUZZ = settings(derandomize=True, max_examples=10_000, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
# The same, fewer cases, for paths that go through a real database per case.
FUZZ_DB = settings(FUZZ, max_examples=300)

seeds = st.integers(0, 2**64 - 1)

NASTY_STRINGS = [
    "", " ", "\u0000", "a\u0000b", "\ud7ff", "\uffff", "🔥", "Ё" * 300, "x" * 5000, "' OR 1=1 --",
    "'; DROP TABLE meters; --", "\\", "%s", "{}", "null", "NaN", "Infinity", "-0", "1e400",
    "1.0.1.8.0.255", "1.0.1.8.0", "256.0.1.8.0.255", "2026-03-01T00:00:00Z", "2026-03-01T00:00:00",
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00", "2026-02-30T00:00:00Z", "register", "interval",
    "gw2", "../../etc/passwd", "\r\n", "\t", "15m", "-5s", "1h", "COM1", "/dev/ttyUSB0", "modbus",
]
NASTY_NUMBERS = [0, -1, 1, 2, 255, 256, 65535, 65536, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30, 0.5, -0.0,
                 1e308, -1e308, 5e-324, 86400, 86401, 1800, 9600, True, False]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if r < 0.3:
        return rng.choice(NASTY_STRINGS)
    if r < 0.55:
        return rng.choice(NASTY_NUMBERS)
    if r < 0.65:
        return None
    if r < 0.75:
        return rng.randint(-(2**40), 2**40) if rng.random() < 0.5 else rng.uniform(-1e6, 1e6)
    if r < 0.85:
        return "".join(chr(rng.choice([rng.randint(32, 126), rng.randint(0x400, 0x4ff), rng.randint(0, 0xffff)]))
                       for _ in range(rng.randint(0, 12))).encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if depth > 2:
        return rng.choice([[], {}])
    if r < 0.93:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(NASTY_STRINGS[:20] + ["id", "v", "value", "port"]): random_value(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every location in a JSON-like tree, root first."""
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += paths(v, prefix + (i,))
    return out


def _get(tree: Any, path: tuple) -> Any:
    for p in path:
        tree = tree[p]
    return tree


def mutate_tree(tree: Any, rng: random.Random, n: int | None = None) -> Any:
    """A deep copy of `tree` with `n` (default 1..3) structural mutations."""
    tree = copy.deepcopy(tree)
    for _ in range(rng.randint(1, 3) if n is None else n):
        locs = paths(tree)
        path = rng.choice(locs)
        op = rng.choice(("set", "set", "set", "del", "add", "dup", "retype"))
        if op in ("set", "retype"):
            old = _get(tree, path) if path else tree
            new = random_value(rng)
            if op == "retype":  # the same value in another type: 1800 → "1800", "x" → ["x"]
                new = rng.choice([str(old), [old], {"value": old}, None if old is not None else 0])
            if not path:
                tree = new
            else:
                _get(tree, path[:-1])[path[-1]] = new
        elif op == "del" and path:
            del _get(tree, path[:-1])[path[-1]]
        elif op == "add":
            target = _get(tree, path)
            if isinstance(target, dict):
                target[rng.choice(NASTY_STRINGS[:24] + ["extra", "id", "type"])] = random_value(rng)
            elif isinstance(target, list):
                target.append(random_value(rng))
        elif op == "dup" and path:
            parent = _get(tree, path[:-1])
            if isinstance(parent, list):
                parent.append(copy.deepcopy(parent[path[-1]]))
    return tree


def mutate_bytes(data: bytes, rng: random.Random, n: int | None = None) -> bytes:
    """`data` with `n` (default 1..3) byte-level mutations."""
    for _ in range(rng.randint(1, 3) if n is None else n):
        op = rng.choice(("flip", "flip", "cut", "insert", "delete", "splice", "set"))
        size = len(data)
        pos = rng.randrange(size) if size else 0
        if op == "flip" and size:
            b = bytearray(data)
            b[pos] ^= 1 << rng.randrange(8) if rng.random() < 0.7 else rng.randint(1, 255)
            data = bytes(b)
        elif op == "cut":
            data = data[:pos]
        elif op == "insert":
            data = data[:pos] + rng.randbytes(rng.randint(1, 16)) + data[pos:]
        elif op == "delete":
            data = data[:pos] + data[pos + rng.randint(1, 16):]
        elif op == "splice" and size:  # repeat a chunk of the sample elsewhere
            a = rng.randrange(size)
            data = data[:pos] + data[a:a + rng.randint(1, 32)] + data[pos:]
        elif op == "set" and size:
            b = bytearray(data)
            b[pos] = rng.choice((0x00, 0xFF, 0x7F, 0x80, 0x10, 0x16, 0x68, 0x7E, 0x0D, 0x0A))
            data = bytes(b)
    return data


def run_mutations(samples: list[bytes], parse: Any, typed: type[Exception]) -> dict[str, int]:
    """Feed `parse` 10,000 seeded byte mutations of `samples`; every outcome must be a result or
    a `typed` exception with a message. Returns the counts of both (callers check both occur)."""
    seen = {"ok": 0, "typed": 0}

    @FUZZ
    @given(seeds)
    def one(seed: int) -> None:
        rng = random.Random(seed)
        try:
            parse(mutate_bytes(rng.choice(samples), rng))
        except typed as e:
            assert str(e), "a typed error must say what is wrong"
            seen["typed"] += 1
        else:
            seen["ok"] += 1

    one()
    return seen
