"""The operator pages as one APIRouter (listed in `askue.headend.app.ROUTERS`)."""
from __future__ import annotations

from fastapi import APIRouter

from askue.headend.web import (
    pages_admin,
    pages_auth,
    pages_events,
    pages_main,
    pages_readings,
    pages_registry,
)

router = APIRouter(prefix="/web", include_in_schema=False)
for _m in (pages_auth, pages_main, pages_events, pages_readings, pages_admin, pages_registry):
    router.include_router(_m.router)
