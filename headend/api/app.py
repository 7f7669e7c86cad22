"""The FastAPI application: `create_app(settings)`."""
from __future__ import annotations

from contextlib import asynccontextmanager

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from askue.headend import metrics
from askue.headend.api import (
    deps,
    errors,
    routes_consumption,
    routes_gateways,
    routes_meters,
    routes_registry,
)
from askue.headend.api.auth import require_principal
from askue.headend.auth.permissions import Principal
from askue.headend.billing import router as billing_router
from askue.headend.commands import api as commands_api
from askue.headend.config import Settings
from askue.headend.events import api as events_api
from askue.headend.readings import api as readings_api
from askue.headend.registry import api as registry_api
from askue.headend.reports import api as reports_api
from askue.headend.vee import api as vee_api
from askue.headend.web import router as web_router

# Routers under /api/v1, and the operators' pages (their own /web prefix).
ROUTERS: list[APIRouter] = [routes_meters.router, routes_consumption.router, routes_gateways.router,
                            routes_registry.router, billing_router.router, events_api.router, readings_api.router,
                            vee_api.router, commands_api.router,
                            reports_api.router, registry_api.router]
PAGES: list[APIRouter] = [web_router.router]


def create_app(settings: Settings, pool=None) -> FastAPI:
    """The API app; it opens its own connection pool unless one is given (then the caller closes it)."""
    from askue.headend.app import open_pool
    from askue.headend.storage import hooks

    hooks.composed()  # the values this app stores run every after-insert hook

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own = pool is None
        app.state.pool = await open_pool(settings) if own else pool
        metrics.watch_pool("api", app.state.pool)
        # reads go to the replica when there is one (api/deps.py says which); it may be down
        # when the head-end starts, so the pool does not wait for it
        app.state.read_pool = app.state.pool
        if settings.read_dsn:
            from psycopg_pool import AsyncConnectionPool

            app.state.read_pool = AsyncConnectionPool(settings.read_dsn, min_size=settings.pool_min,
                                                      max_size=settings.pool_max, open=False, timeout=10)
            await app.state.read_pool.open(wait=False)
            metrics.watch_pool("api_read", app.state.read_pool)
        try:
            yield
        finally:
            if own:
                await app.state.pool.close()
            if app.state.read_pool is not app.state.pool:
                await app.state.read_pool.close()

    app = FastAPI(title="askue head-end API", version="1", lifespan=lifespan,
                  description="Meters, readings, intervals, consumption and gateways of an askue head-end. "
                              "Every endpoint except /api/v1/health needs `Authorization: Bearer <token>`.")
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(metrics.HttpMetrics)
    app.middleware("http")(deps.remember_writes)

    @app.get("/metrics", include_in_schema=False)
    async def get_metrics(principal: Principal = Depends(require_principal)) -> Response:
        """Prometheus figures of this head-end process (any API token; no customer data in them)."""
        body, media = metrics.exposition()
        return Response(body, media_type=media)

    @app.exception_handler(psycopg.errors.DataError)
    async def data_error(request: Request, exc: psycopg.errors.DataError) -> JSONResponse:
        # a parameter PostgreSQL cannot take (a NUL character, an unknown enum value, a
        # malformed date): the client's mistake, answered 400 instead of a 500
        msg = (exc.diag.message_primary or str(exc)).splitlines()[0]
        return JSONResponse({"detail": f"bad parameter value: {msg}"}, status_code=400)

    health = APIRouter()

    @health.get("/health", tags=["health"])
    async def get_health() -> dict:
        """Liveness and database reachability (no authentication)."""
        out: dict = {}
        pools = {"database": app.state.pool}
        if app.state.read_pool is not app.state.pool:
            pools["replica"] = app.state.read_pool
        for name, p in pools.items():
            try:
                async with p.connection(timeout=5) as conn:
                    await conn.execute("SELECT 1")
                out[name] = "ok"
            except Exception as e:  # report, do not fail: this endpoint is for monitoring
                out[name] = f"error: {e.__class__.__name__}"
        return {"status": "ok" if all(v == "ok" for v in out.values()) else "degraded", **out}

    app.include_router(health, prefix="/api/v1")
    for router in ROUTERS:
        app.include_router(router, prefix="/api/v1")
    for router in PAGES:
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(app.url_path_for("web_overview"))
    return app
