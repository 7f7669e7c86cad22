"""Manual readings over HTTP (under /api/v1): the expected value beside an entry field,
a manual reading, a correction of a stored value, the meter's edit history. A thin
adapter over readings/service.py (billing's batch entry is `/billing/manual-readings`)."""
from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field, field_validator

from askue.headend.api.auth import require_principal
from askue.headend.api.deps import db
from askue.headend.auth.permissions import Principal
from askue.headend.readings import service

router = APIRouter(tags=["readings"])
OBIS = r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$"


@router.get("/meters/{code}/expected")
async def get_expected(code: str, obis: str = Query(service.A_PLUS, pattern=OBIS), at: datetime | None = None,
                       principal: Principal = Depends(require_principal),
                       conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """What the manual-readings form shows beside the field: last reading, the expected
    value «по среднему», and above which value a reading needs confirmation."""
    if at is not None and at.tzinfo is None:
        raise HTTPException(422, "at: give a UTC offset, e.g. 2026-11-20T10:00:00+03:00")
    return (await service.expected(conn, principal, code, obis, at)).as_dict()


class _ReadingAt(BaseModel):
    """A register value at a meter time, as a person enters it."""

    obis: str = Field(service.A_PLUS, pattern=OBIS)
    ts: datetime
    value: float

    @field_validator("ts")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("give a UTC offset, e.g. 2026-11-20T10:00:00+03:00")
        return v

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v) or v < 0:
            raise ValueError("a register reading is a finite, non-negative number")
        return v


class ManualReading(_ReadingAt):
    comment: str | None = Field(None, max_length=2000)
    confirm: bool = Field(False, description="store it although it is far above the expected value")


@router.post("/meters/{code}/readings", status_code=201)
async def enter_reading(code: str, body: ManualReading, principal: Principal = Depends(require_principal),
                        conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """A manual register reading (quality M, source manual) with every check of
    readings/service.py; a reading that already exists at that time is changed through
    /corrections. Far above the expected value it answers 409 needs_confirmation with
    the expected value: send it again with `confirm: true`."""
    o = await service.enter(conn, principal, service.ReadingInput(code, body.obis, body.value, body.ts,
                                                                  comment=body.comment or ""), confirm=body.confirm)
    return {"meter": o.meter, "obis": body.obis, "ts": body.ts, "value": body.value, "quality": "M",
            "reasons": o.reasons, "expected": o.expected, "last_value": o.previous,
            "deviation": None if o.expected is None else round(body.value - o.expected, 3)}


class Correction(_ReadingAt):
    kind: Literal["register", "interval"] = "register"
    reason: str = Field(..., min_length=3, max_length=2000, description="why the value is changed (required)")


@router.post("/meters/{code}/corrections")
async def correct_value(code: str, body: Correction, principal: Principal = Depends(require_principal),
                        conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Change a stored value with a reason: it becomes quality M, source manual, reason
    `corrected`; the old value is kept in the audit log."""
    old = await service.correct(conn, principal, code, body.kind, body.obis, body.ts, body.value, body.reason)
    return {"meter": code, "kind": body.kind, "obis": body.obis, "ts": body.ts, "old_value": old.value,
            "value": body.value, "quality": "M", "reason": body.reason}


@router.get("/meters/{code}/edits")
async def meter_edits(code: str, principal: Principal = Depends(require_principal),
                      conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Audit of manual readings and corrections of one meter: who, when, old, new, why."""
    return {"items": await service.edits(conn, principal, code)}
