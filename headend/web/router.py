"""The operator pages as one APIRouter (listed in `askue.headend.app.ROUTERS`)."""
from __future__ import annotations

from fastapi import APIRouter

from askue.headend.web import (
    pages_admin,
    pages_alerts,
    pages_auth,
    pages_cabinet,
    pages_commands,
    pages_customers,
    pages_events,
    pages_main,
    pages_meter,
    pages_meters,
    pages_readings,
    pages_registry,
    pages_reports,
    pages_security,
)

router = APIRouter(prefix="/web", include_in_schema=False)
for _m in (pages_auth, pages_main, pages_meters, pages_meter, pages_events, pages_readings, pages_admin,
           pages_alerts, pages_commands, pages_reports, pages_security, pages_registry, pages_cabinet,
           pages_customers):
    router.include_router(_m.router)
