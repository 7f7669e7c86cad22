"""Service errors (askue.headend.errors) as HTTP answers: the one place they get a status."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from askue.headend.errors import Conflict, Forbidden, Invalid, NeedsConfirmation, NotFound, ServiceError

STATUS: dict[type[ServiceError], int] = {NotFound: 404, Conflict: 409, Forbidden: 403, Invalid: 422,
                                         NeedsConfirmation: 409}


def status_of(e: ServiceError) -> int:
    return next((code for cls, code in STATUS.items() if isinstance(e, cls)), 400)


def body(e: ServiceError) -> dict:
    detail: dict = {"message": e.message, "message_ru": e.message_ru}
    if isinstance(e, Invalid):
        detail["field"] = e.field
    if isinstance(e, NeedsConfirmation):
        detail["status"] = "needs_confirmation"
    detail.update({k: v for k, v in e.details.items() if v is not None})
    return {"detail": detail}


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        from fastapi.encoders import jsonable_encoder

        return JSONResponse(jsonable_encoder(body(exc)), status_code=status_of(exc))
