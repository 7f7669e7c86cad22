"""Errors the head-end's services raise. Adapters map them to what their user sees
(HTTP status and JSON in `api/errors.py`, an error page on the operators' pages, an
exit code in the CLI); services never speak HTTP.

Each error carries an English message (API, logs) and a Russian one (pages).
"""
from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, message: str, message_ru: str | None = None, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.message_ru = message_ru or message
        self.details = details

    def text(self, lang: str) -> str:
        return self.message_ru if lang == "ru" else self.message


class NotFound(ServiceError):
    """No such object, or one the principal may not see (the same answer on purpose)."""


class Conflict(ServiceError):
    """The object's state does not allow it (already resolved, a value already stored…)."""


class Forbidden(ServiceError):
    """The principal's role may not do this."""


class Invalid(ServiceError):
    """Bad input: `field` names what to fix."""

    def __init__(self, field: str, message: str, message_ru: str | None = None, **details: object) -> None:
        super().__init__(message, message_ru, **details)
        self.field = field


class NeedsConfirmation(ServiceError):
    """Plausible but unusual input: the same request with confirmation goes through."""
