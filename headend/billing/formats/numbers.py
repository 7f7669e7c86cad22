"""Small parsers shared by the importers: decimal numbers as people type them, INN."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SPACES = re.compile(r"[\s\u00a0\u202f']")
_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)$")

MAX_ABS = Decimal("1e15")  # beyond any register or half-hour energy; guards against 1e9999 junk


def parse_decimal(raw: object) -> Decimal:
    """A number from a cell or XML text: `1 234,5`, `1234.5`, 1234.5 (float/int cells).

    Raises ValueError with a message fit for an operator.
    """
    if isinstance(raw, bool):
        raise ValueError("a yes/no value is not a number")
    if isinstance(raw, int):
        d = Decimal(raw)
    elif isinstance(raw, float):
        if raw != raw or raw in (float("inf"), float("-inf")):
            raise ValueError("not a finite number")
        d = Decimal(repr(raw))  # repr keeps the shortest decimal the spreadsheet showed
    elif isinstance(raw, Decimal):
        d = raw
    elif isinstance(raw, str):
        text = _SPACES.sub("", raw)
        if not text:
            raise ValueError("empty")
        if not _NUMBER.match(text):
            raise ValueError(f"«{raw[:40]}» is not a number (digits with one decimal comma or point)")
        try:
            d = Decimal(text.replace(",", "."))
        except InvalidOperation as e:  # pragma: no cover - the regex already filters
            raise ValueError(f"«{raw[:40]}» is not a number") from e
    else:
        raise ValueError(f"a {type(raw).__name__} is not a number")
    if not d.is_finite() or abs(d) >= MAX_ABS:
        raise ValueError("number out of range")
    return d


def format_decimal(value: Decimal | float | int, max_places: int = 6) -> str:
    """Plain notation without exponent or trailing zeros: 12.5, 0, 1234."""
    d = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    d = round(d, max_places)
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


_INN10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def _check(digits: list[int], weights: tuple[int, ...]) -> int:
    return sum(d * w for d, w in zip(digits, weights, strict=False)) % 11 % 10


def inn_problem(inn: str) -> str | None:
    """None when `inn` is a valid Russian taxpayer number (10 digits for a company,
    12 for a person), else what is wrong with it."""
    if not inn.isascii() or not inn.isdigit() or len(inn) not in (10, 12):
        return f"«{inn[:20]}» is not an INN: 10 digits (organisation) or 12 digits (person) expected"
    d = [int(c) for c in inn]
    if len(inn) == 10:
        ok = _check(d, _INN10) == d[9]
    else:
        ok = _check(d, _INN11) == d[10] and _check(d, _INN12) == d[11]
    return None if ok else f"INN {inn} fails its check digit (mistyped digit?)"
