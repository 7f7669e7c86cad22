"""Expansion of the Grafana PostgreSQL macros and template variables the dashboards
use, so their SQL can be run outside Grafana (tests, `askue grafana check`). Only
the macros below are allowed in dashboards; any other `$__` macro is an error here,
which keeps the check honest."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta


class MacroError(ValueError):
    """SQL uses a macro or variable this module cannot expand."""


_INTERVAL_RE = re.compile(r"^\s*'?(\d+)([smhdw])'?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _seconds(text: str) -> int:
    m = _INTERVAL_RE.match(text)
    if not m:
        raise MacroError(f"interval {text!r}: use a number with s/m/h/d/w, e.g. '1h'")
    return int(m.group(1)) * _UNITS[m.group(2)]


def _lit(t: datetime) -> str:
    return f"'{t.isoformat()}'::timestamptz"


def quote_list(values: Sequence[str]) -> str:
    """Grafana's expansion of a multi-value variable: 'a','b' (single quotes doubled)."""
    if not values:
        return "NULL"
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


def expand(sql: str, start: datetime, end: datetime, variables: Mapping[str, Sequence[str]] | None = None,
           interval: timedelta = timedelta(hours=1)) -> str:
    """The SQL Grafana would send for a time range and variable values."""
    out = sql

    def time_filter(m: re.Match) -> str:
        col = m.group(1).strip()
        return f"{col} BETWEEN {_lit(start)} AND {_lit(end)}"

    def group(m: re.Match, alias: bool) -> str:
        args = [a.strip() for a in m.group(1).split(",")]
        col, step = args[0], _seconds(args[1]) if len(args) > 1 else int(interval.total_seconds())
        expr = f"to_timestamp(floor(extract(epoch FROM {col}) / {step}) * {step})"
        return f'{expr} AS "time"' if alias else expr

    out = re.sub(r"\$__timeFilter\(([^)]*)\)", time_filter, out)
    out = re.sub(r"\$__timeGroupAlias\(([^)]*)\)", lambda m: group(m, True), out)
    out = re.sub(r"\$__timeGroup\(([^)]*)\)", lambda m: group(m, False), out)
    out = out.replace("$__timeFrom()", _lit(start)).replace("$__timeTo()", _lit(end))
    out = out.replace("$__interval_ms", str(int(interval.total_seconds() * 1000)))
    left = re.findall(r"\$__\w+", out)
    if left:
        raise MacroError(f"unsupported Grafana macro(s) {sorted(set(left))}; use $__timeFilter, $__timeFrom, "
                         "$__timeTo, $__timeGroup or $__timeGroupAlias")
    for name, values in (variables or {}).items():
        out = re.sub(r"\$\{" + re.escape(name) + r"(?::\w+)?\}|\$" + re.escape(name) + r"\b",
                     quote_list(list(values)), out)
    unknown = re.findall(r"\$\{?[A-Za-z_]\w*", out)
    if unknown:
        raise MacroError(f"template variable(s) {sorted(set(unknown))} have no value")
    return out
