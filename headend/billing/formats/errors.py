"""Typed import errors: every problem says where it is, what is wrong and how to fix it."""
from __future__ import annotations

from dataclasses import dataclass

MAX_ISSUES = 200  # a file with thousands of bad cells is reported, not echoed whole


@dataclass(frozen=True)
class Issue:
    """One problem in an imported file.

    `where` is an element path (`message/area[1]/measuringpoint[2]/@code`), a cell
    reference (`C5`) or a row (`row 7, column «Текущие показания»`).
    """

    where: str
    what: str
    fix: str
    what_ru: str = ""  # the same in Russian, where a person reads it (the customer cabinet)
    fix_ru: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.what} — {self.fix}"

    def text(self, lang: str = "ru") -> tuple[str, str, str]:
        """(where, what, how to fix) in the reader's language."""
        if lang == "ru" and self.what_ru:
            where = self.where.replace("row ", "строка ").replace("column ", "столбец ").replace("rows ", "строки ")
            return where, self.what_ru, self.fix_ru or self.fix
        return self.where, self.what, self.fix

    def as_dict(self) -> dict[str, str]:
        return {"where": self.where, "what": self.what, "fix": self.fix}


class ExportFormatError(ValueError):
    """A file could not be accepted; `issues` lists every problem found (up to MAX_ISSUES)."""

    def __init__(self, fmt: str, issues: list[Issue]):
        self.fmt = fmt
        self.issues = issues[:MAX_ISSUES]
        head = "; ".join(str(i) for i in self.issues[:5])
        more = f" (+{len(issues) - 5} more)" if len(issues) > 5 else ""
        super().__init__(f"{fmt}: {len(issues)} problem(s): {head}{more}")


class IncompleteDataError(ValueError):
    """An export would have to invent values: the missing slots are listed instead."""

    def __init__(self, what: str, missing: list[str]):
        self.missing = missing
        shown = ", ".join(missing[:10]) + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
        super().__init__(f"{what}: no validated value for {shown}")


class Collector:
    """Accumulates issues while a parser keeps going, so one run reports them all."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, where: str, what: str, fix: str, what_ru: str = "", fix_ru: str = "") -> None:
        if len(self.issues) <= MAX_ISSUES:
            self.issues.append(Issue(where, what, fix, what_ru, fix_ru))

    def __bool__(self) -> bool:
        return bool(self.issues)

    @property
    def full(self) -> bool:
        return len(self.issues) > MAX_ISSUES
