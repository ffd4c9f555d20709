"""Liveness and readiness for load balancers and orchestrators: no authentication, no data."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from mammotriage.api.deps import StoreDep
from mammotriage.api.schemas import HealthOut
from mammotriage.worklist.models import UserRow

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", response_model=HealthOut, summary="The process is up")
def health() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/ready",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database does not answer"}},
    summary="The database answers",
)
def ready(store: StoreDep) -> HealthOut | JSONResponse:
    if not database_answers(store):
        return JSONResponse({"status": "database unavailable"}, status_code=503)
    return HealthOut(status="ready")


def database_answers(store: StoreDep) -> bool:
    """A query against a table of the schema: a reachable but empty database is not ready."""
    try:
        with store.db.engine.connect() as connection:
            connection.execute(select(UserRow.id).limit(1)).all()
    except (SQLAlchemyError, OSError):
        return False
    return True
