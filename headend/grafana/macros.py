"""What Grafana sends to PostgreSQL for a panel's SQL, so the dashboards' SQL can be run
outside Grafana (tests, `askue grafana check`).

Grafana works in two steps, and so does `expand`:

1. the dashboard interpolates template variables (`$org`, `${org}`, `${org:csv}`,
   `[[org]]`, `$__interval`, `$__interval_ms`). For an SQL data source a multi-value
   (or include-all) variable becomes a comma-separated list of single-quoted values with
   `'` doubled; a single-value variable is inserted as it is; `:csv` and `:raw` join
   without quotes, `:sqlstring` quotes even a single value;
2. the data source's macro engine replaces every `$name(args)`: `$__timeFilter(col)` →
   `col BETWEEN '<from>' AND '<to>'` (UTC, RFC 3339 with the fraction trimmed),
   `$__timeFrom()` / `$__timeTo()` → the quoted instant, `$__timeGroup(col, '5m')` →
   `floor(extract(epoch from col)/300)*300` (`time_bucket('300.000s',col)` when the data
   source has TimescaleDB on), `$__timeGroupAlias` → the same `AS "time"`; a third fill
   argument only tells Grafana how to fill gaps. Any other macro is refused here, which
   keeps the check honest: a dashboard may use only what this module expands.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta


class MacroError(ValueError):
    """SQL uses a macro, variable or format this module cannot expand."""


VariableValue = str | Sequence[str]  # str: a single-value variable; a sequence: multi-value / include all

_INTERVAL_RE = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MACRO_RE = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")  # the pattern Grafana's PostgreSQL macro engine uses
_FILL = re.compile(r"^(NULL|previous|-?\d+(\.\d+)?)$")


def _seconds(text: str) -> float:
    m = _INTERVAL_RE.match(text.strip().strip("'"))
    if not m:
        raise MacroError(f"interval {text!r}: use a number with ms/s/m/h/d/w, e.g. '1h'")
    return int(m.group(1)) * _UNITS[m.group(2)]


def _go_number(x: float) -> str:
    """A float as Go's %v prints it (300 → "300", 0.5 → "0.5")."""
    return str(int(x)) if x == int(x) and abs(x) < 1e21 else repr(x)


def grafana_time(t: datetime) -> str:
    """An instant as Grafana's macros write it: UTC, RFC 3339, the fraction without trailing zeros."""
    if t.tzinfo is None:
        raise MacroError("time range bounds need a time zone")
    u = t.astimezone(UTC)
    frac = f"{u.microsecond:06d}".rstrip("0")
    return u.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def quote_list(values: Sequence[str]) -> str:
    """A multi-value variable in SQL: 'a','b' (single quotes doubled)."""
    if not values:
        return "NULL"
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


def format_variable(value: VariableValue, fmt: str | None) -> str:
    multi = not isinstance(value, str)
    values = list(value) if multi else [value]
    if fmt is None:
        return quote_list(values) if multi else values[0]
    if fmt in ("csv", "raw"):
        return ",".join(values)
    if fmt == "sqlstring":
        return quote_list(values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    raise MacroError(f"variable format {fmt!r} is not supported here; use csv, raw, sqlstring, singlequote "
                     "or doublequote")


def _variables(sql: str, variables: Mapping[str, VariableValue]) -> str:
    names = sorted(variables, key=len, reverse=True)  # $org_code before $org
    if not names:
        return sql
    alt = "|".join(re.escape(n) for n in names)
    pattern = re.compile(r"\$\{(" + alt + r")(?::(\w+))?\}|\[\[(" + alt + r")(?::(\w+))?\]\]|\$(" + alt + r")\b")

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(3) or m.group(5)
        return format_variable(variables[name], m.group(2) or m.group(4))

    return pattern.sub(sub, sql)


def _macro(name: str, args: list[str], start: datetime, end: datetime, timescaledb: bool) -> str:
    if name == "__timeFilter":
        if not args or not args[0]:
            raise MacroError("$__timeFilter needs the time column")
        return f"{args[0]} BETWEEN '{grafana_time(start)}' AND '{grafana_time(end)}'"
    if name == "__timeFrom":
        return f"'{grafana_time(start)}'"
    if name == "__timeTo":
        return f"'{grafana_time(end)}'"
    if name in ("__timeGroup", "__timeGroupAlias"):
        if len(args) < 2:
            raise MacroError(f"${name} needs the time column and an interval, e.g. ${name}(ts, '1h')")
        if len(args) == 3 and not _FILL.match(args[2]):
            raise MacroError(f"${name}: fill {args[2]!r} must be NULL, previous or a number")
        step = _seconds(args[1])
        if timescaledb:
            expr = f"time_bucket('{step:.3f}s',{args[0]})"
        else:
            expr = f"floor(extract(epoch from {args[0]})/{_go_number(step)})*{_go_number(step)}"
        return expr + (' AS "time"' if name == "__timeGroupAlias" else "")
    raise MacroError(f"unsupported Grafana macro ${name}; use $__timeFilter, $__timeFrom, $__timeTo, "
                     "$__timeGroup or $__timeGroupAlias")


def expand(sql: str, start: datetime, end: datetime, variables: Mapping[str, VariableValue] | None = None,
           interval: timedelta = timedelta(hours=1), *, timescaledb: bool = False) -> str:
    """The SQL Grafana would send for a time range and variable values. `timescaledb` is
    the data source's TimescaleDB switch (it changes `$__timeGroup`)."""
    step = interval.total_seconds()
    builtin: dict[str, VariableValue] = {"__interval_ms": str(int(step * 1000)),
                                         "__interval": f"{int(step)}s" if step >= 1 else f"{int(step * 1000)}ms"}
    src = _variables(sql, {**builtin, **(variables or {})})

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name == "__timeGroup" and src[m.end():m.end() + 1] == ",":
            name = "__timeGroupAlias"  # Grafana's pre-5.3 reading: a column, so it gets the alias
        return _macro(name, [a.strip() for a in m.group(2).split(",")], start, end, timescaledb)

    out = _MACRO_RE.sub(sub, src)
    left = sorted(set(re.findall(r"\$\{?[A-Za-z_]\w*|\[\[\w+", out)))
    if left:
        raise MacroError(f"template variable(s) {left} have no value")
    return out
