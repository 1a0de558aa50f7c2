"""Dependencies, defined once as ``Annotated`` aliases; routes just declare them.

========================  ===========================================================================
``SettingsDep``           the app's :class:`~serve.config.Settings`
``DbDep``                 a SQLAlchemy ``Session`` for this request (closed afterwards)
``DatabaseDep``           the :class:`~serve.db.Database` (engine + session factory), for async routes
``RouterDep``             the router being served, taken once when the request starts (hot reload safe)
``ServedDep``             the router together with its status (ok | degraded, reason)
``ModelsDep``             the :class:`~serve.state.ModelHolder` (reload)
``MetricsDep``            the app's :class:`~serve.metrics.Metrics`
``RoutingDep``            a call_taker's (else 401 / 403) routing context: router, settings, database,
                          metrics, in one dependency (the hot path: FastAPI resolves every dependency per request)
``CallTakerDep``          a caller with role call_taker or higher (401 / 403 otherwise)
``SupervisorDep``         a caller with role supervisor or higher
``AdminDep``              a caller with role admin
``AnyKeyDep``             any valid key (or anyone, when auth is off)
========================  ===========================================================================

The cheap ones are ``async def`` so FastAPI does not hop to a worker thread for them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Iterator

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from model.router import Router
from serve.auth import ANONYMOUS, KeyRing, Principal, bearer_token
from serve.config import Settings
from serve.db import Database
from serve.metrics import Metrics
from serve.state import ModelHolder, Served


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_database(request: Request) -> Database:
    return request.app.state.db


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.db.session() as s:
        yield s


async def get_served(request: Request) -> Served:
    served = request.app.state.models.current
    if served is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the service is starting; no router yet")
    return served


async def get_router(served: Annotated[Served, Depends(get_served)]) -> Router:
    return served.router


async def get_models(request: Request) -> ModelHolder:
    return request.app.state.models


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


@dataclass(frozen=True)
class Routing:
    """The router taken when the request started (hot reload safe) and the app's services."""

    router: Router
    settings: Settings
    db: Database
    metrics: Metrics


async def get_routing(request: Request) -> Routing:
    await _require_call_taker(request)
    state = request.app.state
    served = await get_served(request)
    return Routing(served.router, state.settings, state.db, state.metrics)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_database)]
DbDep = Annotated[Session, Depends(get_session)]
ServedDep = Annotated[Served, Depends(get_served)]
RouterDep = Annotated[Router, Depends(get_router)]
ModelsDep = Annotated[ModelHolder, Depends(get_models)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


# --------------------------------------------------------------------------------------------------
# Auth
# --------------------------------------------------------------------------------------------------
def require(role: str):
    """A dependency admitting callers whose key has ``role`` (or a higher one)."""

    async def dependency(request: Request) -> Principal:
        ring: KeyRing = request.app.state.keys
        if not ring.enabled:
            return ANONYMOUS
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key: send 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"})
        principal = ring.lookup(token)
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
        if not principal.allows(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this key's role ({principal.role}) may not do this; needs {role}")
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


CallTakerDep = Annotated[Principal, Depends(require("call_taker"))]
SupervisorDep = Annotated[Principal, Depends(require("supervisor"))]
AdminDep = Annotated[Principal, Depends(require("admin"))]
AnyKeyDep = CallTakerDep  # every role includes call_taker
_require_call_taker = require("call_taker")
RoutingDep = Annotated[Routing, Depends(get_routing)]
